/**
 * What the BIRD and GoBGP harnesses share: finding the binaries (a missing one is a clear
 * failure, never a skip) and running a daemon in the foreground inside a namespace, so it
 * can be stopped, SIGKILLed (a crash, for graceful-restart tests) and waited for.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, openSync, closeSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The binary's path; throws naming the Debian package when it is not installed. */
export function requireBinary(name: string, debianPackage: string): string {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`"${name}" is not installed: install the Debian package ${debianPackage} (scripts/setup.sh does)`);
}

/** Runs a command inside `netns` (`ip netns exec`) to completion; stdout, or throws with stderr. */
export function runIn(netns: string | undefined, argv: readonly string[], timeoutMs = 30_000): string {
  const [file, args] = netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0] ?? '', argv.slice(1)];
  const result = spawnSync(file, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw new Error(`failed to run "${argv.join(' ')}": ${result.error.message}`);
  if (result.status !== 0) throw new Error(`failed to run "${argv.join(' ')}": exit ${result.status}: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** A foreground daemon in a namespace, its output appended to `logFile`. */
export class Daemon {
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  constructor(
    readonly netns: string,
    argv: readonly string[],
    readonly logFile: string,
  ) {
    const log = openSync(logFile, 'a');
    try {
      // `ip netns exec` execs the command, so the child's pid is the daemon's.
      this.child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
      this.child.once('error', () => {
        this.exitCode = null;
        resolve(null);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The log's last lines, for error messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const exited = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!exited) await this.kill9();
  }

  /** SIGKILL: a crash; the daemon's kernel routes stay behind. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}
