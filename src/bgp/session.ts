/**
 * BGP sessions over TCP: `BgpPeerSession` binds one configured peer's `PeerFsm` to sockets,
 * `BgpListener` owns the port-179 server and hands each incoming connection to the session of
 * its remote address (refusing strangers with Cease/Connection Rejected).
 *
 * Design notes:
 * - The FSM decides, the session only carries bytes: it turns frames into FSM events (one
 *   frame at a time, because an OPEN changes how the UPDATEs after it in the same read decode)
 *   and FSM `send`/`closeConnection` calls into socket writes and closes.
 * - Writes are batched: every message encoded in one turn of the event loop is queued and
 *   written as one buffer on the next tick (or at once past 256 KiB), so sending 100k prefixes
 *   costs a few large writes, not one syscall per UPDATE. TCP_NODELAY is on, so a lone
 *   KEEPALIVE or NOTIFICATION still leaves at once.
 * - Closing a connection half-closes it (FIN after the queued NOTIFICATION) and keeps
 *   reading until the peer closes or `lingerMs` passes: destroying a socket with unread data
 *   makes the kernel send RST, which can discard the NOTIFICATION before the peer reads it.
 * - Sockets that must live in a namespace are created inside it (lib/netns.ts): outgoing
 *   through `tcpSocketIn`; the listening socket with socket(2)+bind(2) inside, handed to Node,
 *   because Node resolves a listen host asynchronously, after `withNetns` has returned.
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { describeError, PontoonError } from '../lib/errors.js';
import { formatIp, type Ip, tryParseIp } from '../lib/ip.js';
import { createLogger, type Logger } from '../lib/log.js';
import { netnsPath, tcpSocketIn, withNetns } from '../lib/netns.js';
import * as libc from '../lib/sys/libc.js';
import { BgpMessageError, decodeMessage, encodeMessage, MessageFramer } from './codec/index.js';
import {
  type ConnectionId,
  type DecodedUpdate,
  type DownInfo,
  type Direction,
  type FsmEvent,
  messageErrorEvent,
  messageEvent,
  type NegotiatedSession,
  PeerFsm,
  type PeerFsmOptions,
  type State,
} from './fsm.js';
import { type Clock, TimerClock } from './timers.js';
import { type BgpMessage, CEASE_SUBCODE, ERROR_CODE, type Family, type UpdateMessage } from './types.js';

export const BGP_PORT = 179;
/** queued bytes past which a connection writes at once instead of on the next tick */
const FLUSH_BYTES = 256 * 1024;

export class BgpSessionError extends PontoonError {}

/** What the speaker hears from a session. */
export interface BgpSessionHandlers {
  established?(negotiated: NegotiatedSession): void;
  update?(update: DecodedUpdate): void;
  routeRefresh?(family: Family, subtype: number): void;
  down?(info: DownInfo): void;
  stateChanged?(from: State, to: State, reason: string): void;
}

export interface BgpPeerSessionOptions extends Omit<PeerFsmOptions, 'clock' | 'outputs' | 'log'> {
  readonly peerAddress: Ip;
  /** default 179 */
  readonly peerPort?: number;
  /** source address of our connections (the address the peer has configured for us) */
  readonly localAddress?: Ip;
  /** connect from inside this named network namespace */
  readonly netns?: string;
  readonly handlers?: BgpSessionHandlers;
  readonly log?: Logger;
  /** default: real timers */
  readonly clock?: Clock;
  /** how long a closed connection waits for the peer's FIN before it is destroyed; default 3 s */
  readonly lingerMs?: number;
}

export interface BgpSessionStats {
  readonly state: State;
  /** when the state last changed */
  readonly since: Date;
  readonly establishedSince?: Date;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly updatesIn: number;
  readonly updatesOut: number;
  readonly lastError: string;
}

