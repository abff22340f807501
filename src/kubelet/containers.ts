/**
 * One container across its restarts, as a real process in the pod's sandbox.
 *
 * - The process is `ip netns exec <sandbox> unshare ... <argv>` (mounts.ts builds it: own
 *   mount and UTS namespaces, the pod's files and volumes bound in); every step execs in
 *   place, so the pid we hold is the container's own. A hostNetwork container on the
 *   kubelet's own namespace skips `ip netns exec`. It runs in a session of its own (detached), so a
 *   signal to the group reaches whatever it forks and a kubelet restart does not take it
 *   down. stdout and stderr go straight to `<logDir>/<restartCount>.log`, opened by us and
 *   written by the process, so logs survive the kubelet too.
 * - Stop is SIGTERM to the group, SIGKILL after the grace period.
 * - Restarts follow restartPolicy with the kubelet's backoff: the first restart is at once,
 *   then 10 s, 20 s, 40 s… capped at 5 min, counted from the last exit, and forgotten after
 *   a run of twice the cap (the kubelet's 10 minutes).
 * - A restarted kubelet adopts a container whose pid still runs with the same start time
 *   (so a recycled pid is never mistaken for it). It is not the process's parent, so when an
 *   adopted process exits its exit code is lost: it is recorded as Kubernetes records a
 *   container the runtime lost, exit code 137 with reason ContainerStatusUnknown, and the
 *   restart policy applies as for a failure. The alternative, killing and restarting every
 *   container when the kubelet restarts, would turn each kubelet upgrade into an outage.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Container, ContainerState } from '../api/types.js';
import { nextExponentialDelayMs } from '../lib/backoff.js';
import { describeError, PontoonError } from '../lib/errors.js';
import { mkfifo } from '../lib/sys/libc.js';
import type { Logger } from '../lib/log.js';
import { ContainerConfigError, NO_COMMAND_MESSAGE } from './env.js';
import { type ContainerFilesystem, containerLaunchArgv } from './mounts.js';
import { rfc3339 } from './time.js';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

/** What survives a kubelet restart (part of the pod's state file). */
export interface ContainerRecord {
  name: string;
  restartCount: number;
  containerId?: string;
  pid?: number;
  /** /proc/<pid>/stat field 22: tells our process from a later one with the same pid. */
  pidStartTicks?: string;
  state: ContainerState;
  lastState: ContainerState;
  /** The next backoff delay; 0 means the next restart is immediate. */
  backoffMs: number;
}

export type ContainerEvent =
  | { type: 'started'; pid: number }
  | { type: 'adopted'; pid: number }
  | { type: 'exited'; exitCode: number; reason: string }
  | { type: 'backoff'; delayMs: number }
  | { type: 'failed'; reason: string; message: string }
  | { type: 'killing'; reason: string };

export interface ContainerLaunch {
  /** undefined: nothing to run (no command and no args). */
  argv: string[] | undefined;
  env: Record<string, string>;
  /** The container's own view (files, volumes, hostname); without it the node's view is shared. */
  fs?: ContainerFilesystem;
}

export interface ContainerRunnerOptions {
  podKey: string;
  container: Container;
  restartPolicy: RestartPolicy;
  /**
   * Name of the namespace to run in: the pod's sandbox, or the node's for a hostNetwork pod
   * on a kubelet acting on a node namespace other than its own; undefined runs the process
   * in the kubelet's own namespace (hostNetwork on a real node).
   */
  sandbox: string | undefined;
  /** `<root>/pods/<uid>/<container>`. */
  logDir: string;
  /** Builds argv and env just before each start (the pod IP is known by then). */
  prepare: () => Promise<ContainerLaunch>;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Called after every state change, with what happened. */
  onEvent: (event: ContainerEvent) => void;
  log: Logger;
  record?: ContainerRecord;
}

const ADOPTED_POLL_MS = 500;

function signalNumber(signal: NodeJS.Signals): number {
  return osConstants.signals[signal] ?? 0;
}

/** Field 22 of /proc/<pid>/stat, or undefined when the pid is gone or a zombie. */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Finds `command` the way execvp will, so a missing binary is a clear StartError. */
function findExecutable(command: string, path: string): string | undefined {
  const candidates = command.includes('/') ? [command] : path.split(':').filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Where a `stdin: true` container's stdin fifo lives (attach writes into it). */
export function stdinFifoPath(logDir: string): string {
  return join(logDir, 'stdin');
}

/**
 * The container's end of its stdin fifo, opened read-write: open(2) of a fifo for reading
 * alone would block until a writer came, and holding a write end means the container never
 * sees end of file between attaches — upstream's `stdin: true` without `stdinOnce`.
 */
function openStdinFifo(logDir: string): number {
  const path = stdinFifoPath(logDir);
  if (!statSync(path, { throwIfNoEntry: false })?.isFIFO()) {
    rmSync(path, { force: true });
    mkfifo(path, 0o600);
  }
  return openSync(path, fsConstants.O_RDWR);
}

/** Resolves when the setup script reported on fd 3, or closed it by exiting. */
function setupDone(child: ChildProcess): Promise<void> {
  const pipe = child.stdio[3] as Readable | null | undefined;
  if (!pipe) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      pipe.destroy();
      resolve();
    };
    pipe.once('data', done);
    pipe.once('close', done);
    pipe.once('error', done);
  });
}

