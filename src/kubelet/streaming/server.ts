/**
 * The kubelet's streaming endpoints, on the same unix socket as its logs (the apiserver
 * proxies `pods/<name>/exec|attach|portforward` upgrades here unchanged):
 *
 *   /exec/<ns>/<pod>/<container>?command=…&stdin=&stdout=&stderr=&tty=   WebSocket
 *   /attach/<ns>/<pod>/<container>?stdin=&stdout=&stderr=&tty=           WebSocket
 *   /portForward/<ns>/<pod>                    WebSocket-tunnelled SPDY, or a SPDY upgrade
 *
 * Lookups happen before the handshake so a refusal is an HTTP error with a Status body —
 * what kubectl prints ("container not found") — rather than a stream that opens and dies.
 * SPDY is taken only for port-forward: kubectl 1.32 execs over WebSocket and falls back to
 * SPDY only when the WebSocket upgrade fails, which then fails the same way.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws';
import type { Status } from '../../api/meta.js';
import { describeError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { startAttach } from './attach.js';
import { startExec } from './exec.js';
import { PORTFORWARD_PROTOCOL, PORTFORWARD_WEBSOCKET_PROTOCOL, servePortForward } from './portforward.js';
import { negotiateRemoteCommand, serveRemoteCommand, type StreamedProcess, type TerminalSize } from './remotecommand.js';
import type { StreamTargets } from './target.js';

type Route =
  | { kind: 'exec' | 'attach'; namespace: string; pod: string; container: string; query: URLSearchParams }
  | { kind: 'portforward'; namespace: string; pod: string };

/** strconv.ParseBool, which upstream's query decoding uses. */
function queryBool(query: URLSearchParams, name: string): boolean {
  return ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(query.get(name) ?? '');
}

function parseRoute(url: URL): Route | undefined {
  const parts = url.pathname.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  const [kind, namespace, pod, container] = parts;
  if ((kind === 'exec' || kind === 'attach') && parts.length === 4) return { kind, namespace: namespace!, pod: pod!, container: container!, query: url.searchParams };
  if (kind === 'portForward' && parts.length === 3) return { kind: 'portforward', namespace: namespace!, pod: pod! };
  return undefined;
}