interface Connection {
  readonly id: ConnectionId;
  readonly direction: Direction;
  readonly socket: Socket;
  readonly framer: MessageFramer;
  queue: Uint8Array[];
  queuedBytes: number;
  flushScheduled: boolean;
  /** the FSM is done with it: no more events, reads discarded */
  closing: boolean;
  error?: string;
  /** frames read but not yet handled, from `next` on (see FRAME_BYTES_PER_TURN) */
  backlog: Uint8Array[];
  next: number;
  /** the socket is paused and the backlog's rest is handled on the next turn */
  continuing: boolean;
}

/**
 * Frame bytes handled per turn of the event loop. A table transfer's reads come back to
 * back (libuv reads up to 32 × 64 KiB per wakeup), and handling a whole read at once —
 * ~16k prefixes, ~150 ms — would starve everything else: the control socket's status
 * request, the hold timers of other peers, the kernel's batch completions (which the
 * speaker needs back before it can send the next). So after this many bytes the socket is
 * paused, and the rest follows on the next turn. ~4k /24 prefixes at GoBGP's packing.
 */
const FRAME_BYTES_PER_TURN = 16 * 1024;

let nextConnectionId = 1;

/** `::ffff:10.0.0.1` (an IPv4 client of a dual-stack listener) is 10.0.0.1. */
export function peerKey(address: string | Ip): string {
  if (typeof address !== 'string') return formatIp(address);
  const text = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  const ip = tryParseIp(text);
  return ip ? formatIp(ip) : text;
}

export class BgpPeerSession {
  /** the peer's address as text: the listener's dispatch key */
  readonly key: string;
  private readonly fsm: PeerFsm;
  private readonly connections = new Map<ConnectionId, Connection>();
  private readonly closingSockets = new Set<Socket>();
  private readonly handlers: BgpSessionHandlers;
  private readonly log: Logger;
  private readonly ownedClock: TimerClock | undefined;
  private readonly lingerMs: number;
  /** frames encoded ahead by sendUpdates, so an encoding error throws before anything is sent */
  private preEncoded: Map<BgpMessage, Uint8Array> | undefined;
  private counters = { messagesIn: 0, messagesOut: 0, updatesIn: 0, updatesOut: 0 };
  private lastError = '';
  private since = new Date();
  private establishedSince: Date | undefined;

  constructor(private readonly options: BgpPeerSessionOptions) {
    this.key = peerKey(options.peerAddress);
    this.handlers = options.handlers ?? {};
    this.log = (options.log ?? createLogger('bgp')).child({ peer: this.key });
    this.lingerMs = options.lingerMs ?? 3000;
    this.ownedClock = options.clock ? undefined : new TimerClock();
    const clock = options.clock ?? this.ownedClock;
    if (!clock) throw new BgpSessionError('unreachable: no clock');
    this.fsm = new PeerFsm({
      ...options,
      clock,
      log: this.log,
      outputs: {
        connect: () => this.connect(),
        send: (id, message) => this.send(id, message),
        closeConnection: (id) => this.closeConnection(id),
        established: (negotiated) => {
          this.establishedSince = new Date();
          this.handlers.established?.(negotiated);
        },
        update: (update) => this.handlers.update?.(update),
        routeRefresh: (family, subtype) => this.handlers.routeRefresh?.(family, subtype),
        down: (info) => {
          this.establishedSince = undefined;
          this.lastError = info.reason;
          this.handlers.down?.(info);
        },
        stateChanged: (from, to, reason) => {
          this.since = new Date();
          if (to === 'Idle' && reason) this.lastError = reason;
          this.handlers.stateChanged?.(from, to, reason);
        },
      },
    });
  }

  get state(): State {
    return this.fsm.state;
  }

  get negotiated(): NegotiatedSession | undefined {
    return this.fsm.negotiated;
  }

  stats(): BgpSessionStats {
    return {
      state: this.fsm.state,
      since: this.since,
      ...(this.establishedSince ? { establishedSince: this.establishedSince } : {}),
      ...this.counters,
      lastError: this.lastError,
    };
  }

  /** ManualStart (passive when configured so). */
  start(): void {
    this.fsm.handle({ type: 'ManualStart' });
  }

