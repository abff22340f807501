/**
 * Running other CNI plugins the way a runtime does: find the binary on CNI_PATH, pass the
 * same environment with CNI_COMMAND set, the config on stdin, and read the result or the
 * error JSON from stdout. This is how IPAM is delegated and how Pontoon chains with the
 * reference plugins.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { childProcess } from '../lib/lazy.js';
import { CniError, CniErrorCode } from './errors.js';
import { type CniCommand, parseResult, type Result } from './types.js';

export function findPlugin(type: string, path: readonly string[]): string {
  if (type.includes('/')) throw new CniError(CniErrorCode.InvalidNetworkConfig, `plugin type "${type}" must be a bare name, not a path`);
  for (const dir of path) {
    const candidate = join(dir, type);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(CniErrorCode.InvalidEnvironment, `failed to find plugin "${type}" in CNI_PATH [${path.join(':')}]: install it there or fix the plugin type`);
}

export function execPlugin(type: string, command: CniCommand, stdin: Buffer | string, path: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  const binary = findPlugin(type, path);
  const result = childProcess().spawnSync(binary, [], { input: stdin, env: { ...env, CNI_COMMAND: command }, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (result.error) throw new CniError(CniErrorCode.IoFailure, `failed to run plugin "${type}": ${result.error.message}`, '', { cause: result.error });
  if (result.status === 0) return result.stdout;
  let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  try {
    parsed = JSON.parse(result.stdout) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed.code === 'number' && typeof parsed.msg === 'string') {
    throw new CniError(parsed.code, `${type}: ${parsed.msg}`, typeof parsed.details === 'string' ? parsed.details : '');
  }
  const output = (result.stderr || result.stdout || '').trim();
  throw new CniError(CniErrorCode.Internal, `plugin "${type}" ${command} failed with exit code ${result.status}${output ? `: ${output}` : ''}`);
}

export function execPluginAdd(type: string, stdin: Buffer | string, path: readonly string[]): Result {
  const output = execPlugin(type, 'ADD', stdin, path);
  try {
    return parseResult(JSON.parse(output), `result of plugin "${type}"`);
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw new CniError(CniErrorCode.DecodingFailure, `plugin "${type}" returned a result that is not JSON: ${output.slice(0, 200)}`);
  }
}
