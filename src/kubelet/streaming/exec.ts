/**
 * One exec'd process in a container: plain pipes, or a pseudo-terminal for `-t`.
 *
 * - Without a TTY the child runs in a session of its own (detached), so killing its process
 *   group takes whatever it forked too.
 * - With a TTY the slave end becomes the child's stdio and controlling terminal through
 *   `setsid --ctty` (util-linux): the child is spawned in our process group so setsid(1)
 *   calls setsid(2) itself instead of forking, and the pid we hold stays the command's.
 *   Resize is TIOCSWINSZ on the master; the kernel sends SIGWINCH to the foreground group.
 * - `kill()` (the client went away) SIGKILLs the group; `done` resolves once the child exited
 *   and its output was read to the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { describeError } from '../../lib/errors.js';
import { openPty, type Pty } from '../../lib/pty.js';
import { enterContainerArgv } from '../enter.js';
import { containerEnvironment } from './environment.js';
import type { ContainerTarget } from './target.js';

export type ExecResult = { exitCode: number } | { error: string };

export interface ExecOptions {
  command: readonly string[];
  stdin: boolean;
  tty: boolean;
  /** Initial terminal size; kubectl sends the real one right after the upgrade. */
  columns?: number;
  rows?: number;
}

export interface ExecProcess {
  pid: number | undefined;
  stdin: Writable | undefined;
  stdout: Readable;
  /** undefined with a TTY: the terminal merges both streams. */
  stderr: Readable | undefined;
  resize(columns: number, rows: number): void;
  kill(): void;
  done: Promise<ExecResult>;
}

/** After the child exits, how long a TTY may still deliver output before the session ends. */
const TTY_DRAIN_MS = 250;

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? (osConstants.signals[signal] ?? 9) : 9);
}

function killGroup(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function startExec(target: ContainerTarget, options: ExecOptions): ExecProcess {
  const argv = enterContainerArgv(target.pid, options.command, { workingDir: target.container.workingDir ?? '/' });
  const env = containerEnvironment(target.pid);
  // nsenter and setsid are found on the kubelet's PATH; the command on the container's.
  const spawnEnv = { ...env, PATH: env['PATH'] ?? process.env['PATH'] ?? '/usr/bin:/bin' };
  if (options.tty) return startWithTty(argv, { ...spawnEnv, TERM: env['TERM'] ?? 'xterm' }, options);
  const child = spawn(argv[0]!, argv.slice(1), {
    env: spawnEnv,
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const done = new Promise<ExecResult>((resolve) => {
    child.once('error', (err) => resolve({ error: `failed to start the command in container ${target.container.name}: ${describeError(err)}` }));
    child.once('close', (code, signal) => resolve({ exitCode: exitCodeOf(code, signal) }));
  });
  // A client that stops reading stdin (the process exited) must not crash us with EPIPE.
  child.stdin?.on('error', () => undefined);
  return {
    pid: child.pid,
    stdin: child.stdin ?? undefined,
    stdout: child.stdout!,
    stderr: child.stderr!,
    resize: () => undefined,
    kill: () => killGroup(child),
    done,
  };
}

function startWithTty(argv: string[], env: Record<string, string>, options: ExecOptions): ExecProcess {
  const pty: Pty = openPty(options.columns ?? 80, options.rows ?? 24);
  let child: ChildProcess;
  try {
    child = spawn('setsid', ['--ctty', ...argv], { env, stdio: [pty.slave, pty.slave, pty.slave] });
  } finally {
    // The child has its own copies; ours would keep the terminal open after it exits.
    pty.releaseSlave();
  }
  pty.master.on('error', () => undefined);
  const outputEnded = new Promise<void>((resolve) => {
    pty.master.once('end', resolve);
    pty.master.once('close', resolve);
    pty.master.once('error', () => resolve());
  });
  const done = new Promise<ExecResult>((resolve) => {
    child.once('error', (err) => {
      pty.close();
      resolve({ error: `failed to start the command: ${describeError(err)}` });
    });
    child.once('exit', (code, signal) => {
      // A background process may keep the terminal open: do not wait for it forever.
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<void>((r) => (timer = setTimeout(r, TTY_DRAIN_MS)));
      void Promise.race([outputEnded, drained]).then(() => {
        clearTimeout(timer);
        pty.close();
        resolve({ exitCode: exitCodeOf(code, signal) });
      });
    });
  });
  return {
    pid: child.pid,
    stdin: options.stdin ? pty.master : undefined,
    stdout: pty.master,
    stderr: undefined,
    resize: (columns, rows) => pty.resize(columns, rows),
    kill: () => {
      killGroup(child);
      pty.close();
    },
    done,
  };
}
