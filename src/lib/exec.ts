/** Running helper programs (iptables-restore, nft, ip) with their errors kept readable. */
import { closeSync, openSync } from 'node:fs';
import { PontoonError } from './errors.js';
import { childProcess } from './lazy.js';

export class CommandError extends PontoonError {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`failed to run "${command}": ${stderr.trim() || (exitCode === null ? 'killed by a signal' : `exit code ${exitCode}`)}`, options);
  }
}

export interface RunOptions {
  input?: string;
  /** Run inside this named network namespace via `ip netns exec`. */
  netns?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts a long-running process detached from this one (it outlives us), stdout and stderr
 * appended to `logFile`; returns its pid.
 */
export function startDetached(argv: readonly string[], logFile: string): number {
  const log = openSync(logFile, 'a');
  try {
    const [command, ...args] = argv;
    const child = childProcess().spawn(command ?? '', args, { detached: true, stdio: ['ignore', log, log] });
    if (child.pid === undefined) throw new CommandError(argv.join(' '), null, 'failed to start');
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Runs a command to completion and returns its stdout; throws CommandError on failure. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): string {
  const [file, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, command, ...args]] : [command, [...args]];
  const result = childProcess().spawnSync(file, argv, {
    input: options.input,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    env: options.env ?? process.env,
    maxBuffer: 64 * 1024 * 1024,
  });
  const shown = [command, ...args].join(' ');
  if (result.error) throw new CommandError(shown, null, result.error.message, { cause: result.error });
  if (result.status !== 0) throw new CommandError(shown, result.status, result.stderr || result.stdout);
  return result.stdout;
}