  /** ManualStop: Cease to the peer (ADMINISTRATIVE_SHUTDOWN unless `subcode`), no restart. */
  stop(options: { subcode?: number; reason?: string; gracefulRestart?: boolean } = {}): void {
    this.fsm.handle({ type: 'ManualStop', ...options });
  }

  /** Stops (PEER_DECONFIGURED unless told) and resolves once every socket is closed. */
  async close(options: { subcode?: number; reason?: string; gracefulRestart?: boolean } = {}): Promise<void> {
    this.stop({ subcode: CEASE_SUBCODE.PEER_DECONFIGURED, reason: 'peer removed', ...options });
    this.ownedClock?.clearAll();
    const sockets = [...this.closingSockets, ...[...this.connections.values()].map((c) => c.socket)];
    await Promise.all(sockets.map((socket) => (socket.destroyed ? undefined : new Promise<void>((resolve) => socket.once('close', () => resolve())))));
  }

  /**
   * Sends UPDATEs on the Established session, all in one socket write. False when not
   * Established. Throws BgpEncodeError (nothing sent) for an UPDATE that cannot be encoded.
   */
  sendUpdates(updates: readonly UpdateMessage[]): boolean {
    const id = this.fsm.primaryConnection;
    if (this.fsm.state !== 'Established' || id === undefined) return false;
    const ctx = this.fsm.codecContext(id);
    const frames = new Map<BgpMessage, Uint8Array>();
    for (const update of updates) frames.set(update, encodeMessage(update, ctx));
    this.preEncoded = frames;
    try {
      return this.fsm.sendUpdates(updates);
    } finally {
      this.preEncoded = undefined;
    }
  }

  requestRouteRefresh(family: Family): boolean {
    return this.fsm.requestRouteRefresh(family);
  }

  /** A connection from the peer's address, handed over by the listener. */
  acceptIncoming(socket: Socket): void {
    const conn = this.attach(socket, 'incoming');
    this.log.debug({ connection: conn.id, remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'incoming BGP connection');
    this.fsm.handle({ type: 'TcpConnectionConfirmed', connection: conn.id });
  }

  // -------------------------------------------------------------------------------------

  private connect(): ConnectionId {
    const { peerAddress, localAddress } = this.options;
    const socket = tcpSocketIn(this.options.netns, peerAddress.family === 6);
    const conn = this.attach(socket, 'outgoing');
    socket.once('connect', () => {
      if (!conn.closing) this.fsm.handle({ type: 'Tcp_CR_Acked', connection: conn.id });
    });
    socket.connect({
      host: formatIp(peerAddress),
      port: this.options.peerPort ?? BGP_PORT,
      ...(localAddress ? { localAddress: formatIp(localAddress) } : {}),
    });
    return conn.id;
  }

  private attach(socket: Socket, direction: Direction): Connection {
    const conn: Connection = { id: nextConnectionId++, direction, socket, framer: new MessageFramer(), queue: [], queuedBytes: 0, flushScheduled: false, closing: false, backlog: [], next: 0, continuing: false };
    this.connections.set(conn.id, conn);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(conn, chunk));
    socket.on('error', (err) => {
      conn.error = describeError(err);
    });
    socket.on('close', () => {
      this.connections.delete(conn.id);
      this.closingSockets.delete(socket);
      if (conn.closing) return;
      conn.closing = true;
      if (conn.error) this.lastError = conn.error;
      this.fsm.handle({ type: 'TcpConnectionFails', connection: conn.id, ...(conn.error ? { error: conn.error } : {}) });
    });
    return conn;
  }

  private receive(conn: Connection, chunk: Buffer): void {
    if (conn.closing) return; // lingering after our NOTIFICATION: drain, ignore
    let frames: Uint8Array[];
    try {
      frames = conn.framer.push(chunk);
    } catch (err) {
      // Frames still waiting from earlier reads come before the error, in order.
      this.handleBacklog(conn, Number.POSITIVE_INFINITY);
      if (!conn.closing) this.deliverError(conn, err);
      return;
    }
    for (const frame of frames) conn.backlog.push(frame);
    if (!conn.continuing) this.handleBacklog(conn, FRAME_BYTES_PER_TURN);
  }