/** Kubernetes container ids look like `containerd://<64 hex>`; ours name the run. */
function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** Building a container's launch failed for a reason other than its config (CreateContainerError). */
class ContainerCreateError extends PontoonError {}

export class ContainerRunner {
  private record: ContainerRecord;
  private child: ChildProcess | undefined;
  private adoptedTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private exitWaiters: (() => void)[] = [];
  private stopping = false;
  /** Set by a liveness kill: restart unless the policy is Never, whatever the exit code. */
  private restartAfterKill = false;
  private runStartedMs = 0;

  constructor(private readonly options: ContainerRunnerOptions) {
    this.record = options.record
      ? structuredClone(options.record)
      : { name: options.container.name, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } }, lastState: {}, backoffMs: 0 };
  }

  get name(): string {
    return this.options.container.name;
  }

  snapshot(): ContainerRecord {
    return structuredClone(this.record);
  }

  isRunning(): boolean {
    return this.record.state.running !== undefined && this.record.pid !== undefined;
  }

  /** The log of the current run, or of the one before with `previous`. */
  logPath(previous = false): string | undefined {
    const count = this.record.restartCount - (previous ? 1 : 0);
    if (count < 0) return undefined;
    // A container that never started has no log of its current run yet.
    if (!previous && this.record.containerId === undefined) return undefined;
    return join(this.options.logDir, `${count}.log`);
  }

  /** Starts the container, or adopts the process a previous kubelet started. */
  async run(): Promise<void> {
    const { pid, pidStartTicks, state } = this.record;
    if (state.running && pid !== undefined) {
      if (processStartTicks(pid) === pidStartTicks) return this.adopt(pid);
      this.options.log.warn({ container: this.name, pid }, 'container process from before the kubelet restart is gone; its exit code is unknown');
      return this.exited(137, 'ContainerStatusUnknown', 'The container could not be located when the kubelet restarted');
    }
    if (state.terminated) {
      if (this.shouldRestart(state.terminated.exitCode)) this.scheduleRestart();
      return;
    }
    // A back-off that a kubelet restart interrupted has mostly run its course: restart now.
    if (state.waiting?.reason === 'CrashLoopBackOff') this.record.restartCount++;
    await this.start();
  }

  /** Kills the running process (liveness failure); the restart policy decides what follows. */
  async kill(gracePeriodSeconds: number, reason: string): Promise<void> {
    if (!this.isRunning() || this.stopping) return;
    this.restartAfterKill = this.options.restartPolicy !== 'Never';
    this.options.onEvent({ type: 'killing', reason });
    await this.terminate(gracePeriodSeconds);
  }

  /** Stops for good (pod deleted or finished): no restart after this. */
  async stop(gracePeriodSeconds: number): Promise<void> {
    this.stopping = true;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    // A runner made from a record only to be stopped (an orphan) has not looked at its pid yet.
    const { pid } = this.record;
    if (this.record.state.running && pid !== undefined && !this.child && !this.adoptedTimer) {
      if (processStartTicks(pid) === this.record.pidStartTicks) this.watchAdopted(pid);
      else this.exited(137, 'ContainerStatusUnknown', 'The container could not be located when the kubelet restarted');
    }
    if (this.isRunning()) {
      this.options.onEvent({ type: 'killing', reason: 'Stopping container' });
      await this.terminate(gracePeriodSeconds);
    }
    this.stopWatching();
  }

  private stopWatching(): void {
    if (this.adoptedTimer) clearInterval(this.adoptedTimer);
    this.adoptedTimer = undefined;
  }

  /** Stops timers and watchers, leaving the process running (the kubelet is exiting). */
  detach(): void {
    this.stopping = true;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    this.stopWatching();
    this.child?.unref();
  }

  /**
   * Starts the process. A failure to build or launch it is the container's state, as the
   * kubelet shows it: waiting with CreateContainerError (building the launch failed) or
   * RunContainerError (the launch itself), a Failed event, and a retry with backoff. It used
   * to escape to the pod's start and only reach the log, leaving the container
   * "ContainerCreating" for good.
   */
  private async start(): Promise<void> {
    try {
      await this.launch();
    } catch (err) {
      const reason = err instanceof ContainerCreateError ? 'CreateContainerError' : 'RunContainerError';
      const message = err instanceof ContainerCreateError ? err.message : describeError(err);
      this.options.log.warn({ container: this.name, reason, err: message }, 'container could not be started');
      if (this.stopping) return;
      this.record.state = { waiting: { reason, message } };
      this.options.onEvent({ type: 'failed', reason, message });
      this.scheduleRestart();
    }
  }

  private async launch(): Promise<void> {
    if (this.stopping) return;
    const { container } = this.options;
    let launch: ContainerLaunch;
    try {
      launch = await this.options.prepare();
    } catch (err) {
      if (!(err instanceof ContainerConfigError)) throw new ContainerCreateError(describeError(err), { cause: err });
      this.record.state = { waiting: { reason: 'CreateContainerConfigError', message: err.message } };
      this.options.onEvent({ type: 'failed', reason: 'CreateContainerConfigError', message: err.message });
      this.scheduleRestart();
      return;
    }
    if (this.stopping) return;
    const startedAt = rfc3339();
    if (!launch.argv) return this.startFailed(startedAt, NO_COMMAND_MESSAGE);
    const [command] = launch.argv;
    if (!findExecutable(command ?? '', launch.env['PATH'] ?? '')) {
      return this.startFailed(startedAt, `exec: "${command ?? ''}": executable file not found in $PATH`);
    }
    const cwd = container.workingDir ?? '/';
    // A workingDir inside a volume exists only in the container's view (the script cd's there).
    const inVolume = launch.fs?.mounts.some((m) => m.directory && (cwd === m.target || cwd.startsWith(`${m.target.replace(/\/$/, '')}/`))) ?? false;
    if (!inVolume && !statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) return this.startFailed(startedAt, `workingDir "${cwd}" is not a directory on the node`);

    mkdirSync(this.options.logDir, { recursive: true });
    const containerId = newContainerId();
    this.record.containerId = containerId;
    const logFd = openSync(join(this.options.logDir, `${this.record.restartCount}.log`), 'a');
    const stdinFd = container.stdin ? openStdinFifo(this.options.logDir) : undefined;
    let child: ChildProcess;
    try {
      const argv = launch.fs
        ? containerLaunchArgv(this.options.sandbox, launch.fs, launch.argv)
        : this.options.sandbox === undefined
          ? launch.argv
          : ['ip', 'netns', 'exec', this.options.sandbox, ...launch.argv];
      const [file, ...args] = argv;
      // fd 3: the setup script writes one byte there once its binds are made (mounts.ts).
      const stdin = stdinFd ?? 'ignore';
      const stdio: StdioOptions = launch.fs ? [stdin, logFd, logFd, 'pipe'] : [stdin, logFd, logFd];
      child = spawn(file ?? '', args, { cwd: launch.fs ? '/' : cwd, env: launch.env, stdio, detached: true });
    } finally {
      closeSync(logFd);
      if (stdinFd !== undefined) closeSync(stdinFd);
    }
    const pid = child.pid;
    if (pid === undefined) {
      // spawn reports the reason asynchronously on 'error'.
      const message = await new Promise<string>((resolve) => child.once('error', (err) => resolve(err.message)));
      return this.startFailed(startedAt, message);
    }
    const pidStartTicks = processStartTicks(pid);
    // Running only once the container's view is built: a probe or an exec entering earlier
    // would see the node's files. An exit meanwhile is replayed below.
    let earlyExit: [number | null, NodeJS.Signals | null] | undefined;
    if (launch.fs) {
      const recordEarly = (code: number | null, signal: NodeJS.Signals | null): void => {
        earlyExit = [code, signal];
      };
      child.once('exit', recordEarly);
      await setupDone(child);
      child.off('exit', recordEarly);
      // Stopped while the view was being built: stop() saw nothing running, so end it here.
      if (this.stopping && !earlyExit) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
        return;
      }
    }
    this.child = child;
    this.runStartedMs = Date.now();
    this.record.pid = pid;
    if (pidStartTicks !== undefined) this.record.pidStartTicks = pidStartTicks;
    this.record.state = { running: { startedAt } };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      this.child = undefined;
      const exitCode = code ?? 128 + signalNumber(signal ?? 'SIGKILL');
      this.exited(exitCode, exitCode === 0 ? 'Completed' : 'Error');
    };
    if (earlyExit) {
      this.options.onEvent({ type: 'started', pid });
      return onExit(...earlyExit);
    }
    child.once('exit', onExit);
    this.options.log.info({ container: container.name, pid, restartCount: this.record.restartCount }, 'container started');
    this.options.onEvent({ type: 'started', pid });
  }

  /** The process could not be started: an exit with code 128, like runc's StartError. */
  private startFailed(startedAt: string, message: string): void {
    this.record.containerId ??= newContainerId();
    this.options.log.warn({ container: this.name, reason: message }, 'container failed to start');
    this.record.state = { terminated: { exitCode: 128, reason: 'StartError', message, startedAt, finishedAt: rfc3339() } };
    this.runStartedMs = Date.now();
    this.options.onEvent({ type: 'failed', reason: 'StartError', message });
    this.afterExit(128);
  }

  private adopt(pid: number): void {
    this.options.log.info({ container: this.name, pid }, 'adopted running container');
    this.options.onEvent({ type: 'adopted', pid });
    this.watchAdopted(pid);
  }

  /** Not our child, so no exit event: poll until the pid is gone or names another process. */
  private watchAdopted(pid: number): void {
    this.runStartedMs = Date.parse(this.record.state.running?.startedAt ?? '') || Date.now();
    this.adoptedTimer = setInterval(() => {
      if (processStartTicks(pid) === this.record.pidStartTicks) return;
      this.stopWatching();
      this.exited(137, 'ContainerStatusUnknown', 'The container was adopted after a kubelet restart and its exit code could not be collected');
    }, ADOPTED_POLL_MS);
  }

  private exited(exitCode: number, reason: string, message?: string): void {
    const startedAt = this.record.state.running?.startedAt;
    const terminated: NonNullable<ContainerState['terminated']> = { exitCode, reason, finishedAt: rfc3339() };
    if (message) terminated.message = message;
    if (startedAt) terminated.startedAt = startedAt;
    this.record.state = { terminated };
    delete this.record.pid;
    delete this.record.pidStartTicks;
    for (const wake of this.exitWaiters.splice(0)) wake();
    this.options.log.info({ container: this.name, exitCode, reason }, 'container exited');
    this.options.onEvent({ type: 'exited', exitCode, reason });
    this.afterExit(exitCode);
  }

  private shouldRestart(exitCode: number): boolean {
    if (this.stopping) return false;
    if (this.restartAfterKill) return true;
    return this.options.restartPolicy === 'Always' || (this.options.restartPolicy === 'OnFailure' && exitCode !== 0);
  }

  private afterExit(exitCode: number): void {
    const restart = this.shouldRestart(exitCode);
    this.restartAfterKill = false;
    // A long healthy run forgets earlier crashes, as the kubelet's backoff GC does.
    if (Date.now() - this.runStartedMs >= 2 * this.options.backoffCapMs) this.record.backoffMs = 0;
    if (restart) this.scheduleRestart();
  }

  /**
   * Restarts after the current backoff delay. After a run (terminated) the exit moves to
   * lastState and, while waiting, the state is CrashLoopBackOff; restartCount grows when the
   * new run begins, so during the wait it counts the restarts done, as kubectl shows them.
   * Without a run (a config error) only the start is retried.
   */
  private scheduleRestart(): void {
    if (this.stopping || this.backoffTimer) return;
    const delayMs = this.record.backoffMs;
    // CrashLoopBackOff keeps upstream's exact steps (10 s doubling to 5 min), which users read in events.
    this.record.backoffMs = nextExponentialDelayMs(delayMs, this.options.backoffBaseMs, this.options.backoffCapMs);
    const terminated = this.record.state.terminated;
    if (terminated) {
      this.record.lastState = { terminated };
      this.record.state = delayMs === 0
        ? { waiting: { reason: 'ContainerCreating' } }
        : { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delayMs / 1000)}s restarting failed container=${this.name} pod=${this.options.podKey}` } };
    }
    const restart = (): void => {
      this.backoffTimer = undefined;
      if (this.stopping) return;
      if (terminated) this.record.restartCount++;
      this.start().catch((err: unknown) => this.options.log.error({ container: this.name, err: describeError(err) }, 'container restart failed'));
    };
    if (delayMs === 0) return restart();
    this.options.onEvent({ type: 'backoff', delayMs });
    this.backoffTimer = setTimeout(restart, delayMs);
  }

  private async terminate(gracePeriodSeconds: number): Promise<void> {
    const pid = this.record.pid;
    if (pid === undefined) return;
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    this.signal(pid, 'SIGTERM');
    const graceMs = Math.max(0, gracePeriodSeconds) * 1000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut) {
      this.signal(pid, 'SIGKILL');
      // An adopted process is noticed by polling; a child by its exit event.
      await exited;
    }
  }

  private signal(pid: number, signal: NodeJS.Signals): void {
    if (this.record.pidStartTicks !== undefined && processStartTicks(pid) !== this.record.pidStartTicks) return;
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }
}
