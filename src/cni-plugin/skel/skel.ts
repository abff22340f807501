/**
 * The CNI protocol harness: the only code that reads CNI_* variables and stdin, and the only
 * code that prints results and error JSON. Handlers get parsed `CmdArgs` and either return a
 * result or throw; `toCniError` classifies whatever they throw.
 */
import { readFileSync, writeSync } from 'node:fs';
import { pontoonVersion } from '../../lib/version.js';
import { CniError, CniErrorCode, type CniErrorJson } from '../../cni/errors.js';
import {
  type CmdArgs,
  type CniCommand,
  type CniVersion,
  isSupportedVersion,
  LATEST_VERSION,
  type NetConf,
  type Result,
  SUPPORTED_VERSIONS,
  toVersion,
  versionAtLeast,
} from '../../cni/types.js';

export interface CniHandlers {
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  status?(args: CmdArgs): Promise<void>;
  gc?(args: CmdArgs): Promise<void>;
}

/** Turns anything a handler threw into a CNI error; the plugin supplies its own mapping. */
export type ErrorClassifier = (err: unknown) => CniError | undefined;

export interface PluginIo {
  env: NodeJS.ProcessEnv;
  readStdin(): Buffer;
  writeStdout(text: string): void;
}

/**
 * Straight to fd 1: the first touch of `process.stdout` builds a stream (a net.Socket for
 * the pipe a runtime gives us) and costs ~6 ms of a ~45 ms start. A pipe set non-blocking by
 * whoever made it can refuse a write (EAGAIN); that rare case takes the stream instead.
 */
function writeStdoutFd(text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  try {
    while (offset < bytes.length) offset += writeSync(1, bytes, offset);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    process.stdout.write(bytes.subarray(offset));
  }
}

const processIo: PluginIo = {
  env: process.env,
  readStdin: () => readFileSync(0),
  writeStdout: writeStdoutFd,
};

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** Which commands need which variables (SPEC.md "Parameters"). */
const REQUIRED_ENV: Record<CniCommand, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  STATUS: ['CNI_PATH'],
  GC: ['CNI_PATH'],
  VERSION: [],
};

/** Commands that older config versions do not have. */
const MINIMUM_VERSION: Partial<Record<CniCommand, string>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

function envError(message: string): CniError {
  return new CniError(CniErrorCode.InvalidEnvironment, message);
}

/** SPEC.md: container IDs are alphanumeric plus `_ . -`, starting alphanumeric. */
function validateContainerId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) {
    throw envError(`CNI_CONTAINERID "${id}" is invalid: use letters, digits, "_", "." and "-", starting with a letter or digit`);
  }
}

/** The kernel's rules for interface names (dev_valid_name). */
export function validateIfname(name: string): void {
  if (name.length === 0 || name.length > 15 || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw envError(`CNI_IFNAME "${name}" is invalid: 1-15 characters, not "." or "..", without "/", ":" or whitespace`);
  }
}

export function parseCniArgs(text: string): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw envError(`CNI_ARGS: invalid pair "${pair}": expected KEY=VALUE separated by ";"`);
    pairs.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return pairs;
}

