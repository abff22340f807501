/** Running CNI plugin binaries the way a runtime does, for tests and benchmarks. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(fileURLToPath(import.meta.url), '../../../..');
export const PONTOON_CNI_DIR = join(ROOT, 'dist/cni');
export const REFERENCE_CNI_DIR = '/usr/lib/cni';
export const CNI_PATH = `${PONTOON_CNI_DIR}:${REFERENCE_CNI_DIR}`;

export interface CniCall {
  plugin: string;
  command: string;
  config: unknown;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** Run the plugin inside this named namespace (the simulated node). */
  nodeNetns?: string;
  env?: Record<string, string>;
}

export interface CniOutcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Parsed stdout, when it was JSON. */
  json?: Record<string, unknown>;
}

export function pluginPath(plugin: string): string {
  return plugin.startsWith('pontoon-') ? join(PONTOON_CNI_DIR, plugin) : join(REFERENCE_CNI_DIR, plugin);
}

export function cni(call: CniCall): CniOutcome {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: call.command, CNI_PATH, ...call.env };
  if (call.containerId !== undefined) env['CNI_CONTAINERID'] = call.containerId;
  if (call.netns !== undefined) env['CNI_NETNS'] = call.netns;
  if (call.ifname !== undefined) env['CNI_IFNAME'] = call.ifname;
  if (call.args !== undefined) env['CNI_ARGS'] = call.args;
  const input = typeof call.config === 'string' ? call.config : JSON.stringify(call.config);
  const [file, argv] = call.nodeNetns ? ['ip', ['netns', 'exec', call.nodeNetns, pluginPath(call.plugin)]] : [pluginPath(call.plugin), []];
  const result = spawnSync(file, argv, { input, env, encoding: 'utf8', timeout: 60_000 });
  const outcome: CniOutcome = { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
  try {
    outcome.json = JSON.parse(result.stdout) as Record<string, unknown>;
  } catch {
    // not JSON (DEL prints nothing)
  }
  return outcome;
}

/** Asserting helper: the call succeeded; returns its parsed output. */
export function cniOk(call: CniCall): Record<string, unknown> {
  const outcome = cni(call);
  if (outcome.status !== 0) {
    throw new Error(`${call.plugin} ${call.command} failed (${outcome.status ?? outcome.signal}): ${outcome.stdout}${outcome.stderr}`);
  }
  return outcome.json ?? {};
}