  /** Handles backlog frames, one at a time, until `budget` bytes; the rest on the next turn. */
  private handleBacklog(conn: Connection, budget: number): void {
    let bytes = 0;
    while (conn.next < conn.backlog.length) {
      // An earlier frame may have ended the connection.
      if (conn.closing) break;
      if (bytes >= budget) {
        if (!conn.continuing) {
          conn.continuing = true;
          conn.socket.pause();
          setImmediate(() => this.continueBacklog(conn));
        }
        return;
      }
      const frame = conn.backlog[conn.next++] as Uint8Array;
      bytes += frame.length;
      // After a frame that failed to decode the rest of the read is not looked at.
      if (!this.handleFrame(conn, frame)) break;
    }
    conn.backlog = [];
    conn.next = 0;
  }

  private continueBacklog(conn: Connection): void {
    conn.continuing = false;
    this.handleBacklog(conn, FRAME_BYTES_PER_TURN);
    if (!conn.continuing && !conn.socket.destroyed) conn.socket.resume();
  }

  /** False when the frame did not decode (the FSM has been told). */
  private handleFrame(conn: Connection, frame: Uint8Array): boolean {
    let event: FsmEvent;
    try {
      const decoded = decodeMessage(frame, this.fsm.codecContext(conn.id));
      this.counters.messagesIn++;
      if (decoded.message.type === 'update') this.counters.updatesIn++;
      if (decoded.problems) this.log.warn({ connection: conn.id, problems: decoded.problems }, 'BGP message accepted with problems');
      if (decoded.ignore) return true; // RFC 7313 §5 / RFC 2918 §4: a ROUTE-REFRESH to drop
      event = messageEvent(conn.id, decoded);
    } catch (err) {
      this.deliverError(conn, err);
      return false;
    }
    this.fsm.handle(event);
    return true;
  }

  private deliverError(conn: Connection, err: unknown): void {
    this.lastError = describeError(err);
    if (err instanceof BgpMessageError) {
      this.fsm.handle(messageErrorEvent(conn.id, { code: err.code, subcode: err.subcode, data: err.data, message: err.message }));
      return;
    }
    // A decoder bug, not the peer's fault as far as we know: reset the session with a bare
    // Cease rather than crash the speaker for every peer.
    this.log.error({ err, connection: conn.id }, 'BGP decoder failed unexpectedly');
    this.fsm.handle(messageErrorEvent(conn.id, { code: ERROR_CODE.CEASE, subcode: 0, data: new Uint8Array(0), message: describeError(err) }));
  }

  private send(id: ConnectionId, message: BgpMessage): void {
    const conn = this.connections.get(id);
    if (!conn || conn.closing) return;
    const frame = this.preEncoded?.get(message) ?? encodeMessage(message, this.fsm.codecContext(id));
    this.counters.messagesOut++;
    if (message.type === 'update') this.counters.updatesOut++;
    conn.queue.push(frame);
    conn.queuedBytes += frame.length;
    if (conn.queuedBytes >= FLUSH_BYTES) this.flush(conn);
    else if (!conn.flushScheduled) {
      conn.flushScheduled = true;
      process.nextTick(() => this.flush(conn));
    }
  }

  private flush(conn: Connection): void {
    conn.flushScheduled = false;
    if (conn.queue.length === 0 || conn.socket.destroyed) return;
    const data = conn.queue.length === 1 ? conn.queue[0] : Buffer.concat(conn.queue, conn.queuedBytes);
    conn.queue = [];
    conn.queuedBytes = 0;
    if (data) conn.socket.write(data);
  }