function statusBody(code: number, message: string): Status {
  const reason = code === 404 ? 'NotFound' : code === 400 ? 'BadRequest' : code === 403 ? 'Forbidden' : 'InternalError';
  return { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', message, reason, code };
}

function refuse(socket: Duplex, code: number, message: string): void {
  const body = JSON.stringify(statusBody(code, message));
  const text = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found' }[code] ?? 'Internal Server Error';
  socket.end(`HTTP/1.1 ${code} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export class StreamingServer {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<Duplex>();
  /** Port-forward upgrades whose subprotocol we answer ourselves (see route). */
  private readonly tunnelled = new WeakSet<IncomingMessage>();

  constructor(
    private readonly targets: StreamTargets,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (offered) => negotiateRemoteCommand(offered),
    });
    this.wss.on('headers', (headers, req) => {
      if (this.tunnelled.delete(req)) headers.push(`Sec-WebSocket-Protocol: ${PORTFORWARD_WEBSOCKET_PROTOCOL}`);
    });
  }

  /** Entry for the HTTP server's 'upgrade' event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    try {
      this.route(req, socket, head);
    } catch (err) {
      this.log.error({ url: req.url, err: describeError(err) }, 'stream request failed');
      refuse(socket, 500, describeError(err));
    }
  }

  /** Ends every open stream (the kubelet is stopping); exec'd processes are killed by their sessions. */
  close(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.wss.close();
  }

  private route(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://kubelet');
    const route = parseRoute(url);
    if (!route) return refuse(socket, 404, `no streaming handler for ${url.pathname}`);
    const websocket = (req.headers.upgrade ?? '').toLowerCase() === 'websocket';

    if (route.kind === 'portforward') {
      const found = this.targets.podNetwork(route.namespace, route.pod);
      if (!found.ok) return refuse(socket, found.code, found.message);
      const target = found.target;
      if (websocket) {
        const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
        if (!offered.includes(PORTFORWARD_WEBSOCKET_PROTOCOL)) return refuse(socket, 400, `port-forward over WebSocket needs subprotocol ${PORTFORWARD_WEBSOCKET_PROTOCOL}`);
        // "SPDY/3.1+portforward.k8s.io" is not an RFC 7230 token ('/' is a separator), so ws
        // would refuse the header: negotiate it ourselves and add it to the 101 answer.
        delete req.headers['sec-websocket-protocol'];
        this.tunnelled.add(req);
        return this.wss.handleUpgrade(req, socket, head, (ws) => {
          servePortForward(createWebSocketStream(ws), target, this.log);
        });
      }
      if (!/^spdy\/3\.1$/i.test(req.headers.upgrade ?? '')) return refuse(socket, 400, 'port-forward needs a WebSocket or SPDY/3.1 upgrade');
      const offered = String(req.headers['x-stream-protocol-version'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
      if (offered.length > 0 && !offered.includes(PORTFORWARD_PROTOCOL)) {
        return refuse(socket, 403, `unable to upgrade: unable to negotiate protocol: client supports [${offered.join(' ')}], server accepts [${PORTFORWARD_PROTOCOL}]`);
      }
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${PORTFORWARD_PROTOCOL}\r\n\r\n`);
      if (head.length > 0) socket.unshift(head);
      servePortForward(socket, target, this.log);
      return;
    }

    const found = this.targets.container(route.namespace, route.pod, route.container);
    if (!found.ok) return refuse(socket, found.code, found.message);
    const target = found.target;
    const { query } = route;
    const tty = queryBool(query, 'tty');
    const stdin = queryBool(query, 'stdin');
    const stdout = queryBool(query, 'stdout');
    const stderr = queryBool(query, 'stderr') && !tty;
    if (!stdin && !stdout && !stderr) return refuse(socket, 400, 'you must specify at least 1 of stdin, stdout, stderr');
    const command = query.getAll('command');
    if (route.kind === 'exec' && command.length === 0) return refuse(socket, 400, 'you must specify at least 1 command');
    if (route.kind === 'attach' && stdin && !target.stdinPath) {
      return refuse(socket, 400, `container ${route.container} in pod ${route.pod} was not started with stdin: true; attach without -i`);
    }

    // Checked last: kubectl retries a refused WebSocket upgrade over SPDY and prints the
    // second answer, so every refusal above must come first to reach the user.
    if (!websocket) return refuse(socket, 400, `${route.kind} is served over WebSocket (v5.channel.k8s.io); SPDY is not supported`);
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const open = (size?: TerminalSize): StreamedProcess => {
        let process: StreamedProcess;
        try {
          process = route.kind === 'exec' ? startExec(target, { command, stdin, tty, ...size }) : startAttach(target, { stdin, stdout, stderr });
        } catch (err) {
          this.log.warn({ pod: `${route.namespace}/${route.pod}`, err: describeError(err) }, `${route.kind} failed to start`);
          process = { stdin: undefined, stdout: undefined, stderr: undefined, resize: () => undefined, kill: () => undefined, done: Promise.resolve({ error: describeError(err) }) };
        }
        // Streams the client did not ask for are drained so a full pipe cannot stall the process.
        if (!stdout) process.stdout?.resume();
        if (!stderr) process.stderr?.resume();
        this.log.info({ pod: `${route.namespace}/${route.pod}`, container: route.container, kind: route.kind, tty, command, size }, 'stream session started');
        return { ...process, stdout: stdout ? process.stdout : undefined, stderr: stderr ? process.stderr : undefined };
      };
      // Attach joins a running terminal: nothing to size before it starts.
      serveRemoteCommand(ws, open, this.log, { tty: tty && route.kind === 'exec', stdout, stderr });
    });
  }
}
