/**
 * The remote command protocol (exec and attach) over WebSocket, as client-go's
 * tools/remotecommand speaks it: every binary message starts with a channel byte — 0 stdin,
 * 1 stdout, 2 stderr, 3 error, 4 resize — and the rest is that channel's data.
 *
 * - `v5.channel.k8s.io` (what kubectl 1.30+ asks for) adds message [255, channel]: the client
 *   closed that stream, so stdin gets its end of file (`echo hi | kubectl exec -i … cat`).
 * - `v4.channel.k8s.io` and v5 end with a metav1.Status on the error channel: Success, or
 *   Failure with reason NonZeroExitCode and a cause {reason: ExitCode, message: "<code>"},
 *   which kubectl turns into its own exit code.
 * - `channel.k8s.io` (v1) sends only a failure, as plain text.
 * Resize messages are JSON `{"Width":W,"Height":H}`. After the status the server closes with
 * 1000, which is how the client learns every stream ended.
 *
 * A TTY session opens its process only once the client's first resize arrived (kubectl sends
 * its terminal's size right after the upgrade), so the command's first `stty size` or curses
 * screen sees the client's window, not 80x24; stdin that comes earlier is held until then.
 */
import type { Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Status } from '../../api/meta.js';
import type { Logger } from '../../lib/log.js';
import type { ExecResult } from './exec.js';

export const REMOTECOMMAND_V5 = 'v5.channel.k8s.io';
export const REMOTECOMMAND_V4 = 'v4.channel.k8s.io';
export const REMOTECOMMAND_V1 = 'channel.k8s.io';
/** Server preference, newest first. */
export const REMOTECOMMAND_PROTOCOLS = [REMOTECOMMAND_V5, REMOTECOMMAND_V4, REMOTECOMMAND_V1] as const;

export const Channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** Above this many unsent bytes, output streams pause until the socket catches up. */
const HIGH_WATER_BYTES = 1 << 20;
/** A TTY client that sends no size in this long gets its process with the default size. */
const FIRST_SIZE_WAIT_MS = 2000;

export interface TerminalSize {
  columns: number;
  rows: number;
}

/** What a session streams: an exec'd process or an attached container. */
export interface StreamedProcess {
  stdin: Writable | undefined;
  stdout: Readable | undefined;
  stderr: Readable | undefined;
  resize(columns: number, rows: number): void;
  kill(): void;
  done: Promise<ExecResult>;
}

export function negotiateRemoteCommand(offered: ReadonlySet<string>): string | false {
  return REMOTECOMMAND_PROTOCOLS.find((protocol) => offered.has(protocol)) ?? false;
}

/** The Status the error channel carries for a result (undefined: v1 success, send nothing). */
export function resultStatus(result: ExecResult): Status {
  const base = { apiVersion: 'v1' as const, kind: 'Status' as const, metadata: {} };
  if ('error' in result) return { ...base, status: 'Failure', reason: 'InternalError', message: result.error, code: 500 };
  if (result.exitCode === 0) return { ...base, status: 'Success', code: 200 };
  return {
    ...base,
    status: 'Failure',
    reason: 'NonZeroExitCode',
    message: `command terminated with non-zero exit code: exit status ${result.exitCode}`,
    details: { causes: [{ reason: 'ExitCode', message: String(result.exitCode) }] },
    code: 500,
  };
}

function errorPayload(protocol: string, result: ExecResult): Buffer | undefined {
  const status = resultStatus(result);
  if (protocol !== REMOTECOMMAND_V1) {
    // Upstream's v4 status carries no apiVersion/kind/code; clients decode either way.
    const { apiVersion: _v, kind: _k, code: _c, ...wire } = status;
    return Buffer.from(JSON.stringify(wire));
  }
  return status.status === 'Success' ? undefined : Buffer.from(status.message ?? 'error');
}

/** What the client asked for: the streams it reads, and whether it has a terminal. */
export interface SessionOptions {
  tty: boolean;
  stdout: boolean;
  stderr: boolean;
}

function parseResize(data: Buffer): TerminalSize | undefined {
  try {
    const size = JSON.parse(data.toString('utf8')) as { Width?: unknown; Height?: unknown };
    if (typeof size.Width === 'number' && typeof size.Height === 'number') return { columns: size.Width, rows: size.Height };
  } catch {
    // fall through
  }
  return undefined;
}

/**
 * Runs one session until the process ends (status, close 1000) or the client goes away (kill).
 * `open` starts the process; with `tty` it is called with the client's first window size.
 */
export function serveRemoteCommand(ws: WebSocket, open: (size?: TerminalSize) => StreamedProcess, log: Logger, options: SessionOptions): void {
  const protocol = ws.protocol || REMOTECOMMAND_V1;
  let finished = false;
  let process: StreamedProcess | undefined;
  let gone = false;
  const held: { channel: number; data: Buffer }[] = [];
  const send = (channel: number, data: Buffer, source?: Readable): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(Buffer.concat([Buffer.from([channel]), data]), { binary: true }, () => {
      if (source?.isPaused() && ws.bufferedAmount < HIGH_WATER_BYTES) source.resume();
    });
    if (source && ws.bufferedAmount >= HIGH_WATER_BYTES) source.pause();
  };
  const pipeOut = (channel: number, stream: Readable | undefined): void => {
    stream?.on('data', (chunk: Buffer) => send(channel, chunk, stream));
  };
  const deliver = (target: StreamedProcess, channel: number, data: Buffer): void => {
    if (channel === Channel.stdin) {
      if (target.stdin && !target.stdin.writableEnded) target.stdin.write(data);
    } else if (channel === Channel.resize) {
      const size = parseResize(data);
      if (size) target.resize(size.columns, size.rows);
      else log.debug({ data: data.toString('utf8') }, 'ignoring a malformed resize message');
    } else if (channel === Channel.close && protocol === REMOTECOMMAND_V5 && data[0] === Channel.stdin) {
      target.stdin?.end();
    }
  };
  let waitTimer: NodeJS.Timeout | undefined;
  const start = (size?: TerminalSize): void => {
    clearTimeout(waitTimer);
    if (process || gone) return;
    const started = open(size);
    process = started;
    pipeOut(Channel.stdout, started.stdout);
    pipeOut(Channel.stderr, started.stderr);
    for (const message of held.splice(0)) deliver(started, message.channel, message.data);
    void started.done.then((result) => {
      finished = true;
      const payload = errorPayload(protocol, result);
      if (payload) send(Channel.error, payload);
      if (ws.readyState === ws.OPEN) ws.close(1000);
    });
  };

  ws.on('message', (message: Buffer, isBinary: boolean) => {
    if (!isBinary || message.length === 0) return;
    const channel = message[0]!;
    const data = message.subarray(1);
    if (process) return deliver(process, channel, data);
    if (channel === Channel.resize) {
      const size = parseResize(data);
      if (size) return start(size);
    }
    held.push({ channel, data: Buffer.from(data) });
  });
  ws.on('close', () => {
    gone = true;
    clearTimeout(waitTimer);
    if (process && !finished) process.kill();
  });
  ws.on('error', () => {
    gone = true;
    process?.kill();
  });

  // Tell the client the streams are up, on the lowest channel it reads (as upstream does).
  send(options.stdout ? Channel.stdout : options.stderr ? Channel.stderr : Channel.error, Buffer.alloc(0));
  if (options.tty) waitTimer = setTimeout(() => start(), FIRST_SIZE_WAIT_MS);
  else start();
}