  private closeConnection(id: ConnectionId): void {
    const conn = this.connections.get(id);
    if (!conn || conn.closing) return;
    conn.closing = true;
    this.connections.delete(id);
    const socket = conn.socket;
    if (socket.connecting || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.flush(conn);
    this.closingSockets.add(socket);
    socket.end();
    const linger = setTimeout(() => socket.destroy(), this.lingerMs);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  }
}

export interface BgpListenerOptions {
  /** default: every IPv4 address (0.0.0.0); give `::` for a dual-stack listener */
  readonly address?: Ip;
  /** default 179; 0 picks a free port (see `listen`'s result) */
  readonly port?: number;
  /** listen inside this named network namespace */
  readonly netns?: string;
  readonly log?: Logger;
  /** how long a refused connection waits for the peer to read our NOTIFICATION; default 3 s */
  readonly lingerMs?: number;
}

const SO_REUSEADDR = 2;
const SOCK_STREAM = 1;
const AF_INET6 = 10;

/** `struct sockaddr_in6` for bind(2). */
function sockaddrIn6(ip: Ip, port: number): Buffer {
  const sockaddr = Buffer.alloc(28);
  sockaddr.writeUInt16LE(AF_INET6, 0);
  sockaddr.writeUInt16BE(port, 2);
  for (let i = 0; i < 16; i++) sockaddr[8 + i] = Number((ip.value >> BigInt(8 * (15 - i))) & 0xffn);
  return sockaddr;
}

export class BgpListener {
  private readonly server: Server;
  private readonly sessions = new Map<string, BgpPeerSession>();
  private readonly log: Logger;
  private readonly open = new Set<Socket>();

  constructor(private readonly options: BgpListenerOptions = {}) {
    this.log = (options.log ?? createLogger('bgp')).child({ listener: `${options.address ? formatIp(options.address) : '*'}:${options.port ?? BGP_PORT}` });
    this.server = createServer((socket) => this.dispatch(socket));
  }

  /** Routes connections from `session.key` to the session. */
  add(session: BgpPeerSession): void {
    this.sessions.set(session.key, session);
  }

  remove(session: BgpPeerSession): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
  }

  listen(): Promise<AddressInfo> {
    const { address, netns } = this.options;
    const port = this.options.port ?? BGP_PORT;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.once('listening', () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err }, 'BGP listener failed'));
        resolve(this.server.address() as AddressInfo);
      });
      if (!netns) {
        this.server.listen({ host: address ? formatIp(address) : '0.0.0.0', port });
        return;
      }
      const ip: Ip = address ?? { family: 4, value: 0n };
      const fd = withNetns(netnsPath(netns), () => {
        const socketFd = libc.socket(ip.family === 6 ? AF_INET6 : libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
        try {
          const one = Buffer.alloc(4);
          one.writeInt32LE(1);
          libc.setsockopt(socketFd, libc.SOL_SOCKET, SO_REUSEADDR, one);
          libc.bind(socketFd, ip.family === 6 ? sockaddrIn6(ip, port) : libc.sockaddrIn(Number(ip.value), port));
        } catch (err) {
          libc.close(socketFd);
          throw err;
        }
        return socketFd;
      });
      // Node calls listen(2) on the bound socket; the socket stays in its namespace.
      this.server.listen({ fd });
    });
  }

  /**
   * Stops accepting. Connections already handed to sessions are theirs to close, and the
   * promise (net.Server's close) resolves only once they are: close the sessions first.
   */
  close(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private dispatch(socket: Socket): void {
    const remote = peerKey(socket.remoteAddress ?? '');
    const session = this.sessions.get(remote);
    if (session) {
      session.acceptIncoming(socket);
      return;
    }
    // RFC 4486 Connection Rejected: tell the stranger why before closing.
    this.log.warn({ remote, port: socket.remotePort }, 'refusing BGP connection from an unconfigured peer');
    this.open.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', () => undefined); // drain, so closing sends FIN rather than RST
    socket.on('close', () => this.open.delete(socket));
    socket.setNoDelay(true);
    socket.end(encodeMessage({ type: 'notification', code: ERROR_CODE.CEASE, subcode: CEASE_SUBCODE.CONNECTION_REJECTED, data: new Uint8Array(0) }, { fourOctetAsn: false }));
    setTimeout(() => socket.destroy(), this.options.lingerMs ?? 3000).unref();
  }
}
