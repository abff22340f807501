/**
 * The "thick plugin" half of our CNI plugins: a long-running process that runs invocations
 * of pontoon-bridge and pontoon-flannel handed to it over a unix socket, so an ADD does not
 * pay for starting Node. Its clients are `pontoon-*-shim` (a POSIX shell script the runtime
 * execs like any plugin; with no server it execs the plugin itself) and the kubelet's CNI
 * helper. The wire format is src/cni/thick.ts.
 *
 * Invocations run one at a time, in arrival order: the bridge plugin switches the thread's
 * namespace, and IPAM takes its file lock, per call.
 */
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { CniErrorCode } from '../cni/errors.js';
import { CNI_SERVER_GREETING, type CniReply, type CniRequest, MAX_REQUEST_BYTES, parseCniRequest, type ThickPlugin } from '../cni/thick.js';
import type { Logger } from '../lib/log.js';
import { classifyError } from './classify.js';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus } from './bridge/bridge.js';
import { flannelAdd, flannelCheck, flannelDel, flannelGc, flannelStatus } from './flannel/flannel.js';
import { type CniHandlers, runPlugin } from './skel/skel.js';

/** The plugins a server runs (THICK_PLUGINS), by the name their binaries have. */
export const SERVED_PLUGINS: ReadonlyMap<string, CniHandlers> = new Map<ThickPlugin, CniHandlers>([
  ['pontoon-bridge', { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc }],
  ['pontoon-flannel', { add: flannelAdd, del: flannelDel, check: flannelCheck, status: flannelStatus, gc: flannelGc }],
]);

/** Runs one invocation; resolves with the exit code and what the plugin printed. */
export async function serveCniRequest(request: CniRequest, plugins: ReadonlyMap<string, CniHandlers> = SERVED_PLUGINS): Promise<CniReply> {
  const handlers = plugins.get(request.plugin);
  if (!handlers) {
    const msg = `pontoon cni-server does not run plugin "${request.plugin}" (it runs ${[...plugins.keys()].join(', ')})`;
    return { code: 1, stdout: `${JSON.stringify({ cniVersion: '1.1.0', code: CniErrorCode.InvalidEnvironment, msg })}\n` };
  }
  let stdout = '';
  const code = await runPlugin(handlers, classifyError, { env: request.env, readStdin: () => request.stdin, writeStdout: (text) => void (stdout += text) });
  return { code, stdout };
}

export interface CniServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

export async function startCniServer(options: { socketPath: string; log: Logger; plugins?: ReadonlyMap<string, CniHandlers> }): Promise<CniServer> {
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
        const { code, stdout } = await serveCniRequest(request, options.plugins);
        log.info({ plugin: request.plugin, command: request.env['CNI_COMMAND'], containerId: request.env['CNI_CONTAINERID'], code, ms: Date.now() - started }, 'CNI invocation');
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
