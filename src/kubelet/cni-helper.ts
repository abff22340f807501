/**
 * The kubelet's fast path for our own CNI plugins (pontoon-bridge, pontoon-flannel): a
 * long-lived `pontoon cni-server` child in the node's namespace, so a pod's network setup
 * does not start Node per plugin call. Every other plugin keeps the exec contract, and so do
 * ours whenever the helper is not answering (starting, restarting after a crash): cni.ts
 * execs the installed binary then, with the same config and the same result.
 *
 * The child holds the read end of a pipe as its standard input and exits when it closes, so
 * a kubelet killed with SIGKILL leaves no helper behind. A helper that dies is started again
 * with the shared jittered backoff.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { Backoff } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import { callCniServer, type CniReply, type CniRequest, isThickPlugin } from '../cni/thick.js';

export interface CniHelperOptions {
  /** The argv that runs `pontoon` (node and the CLI's path). */
  readonly command: readonly string[];
  readonly socketPath: string;
  /** Where the helper's log goes (appended). */
  readonly logFile: string;
  /** The node's namespace, as for the exec'd plugins. */
  readonly hostNetns?: string;
  readonly log: Logger;
}

/** What cni.ts needs from a helper: which plugin types it runs, and one invocation. */
export interface ThickPluginRunner {
  serves(type: string): boolean;
  /** Undefined: the helper did not take the call (nothing ran); exec the plugin instead. */
  call(request: CniRequest, timeoutMs: number): Promise<CniReply | undefined>;
}

export class CniHelper implements ThickPluginRunner {
  private child: ChildProcess | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });

  constructor(private readonly options: CniHelperOptions) {}

  start(): void {
    if (this.stopped || this.child) return;
    const { command, socketPath, hostNetns, logFile } = this.options;
    mkdirSync(dirname(socketPath), { recursive: true });
    mkdirSync(dirname(logFile), { recursive: true });
    const argv = [...command, 'cni-server', '--socket', socketPath, '--exit-with-stdin'];
    const [file, ...args] = hostNetns ? ['ip', 'netns', 'exec', hostNetns, ...argv] : argv;
    const out = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(file ?? 'pontoon', args, { stdio: ['pipe', out, out] });
    } finally {
      closeSync(out);
    }
    this.child = child;
    const startedAt = Date.now();
    child.once('error', (err) => this.options.log.warn({ err: err.message }, 'CNI helper failed to start; our plugins are exec\'d meanwhile'));
    child.once('exit', (code, signal) => {
      this.child = undefined;
      if (this.stopped) return;
      // A helper that ran a while before dying starts over at the shortest delay.
      if (Date.now() - startedAt > 60_000) this.backoff.reset();
      const delay = this.backoff.next();
      this.options.log.warn({ code, signal, restartInMs: delay, log: logFile }, 'CNI helper exited; our plugins are exec\'d until it is back');
      this.restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  /** The running helper's pid, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  serves(type: string): boolean {
    return !this.stopped && isThickPlugin(type);
  }

  call(request: CniRequest, timeoutMs: number): Promise<CniReply | undefined> {
    if (!this.child) return Promise.resolve(undefined);
    return callCniServer(this.options.socketPath, request, timeoutMs);
  }

  /** Stops the helper; calls made meanwhile exec the plugins. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