export function parseNetConf(stdin: Buffer): NetConf {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin.toString('utf8'));
  } catch (err) {
    throw new CniError(CniErrorCode.DecodingFailure, `failed to decode network configuration from stdin: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CniError(CniErrorCode.DecodingFailure, 'network configuration on stdin must be a JSON object');
  }
  const config = parsed as Record<string, unknown>;
  // A config without cniVersion is 0.1.0 by the spec's rules, which we do not speak.
  const version = config['cniVersion'] ?? '0.1.0';
  if (!isSupportedVersion(version)) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `incompatible CNI version ${JSON.stringify(version)}: set cniVersion to one of ${SUPPORTED_VERSIONS.join(', ')}`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  for (const field of ['name', 'type'] as const) {
    if (typeof config[field] !== 'string' || config[field] === '') {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `network configuration needs a "${field}" string`);
    }
  }
  return config as NetConf;
}

function requestedVersion(stdin: Buffer): CniVersion {
  try {
    const version: unknown = JSON.parse(stdin.toString('utf8') || '{}').cniVersion;
    return isSupportedVersion(version) ? version : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}

function readArgs(io: PluginIo): CmdArgs {
  const command = io.env['CNI_COMMAND'] ?? '';
  if (!command) throw envError('required environment variable CNI_COMMAND is missing');
  if (!COMMANDS.includes(command as CniCommand)) throw envError(`unknown CNI_COMMAND "${command}": expected one of ${COMMANDS.join(', ')}`);
  const cniCommand = command as CniCommand;
  const missing = REQUIRED_ENV[cniCommand].filter((name) => !io.env[name]);
  if (missing.length > 0) throw envError(`required environment variables missing for ${command}: ${missing.join(', ')}`);
  const containerId = io.env['CNI_CONTAINERID'] ?? '';
  if (containerId) validateContainerId(containerId);
  const ifname = io.env['CNI_IFNAME'] ?? '';
  if (ifname) validateIfname(ifname);
  const stdin = io.readStdin();
  const config = parseNetConf(stdin);
  const minimum = MINIMUM_VERSION[cniCommand];
  if (minimum && !versionAtLeast(config.cniVersion, minimum)) {
    throw new CniError(CniErrorCode.IncompatibleVersion, `config version ${config.cniVersion} does not allow ${command}: it needs ${minimum} or later`);
  }
  return {
    command: cniCommand,
    containerId,
    netns: io.env['CNI_NETNS'] ?? '',
    ifname,
    args: parseCniArgs(io.env['CNI_ARGS'] ?? ''),
    path: (io.env['CNI_PATH'] ?? '').split(':').filter(Boolean),
    stdin,
    config,
  };
}

function errorJson(err: CniError, version: string): string {
  const body: CniErrorJson = { cniVersion: version, code: err.code, msg: err.message };
  if (err.details) body.details = err.details;
  return `${JSON.stringify(body)}\n`;
}

function answerVersion(io: PluginIo): number {
  io.writeStdout(`${JSON.stringify({ cniVersion: requestedVersion(io.readStdin()), supportedVersions: SUPPORTED_VERSIONS })}\n`);
  return 0;
}

/**
 * Runs one CNI invocation and returns the exit code. VERSION answers without reading config
 * beyond its cniVersion; ADD prints its result in the config's version.
 */
export async function runPlugin(handlers: CniHandlers, classify: ErrorClassifier, io: PluginIo = processIo): Promise<number> {
  let version: string = LATEST_VERSION;
  try {
    if (io.env['CNI_COMMAND'] === 'VERSION') return answerVersion(io);
    const args = readArgs(io);
    version = args.config.cniVersion;
    switch (args.command) {
      case 'ADD': {
        const result = await handlers.add(args);
        io.writeStdout(`${JSON.stringify(toVersion(result, args.config.cniVersion))}\n`);
        return 0;
      }
      case 'DEL':
        await handlers.del(args);
        return 0;
      case 'CHECK':
        await handlers.check(args);
        return 0;
      case 'STATUS':
        if (handlers.status) await handlers.status(args);
        return 0;
      case 'GC':
        if (handlers.gc) await handlers.gc(args);
        return 0;
      default:
        return 0;
    }
  } catch (err) {
    const cniError = err instanceof CniError ? err : (classify(err) ?? new CniError(CniErrorCode.Internal, (err as Error)?.message ?? String(err), '', { cause: err }));
    io.writeStdout(errorJson(cniError, version));
    return 1;
  }
}

/** A plugin's handlers and its error mapping, loaded by `pluginMain` only when a command needs them. */
export interface CniPlugin {
  handlers: CniHandlers;
  classify: ErrorClassifier;
}

/**
 * Entry point for a plugin binary: run, then exit with the protocol's status. Run by hand
 * without CNI_COMMAND, it also says what it is on stderr, as the reference plugins do.
 *
 * `load` imports the handlers (a dynamic import, which the bundle keeps lazy): VERSION, which
 * a runtime sends before using a plugin, answers without evaluating the netlink, IPAM and
 * bridge modules at all, and every other command pays for them once.
 */
export function pluginMain(load: () => Promise<CniPlugin>, about: string): void {
  if (!process.env['CNI_COMMAND']) {
    process.stderr.write(`${about} ${pontoonVersion}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
  }
  const run = async (): Promise<number> => {
    if (process.env['CNI_COMMAND'] === 'VERSION') return answerVersion(processIo);
    const { handlers, classify } = await load();
    return runPlugin(handlers, classify);
  };
  run().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      writeStdoutFd(errorJson(new CniError(CniErrorCode.Internal, String(err)), LATEST_VERSION));
      process.exitCode = 1;
    },
  );
}
