/**
 * The "thick plugin" half of pontoon-bridge: a long-running process that runs bridge
 * invocations handed to it over a unix socket by `pontoon-bridge-shim` (a POSIX shell
 * script), so an ADD does not pay for starting Node. The exec contract stays: the shim is
 * a CNI plugin binary like any other, and when no server answers it execs `pontoon-bridge`.
 *
 * Wire format, one invocation per connection. The server speaks first, `pontoon-cni 1\n`, so
 * a shim that sees nothing knows nothing ran and may fall back. The shim sends `NAME=value`
 * lines (the CNI_* variables), an empty line, the network config, and closes its side. The
 * server answers with the exit code on a line, then what the plugin printed, and closes.
 * Invocations run one at a time, in arrival order: the bridge plugin switches the thread's
 * namespace, and IPAM takes its file lock, per call.
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../lib/log.js';
import { classifyError } from './classify.js';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus } from './bridge/bridge.js';
import { type CniHandlers, runPlugin } from './skel/skel.js';

export const CNI_SERVER_GREETING = 'pontoon-cni 1\n';
export const DEFAULT_CNI_SOCKET = '/run/pontoon/cni.sock';
/** A network config is a few KiB; anything near this is not one. */
const MAX_REQUEST_BYTES = 1024 * 1024;
/** Only these reach the plugin: the server's own environment is not the runtime's. */
const CNI_VARIABLES = new Set(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']);

const BRIDGE: CniHandlers = { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc };

/** One invocation as the shim sent it. */
export interface CniRequest {
  env: Record<string, string>;
  stdin: Buffer;
}

/** Splits a request into its variables and its config; undefined when it is not one. */
export function parseCniRequest(data: Buffer): CniRequest | undefined {
  const end = data.indexOf('\n\n');
  if (end < 0) return undefined;
  const env: Record<string, string> = {};
  for (const line of data.subarray(0, end).toString('utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at <= 0) return undefined;
    const name = line.slice(0, at);
    // The shim prints every variable it knows; one the runtime did not set arrives empty.
    if (CNI_VARIABLES.has(name) && at < line.length - 1) env[name] = line.slice(at + 1);
  }
  return { env, stdin: data.subarray(end + 2) };
}

/** Runs one invocation; resolves with the exit code and what the plugin printed. */
export async function serveCniRequest(request: CniRequest, handlers: CniHandlers = BRIDGE): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const code = await runPlugin(handlers, classifyError, { env: request.env, readStdin: () => request.stdin, writeStdout: (text) => void (stdout += text) });
  return { code, stdout };
}

export interface CniServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

export async function startCniServer(options: { socketPath: string; log: Logger; handlers?: CniHandlers }): Promise<CniServer> {
  const { socketPath, log } = options;
  // A socket file left by a killed server: nothing listens on it any more.
  if (existsSync(socketPath)) rmSync(socketPath);
  let queue: Promise<void> = Promise.resolve();
  // Half-open: the shim ends its side after the request and still reads the answer.
  const server: Server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    socket.write(CNI_SERVER_GREETING);
    const chunks: Buffer[] = [];
    let size = 0;
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        log.warn({ bytes: size }, 'CNI request too large; dropped');
        socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    socket.on('error', (err) => log.warn({ err: err.message }, 'CNI connection failed'));
    socket.on('end', () => {
      const request = parseCniRequest(Buffer.concat(chunks));
      if (!request) {
        log.warn('malformed CNI request; closed without an answer');
        socket.destroy();
        return;
      }
      queue = queue.then(async () => {
        const started = Date.now();
        const { code, stdout } = await serveCniRequest(request, options.handlers);
        log.info({ command: request.env['CNI_COMMAND'], containerId: request.env['CNI_CONTAINERID'], code, ms: Date.now() - started }, 'CNI invocation');
        socket.end(`${code}\n${stdout}`);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return {
    socketPath,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
