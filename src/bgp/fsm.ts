/**
 * The BGP finite state machine of one peer (RFC 4271 §8), pure: no sockets, no timers of its
 * own. Events go in through `handle`; what to do comes out through `FsmOutputs` (send, connect,
 * close, and what the speaker must know); timers are named and armed through a `Clock`.
 *
 * Design notes:
 * - One handler per state, each returning `{ next, reason }` (as GoBGP's fsm.go): the
 *   transition, its log line and its `stateChanged` call live in one place.
 * - Connections have ids, because a peer may briefly have two (§6.8 collision). The one the
 *   peer's state describes is the *primary*; a second one (the *candidate*) exists only until
 *   its OPEN, or the primary's, arrives. With the peer's identifier known, the collision is
 *   resolved right then, so the candidate never gets past OpenSent: when it wins it replaces
 *   the primary, when it loses it gets Cease/Connection Collision Resolution.
 * - A failed TCP connect goes to Active, not Idle (as BIRD and FRR do, unlike the RFC's
 *   Connect/event 18): Active keeps accepting the peer's connection while the connect retry
 *   timer waits. Errors after the OPEN go to Idle and restart after an idle hold time. Both
 *   waits come from one jittered exponential backoff, so a flapping or unreachable peer is
 *   damped (§8.1.1 DampPeerOscillations); it is reset only after the session has stayed
 *   Established for `stableMs`, or a peer that dies right after each OPEN would never be damped.
 * - In Idle we refuse the peer's connections (Cease/Connection Rejected, RFC 4486); after
 *   ManualStop nothing restarts us.
 */
import { Backoff } from '../lib/backoff.js';
import { PontoonError } from '../lib/errors.js';
import { buildOpen, checkOpen, collisionSurvivor, type Direction, type GracefulRestartOptions, type LocalSpeaker, type NegotiatedSession, notification } from './fsm-open.js';
import type { Clock } from './timers.js';
import {
  type BgpMessage,
  CEASE_SUBCODE,
  type CodecContext,
  ERROR_CODE,
  type Family,
  type NotificationMessage,
  type OpenMessage,
  type RouteRefreshMessage,
  type UpdateMessage,
} from './types.js';

export type { Direction, GracefulRestartOptions, NegotiatedSession } from './fsm-open.js';
export { buildOpen, checkOpen, collisionSurvivor } from './fsm-open.js';

export type State = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

/** Opaque id of one TCP connection, chosen by whoever owns the sockets (`FsmOutputs.connect`, or the acceptor). */
export type ConnectionId = number;

/** A decoding failure as the codec reports it (BgpMessageError has exactly these fields). */
export interface MessageErrorInfo {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
  readonly message?: string;
}

/** An UPDATE as the codec decoded it; `treatAsWithdraw` is RFC 7606's verdict. */
export interface DecodedUpdate {
  readonly message: UpdateMessage;
  readonly treatAsWithdraw?: boolean;
  readonly discarded?: readonly number[];
  readonly problems?: readonly string[];
}

/**
 * RFC 4271 §8.1 events, named as there. Tcp_CR_Acked is our connect completing (event 16),
 * TcpConnectionConfirmed the peer's connect accepted (17; events 14/15 are the listener's
 * address check, done before a connection reaches the FSM). IdleHoldTimer_Expires is the
 * automatic restart after an error (event 13).
 */
export type FsmEvent =
  | { readonly type: 'ManualStart' }
  | { readonly type: 'ManualStart_with_PassiveTcpEstablishment' }
  | {
      readonly type: 'ManualStop';
      /** Cease subcode to send; ADMINISTRATIVE_SHUTDOWN by default */
      readonly subcode?: number;
      readonly reason?: string;
      /** close without a NOTIFICATION, so a GR peer keeps our routes while we restart (RFC 4724 §4.1) */
      readonly gracefulRestart?: boolean;
    }
  | { readonly type: 'IdleHoldTimer_Expires' }
  | { readonly type: 'ConnectRetryTimer_Expires' }
  | { readonly type: 'HoldTimer_Expires'; readonly connection: ConnectionId }
  | { readonly type: 'KeepaliveTimer_Expires'; readonly connection: ConnectionId }
  | { readonly type: 'Tcp_CR_Acked'; readonly connection: ConnectionId }
  | { readonly type: 'TcpConnectionConfirmed'; readonly connection: ConnectionId }
  | { readonly type: 'TcpConnectionFails'; readonly connection: ConnectionId; readonly error?: string }
  | { readonly type: 'BGPOpen'; readonly connection: ConnectionId; readonly message: OpenMessage }
  | { readonly type: 'BGPHeaderErr'; readonly connection: ConnectionId; readonly error: MessageErrorInfo }
  | { readonly type: 'BGPOpenMsgErr'; readonly connection: ConnectionId; readonly error: MessageErrorInfo }
  | { readonly type: 'OpenCollisionDump'; readonly connection: ConnectionId }
  | { readonly type: 'NotifMsg'; readonly connection: ConnectionId; readonly message: NotificationMessage }
  | { readonly type: 'KeepAliveMsg'; readonly connection: ConnectionId }
  | { readonly type: 'UpdateMsg'; readonly connection: ConnectionId; readonly update: DecodedUpdate }
  | { readonly type: 'UpdateMsgErr'; readonly connection: ConnectionId; readonly error: MessageErrorInfo }
  | { readonly type: 'RouteRefreshMsg'; readonly connection: ConnectionId; readonly message: RouteRefreshMessage };

type ConnectionEvent = Extract<FsmEvent, { readonly connection: ConnectionId }>;

/** The event a decoded message is, for the session to feed in. */
export function messageEvent(connection: ConnectionId, decoded: { readonly message: BgpMessage } & Omit<DecodedUpdate, 'message'>): FsmEvent {
  const message = decoded.message;
  switch (message.type) {
    case 'open':
      return { type: 'BGPOpen', connection, message };
    case 'keepalive':
      return { type: 'KeepAliveMsg', connection };
    case 'notification':
      return { type: 'NotifMsg', connection, message };
    case 'route-refresh':
      return { type: 'RouteRefreshMsg', connection, message };
    case 'update':
      return { type: 'UpdateMsg', connection, update: { ...decoded, message } };
  }
}

/** The event a decoding error is: the NOTIFICATION code says which part of the message was bad. */
export function messageErrorEvent(connection: ConnectionId, error: MessageErrorInfo): FsmEvent {
  if (error.code === ERROR_CODE.OPEN_MESSAGE) return { type: 'BGPOpenMsgErr', connection, error };
  if (error.code === ERROR_CODE.UPDATE_MESSAGE) return { type: 'UpdateMsgErr', connection, error };
  // Header errors (1), and anything a decoder reports under another code, end the session the same way.
  return { type: 'BGPHeaderErr', connection, error };
}

export interface DownInfo {
  readonly reason: string;
  /** the peer negotiated GR and the session dropped (TCP or hold timer): keep its routes stale */
  readonly graceful: boolean;
  /** the peer's restart time, when graceful */
  readonly restartTimeSeconds?: number;
  /** families whose routes to keep, when graceful (RFC 4724 §4.2: those in the peer's GR capability) */
  readonly families?: readonly Family[];
  readonly notification?: { readonly direction: 'sent' | 'received'; readonly code: number; readonly subcode: number };
}

/** What the FSM asks of its owner. Only `connect`, `send` and `closeConnection` are required. */
export interface FsmOutputs {
  /** Start a TCP connection to the peer; the returned id is what its Tcp_CR_Acked/TcpConnectionFails carry. */
  connect(): ConnectionId;
  send(connection: ConnectionId, message: BgpMessage): void;
  /** Flush what was sent, then close. No TCP events are expected for the id afterwards. */
  closeConnection(connection: ConnectionId): void;
  established?(negotiated: NegotiatedSession): void;
  update?(update: DecodedUpdate): void;
  routeRefresh?(family: Family, subtype: number): void;
  down?(info: DownInfo): void;
  stateChanged?(from: State, to: State, reason: string): void;
}

/** The part of a pino Logger the FSM uses. */
export interface FsmLog {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  debug(object: object, message: string): void;
}

const silentLog: FsmLog = { info: () => undefined, warn: () => undefined, debug: () => undefined };

export interface PeerFsmOptions {
  readonly localAsn: number;
  readonly peerAsn: number;
  /** our BGP identifier */
  readonly routerId: number;
  /** proposed hold time; 0 or ≥ 3; default 90 */
  readonly holdTimeSeconds?: number;
  /** families we offer; default IPv4 unicast */
  readonly families?: readonly Family[];
  /** never connect, only accept (ManualStart behaves as the passive start) */
  readonly passive?: boolean;
  /** advertise GR; without it no session is ever graceful */
  readonly gracefulRestart?: GracefulRestartOptions;
  /** the wait after a failed connect, and the idle hold time after an error: default 1 s doubling to 120 s (RFC 4271's ConnectRetryTime) */
  readonly retry?: { readonly initialMs?: number; readonly maxMs?: number; readonly random?: () => number };
  /** how long a connect attempt may take before it counts as failed; default 30 s */
  readonly connectTimeoutMs?: number;
  /** how long Established must last before the backoff resets; default 60 s */
  readonly stableMs?: number;
  /** the "large value" the hold timer gets in OpenSent (RFC 4271 §8.2.2 suggests 4 minutes) */
  readonly openSentHoldSeconds?: number;
  readonly clock: Clock;
  readonly outputs: FsmOutputs;
  readonly log?: FsmLog;
}

export class FsmConfigError extends PontoonError {}

export const DEFAULT_HOLD_TIME_SECONDS = 90;
export const OPEN_SENT_HOLD_SECONDS = 240;

/** RFC 6608 FSM error subcodes: which state got the unexpected message. */
export const FSM_SUBCODE = { UNEXPECTED_IN_OPENSENT: 1, UNEXPECTED_IN_OPENCONFIRM: 2, UNEXPECTED_IN_ESTABLISHED: 3 } as const;

export const TIMER = {
  CONNECT_RETRY: 'connectRetry',
  IDLE_HOLD: 'idleHold',
  STABLE: 'stable',
  hold: (connection: ConnectionId) => `hold#${connection}`,
  keepalive: (connection: ConnectionId) => `keepalive#${connection}`,
} as const;

export interface Transition {
  readonly next: State;
  readonly reason?: string;
  /** for a transition out of Established */
  readonly graceful?: boolean;
  readonly notification?: DownInfo['notification'];
}

interface Connection {
  readonly id: ConnectionId;
  readonly direction: Direction;
  negotiated?: NegotiatedSession;
}

interface Failure {
  readonly reason: string;
  /** sent on the connection before it is closed */
  readonly send?: NotificationMessage;
  readonly received?: NotificationMessage;
  /** a session drop GR covers (TCP loss, hold timer), as opposed to a NOTIFICATION exchange */
  readonly graceful?: boolean;
  /** where to go when no other connection remains; Idle unless said */
  readonly fallback?: 'Idle' | 'Active';
}

export class PeerFsm {
  private current: State = 'Idle';
  private primary: Connection | undefined;
  private candidate: Connection | undefined;
  /** our outgoing connect in flight, not yet acked */
  private pendingConnect: ConnectionId | undefined;
  private running = false;
  /** the negotiation of the session that was last Established, for the down report */
  private lastEstablished: NegotiatedSession | undefined;
  private passiveMode: boolean;
  private readonly backoff: Backoff;
  private readonly local: LocalSpeaker;
  private readonly clock: Clock;
  private readonly outputs: FsmOutputs;
  private readonly log: FsmLog;
  private readonly stableMs: number;
  private readonly connectTimeoutMs: number;
  private readonly openSentHoldMs: number;
  private readonly queue: FsmEvent[] = [];
  private handling = false;
  private readonly handlers: Readonly<Record<State, (event: FsmEvent) => Transition>> = {
    Idle: (event) => this.idle(event),
    Connect: (event) => this.connect(event),
    Active: (event) => this.active(event),
    OpenSent: (event) => this.openSent(event),
    OpenConfirm: (event) => this.openConfirm(event),
    Established: (event) => this.established(event),
  };

  constructor(options: PeerFsmOptions) {
    const holdTimeSeconds = options.holdTimeSeconds ?? DEFAULT_HOLD_TIME_SECONDS;
    if (!Number.isInteger(holdTimeSeconds) || holdTimeSeconds < 0 || holdTimeSeconds > 65535 || holdTimeSeconds === 1 || holdTimeSeconds === 2) {
      throw new FsmConfigError(`invalid BGP hold time ${holdTimeSeconds}: set holdTimeSeconds to 0 or 3..65535 (RFC 4271 §4.2)`);
    }
    const families = options.families ?? ['ipv4-unicast'];
    if (families.length === 0) throw new FsmConfigError('no address families: set families to at least one of ipv4-unicast, ipv6-unicast');
    this.local = {
      localAsn: options.localAsn,
      peerAsn: options.peerAsn,
      routerId: options.routerId,
      holdTimeSeconds,
      families,
      ...(options.gracefulRestart ? { gracefulRestart: options.gracefulRestart } : {}),
    };
    this.passiveMode = options.passive ?? false;
    this.backoff = new Backoff({
      initialMs: options.retry?.initialMs ?? 1000,
      maxMs: options.retry?.maxMs ?? 120_000,
      ...(options.retry?.random ? { random: options.retry.random } : {}),
    });
    this.stableMs = options.stableMs ?? 60_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.openSentHoldMs = (options.openSentHoldSeconds ?? OPEN_SENT_HOLD_SECONDS) * 1000;
    this.clock = options.clock;
    this.outputs = options.outputs;
    this.log = options.log ?? silentLog;
  }

  get state(): State {
    return this.current;
  }

  /** The session's agreement while Established. */
  get negotiated(): NegotiatedSession | undefined {
    return this.current === 'Established' ? this.primary?.negotiated : undefined;
  }

  /** The connection the peer's state describes (the one UPDATEs go on when Established). */
  get primaryConnection(): ConnectionId | undefined {
    return this.primary?.id;
  }

  /** What the codec needs to decode what arrives on `connection`. */
  codecContext(connection: ConnectionId): CodecContext {
    const conn = this.primary?.id === connection ? this.primary : this.candidate?.id === connection ? this.candidate : undefined;
    return { fourOctetAsn: conn?.negotiated?.fourOctetAsn ?? false };
  }

  handle(event: FsmEvent): void {
    // Outputs may call back in (a socket closing synchronously); finish one event first.
    this.queue.push(event);
    if (this.handling) return;
    this.handling = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) this.dispatch(next);
    } finally {
      this.handling = false;
    }
  }

  /** Sends UPDATEs on the Established session; false (nothing sent) in any other state. */
  sendUpdates(updates: readonly UpdateMessage[]): boolean {
    const conn = this.primary;
    if (this.current !== 'Established' || !conn) return false;
    for (const update of updates) this.outputs.send(conn.id, update);
    // RFC 4271 §8.2.2: sending an UPDATE restarts the KeepaliveTimer.
    if (updates.length > 0) this.armKeepalive(conn);
    return true;
  }

  /** Asks the peer to resend its routes of `family` (RFC 2918); false when it cannot. */
  requestRouteRefresh(family: Family): boolean {
    const negotiated = this.negotiated;
    const conn = this.primary;
    if (!negotiated || !conn || !negotiated.routeRefresh || !negotiated.families.includes(family)) return false;
    this.outputs.send(conn.id, { type: 'route-refresh', family, subtype: 0 });
    return true;
  }

  // -------------------------------------------------------------------------------------
  // Dispatch

  private dispatch(event: FsmEvent): void {
    if ('connection' in event && !this.isPrimaryEvent(event)) return;
    const from = this.current;
    const transition = this.handlers[from](event);
    this.transition(from, transition);
  }

  /**
   * Routes connection events that are not about the primary: the candidate's, a second
   * connection arriving, stale ones. True when the state handler should see the event.
   */
  private isPrimaryEvent(event: ConnectionEvent): boolean {
    const id = event.connection;
    if (this.primary?.id === id) return true;
    if (this.candidate?.id === id) {
      this.transition(this.current, this.candidateEvent(this.candidate, event));
      return false;
    }
    if (event.type === 'Tcp_CR_Acked' || event.type === 'TcpConnectionFails') {
      if (this.pendingConnect !== id) {
        // A connect we gave up on (retry timer, Established) finished after all.
        if (event.type === 'Tcp_CR_Acked') this.outputs.closeConnection(id);
        return false;
      }
      if (event.type === 'TcpConnectionFails') {
        this.pendingConnect = undefined;
        return !this.primary; // with a session under way, our failed attempt changes nothing
      }
      this.pendingConnect = undefined;
    }
    if (event.type === 'Tcp_CR_Acked' || event.type === 'TcpConnectionConfirmed') {
      if (!this.primary) return true;
      this.admitSecond(id, event.type === 'Tcp_CR_Acked' ? 'outgoing' : 'incoming');
      return false;
    }
    // Messages and timers of a connection we already closed.
    return false;
  }

  private transition(from: State, transition: Transition): void {
    const to = transition.next;
    if (to === from) return;
    const reason = transition.reason ?? '';
    this.current = to;
    if (from === 'Established') {
      this.clock.clearTimer(TIMER.STABLE);
      const gr = transition.graceful ? this.lastEstablished?.gracefulRestart : undefined;
      this.outputs.down?.({
        reason,
        graceful: gr !== undefined,
        ...(gr ? { restartTimeSeconds: gr.restartTimeSeconds, families: gr.families.map((f) => f.family) } : {}),
        ...(transition.notification ? { notification: transition.notification } : {}),
      });
    }
    if (to === 'Idle') this.enterIdle();
    const level = to === 'Idle' && this.running ? 'warn' : 'info';
    this.log[level]({ from, to, reason }, `BGP peer ${from} -> ${to}`);
    this.outputs.stateChanged?.(from, to, reason);
    if (to === 'Established' && this.primary?.negotiated) {
      const negotiated = this.primary.negotiated;
      this.lastEstablished = negotiated;
      this.outputs.established?.(negotiated);
    }
  }

  // -------------------------------------------------------------------------------------
  // State handlers (RFC 4271 §8.2.2)

  private idle(event: FsmEvent): Transition {
    switch (event.type) {
      case 'ManualStart':
        return this.start(this.passiveMode, 'started');
      case 'ManualStart_with_PassiveTcpEstablishment':
        return this.start(true, 'started passive');
      case 'IdleHoldTimer_Expires':
        return this.start(this.passiveMode, 'idle hold timer expired: restarting');
      case 'ManualStop':
        this.running = false;
        this.clock.clearTimer(TIMER.IDLE_HOLD);
        return { next: 'Idle' };
      case 'TcpConnectionConfirmed':
        this.refuse(event.connection, CEASE_SUBCODE.CONNECTION_REJECTED);
        return { next: 'Idle' };
      default:
        return { next: 'Idle' };
    }
  }

  private connect(event: FsmEvent): Transition {
    switch (event.type) {
      case 'ManualStop':
        return this.stop(event);
      case 'ConnectRetryTimer_Expires':
        // The attempt took too long (a silently dropped SYN). The RFC retries at once
        // (§8.2.2 Connect, event 9); we wait out the backoff in Active like any failure.
        if (this.pendingConnect !== undefined) this.outputs.closeConnection(this.pendingConnect);
        this.pendingConnect = undefined;
        this.armConnectRetry();
        return { next: 'Active', reason: 'connect timed out' };
      case 'Tcp_CR_Acked':
        return this.openConnection(event.connection, 'outgoing');
      case 'TcpConnectionConfirmed':
        // Our own attempt stays pending: if it completes it becomes the collision candidate.
        return this.openConnection(event.connection, 'incoming');
      case 'TcpConnectionFails':
        this.armConnectRetry();
        return { next: 'Active', reason: `connect failed${event.error ? `: ${event.error}` : ''}` };
      default:
        return { next: 'Connect' };
    }
  }

  private active(event: FsmEvent): Transition {
    switch (event.type) {
      case 'ManualStop':
        return this.stop(event);
      case 'ConnectRetryTimer_Expires':
        if (this.passiveMode) return { next: 'Active' };
        this.initiate();
        return { next: 'Connect', reason: 'connect retry timer expired' };
      case 'Tcp_CR_Acked':
        return this.openConnection(event.connection, 'outgoing');
      case 'TcpConnectionConfirmed':
        return this.openConnection(event.connection, 'incoming');
      default:
        return { next: 'Active' };
    }
  }

  private openSent(event: FsmEvent): Transition {
    const conn = this.primary;
    if (!conn) return this.lost('OpenSent without a connection');
    switch (event.type) {
      case 'ManualStop':
        return this.stop(event);
      case 'HoldTimer_Expires':
        return this.fail(conn, { reason: 'no OPEN from the peer before the hold timer expired', send: notification(ERROR_CODE.HOLD_TIMER_EXPIRED, 0) });
      case 'TcpConnectionFails':
        // §8.2.2 OpenSent event 18: keep listening, retry later.
        return this.fail(conn, { reason: `connection lost in OpenSent${event.error ? `: ${event.error}` : ''}`, fallback: 'Active' });
      case 'BGPOpen':
        return this.receiveOpen(conn, event.message);
      case 'BGPHeaderErr':
      case 'BGPOpenMsgErr':
        return this.fail(conn, messageFailure(event.error));
      case 'OpenCollisionDump':
        return this.fail(conn, collisionDump());
      case 'NotifMsg':
        // Connection Rejected means "not now" (the peer is in its idle hold). The RFC goes to
        // Idle; then we would refuse the peer's own retry in turn, and two speakers can keep
        // refusing each other forever. In Active we wait out the backoff and accept its retry.
        if (event.message.code === ERROR_CODE.CEASE && event.message.subcode === CEASE_SUBCODE.CONNECTION_REJECTED) {
          return this.fail(conn, { ...notificationReceived(event.message), fallback: 'Active' });
        }
        return this.fail(conn, notificationReceived(event.message));
      case 'KeepAliveMsg':
      case 'UpdateMsg':
      case 'UpdateMsgErr':
      case 'RouteRefreshMsg':
        return this.fail(conn, unexpected(event.type, 'OpenSent', FSM_SUBCODE.UNEXPECTED_IN_OPENSENT));
      default:
        return { next: 'OpenSent' };
    }
  }

  private openConfirm(event: FsmEvent): Transition {
    const conn = this.primary;
    if (!conn) return this.lost('OpenConfirm without a connection');
    switch (event.type) {
      case 'ManualStop':
        return this.stop(event);
      case 'HoldTimer_Expires':
        return this.fail(conn, { reason: 'hold timer expired in OpenConfirm', send: notification(ERROR_CODE.HOLD_TIMER_EXPIRED, 0) });
      case 'KeepaliveTimer_Expires':
        this.sendKeepalive(conn);
        return { next: 'OpenConfirm' };
      case 'TcpConnectionFails':
        return this.fail(conn, { reason: `connection lost in OpenConfirm${event.error ? `: ${event.error}` : ''}` });
      case 'KeepAliveMsg':
        this.armHold(conn);
        this.pendingConnectGiveUp();
        this.clock.setTimer(TIMER.STABLE, this.stableMs, () => this.backoff.reset());
        return { next: 'Established', reason: 'KEEPALIVE received' };
      case 'BGPHeaderErr':
      case 'BGPOpenMsgErr':
        return this.fail(conn, messageFailure(event.error));
      case 'OpenCollisionDump':
        return this.fail(conn, collisionDump());
      case 'NotifMsg':
        return this.fail(conn, notificationReceived(event.message));
      case 'BGPOpen':
      case 'UpdateMsg':
      case 'UpdateMsgErr':
      case 'RouteRefreshMsg':
        return this.fail(conn, unexpected(event.type, 'OpenConfirm', FSM_SUBCODE.UNEXPECTED_IN_OPENCONFIRM));
      default:
        return { next: 'OpenConfirm' };
    }
  }

  private established(event: FsmEvent): Transition {
    const conn = this.primary;
    if (!conn) return this.lost('Established without a connection');
    switch (event.type) {
      case 'ManualStop':
        return this.stop(event);
      case 'HoldTimer_Expires':
        return this.fail(conn, { reason: 'hold timer expired', send: notification(ERROR_CODE.HOLD_TIMER_EXPIRED, 0), graceful: true });
      case 'KeepaliveTimer_Expires':
        this.sendKeepalive(conn);
        return { next: 'Established' };
      case 'TcpConnectionFails':
        return this.fail(conn, { reason: `connection lost${event.error ? `: ${event.error}` : ''}`, graceful: true });
      case 'KeepAliveMsg':
        this.armHold(conn);
        return { next: 'Established' };
      case 'UpdateMsg':
        this.armHold(conn);
        this.outputs.update?.(event.update);
        return { next: 'Established' };
      case 'RouteRefreshMsg':
        this.armHold(conn);
        this.outputs.routeRefresh?.(event.message.family, event.message.subtype);
        return { next: 'Established' };
      case 'UpdateMsgErr':
      case 'BGPHeaderErr':
      case 'BGPOpenMsgErr':
        return this.fail(conn, messageFailure(event.error));
      case 'OpenCollisionDump':
        return this.fail(conn, collisionDump());
      case 'NotifMsg':
        // RFC 4724 (without RFC 8538): a NOTIFICATION ends the session for good, routes go now.
        return this.fail(conn, notificationReceived(event.message));
      case 'BGPOpen':
        return this.fail(conn, unexpected(event.type, 'Established', FSM_SUBCODE.UNEXPECTED_IN_ESTABLISHED));
      default:
        return { next: 'Established' };
    }
  }

  // -------------------------------------------------------------------------------------
  // The candidate connection (§6.8): OpenSent until its OPEN settles the collision

  private candidateEvent(conn: Connection, event: ConnectionEvent): Transition {
    const stay: Transition = { next: this.current };
    switch (event.type) {
      case 'BGPOpen':
        return this.candidateOpen(conn, event.message);
      case 'HoldTimer_Expires':
        this.dropCandidate(conn, 'no OPEN on the second connection before the hold timer expired', notification(ERROR_CODE.HOLD_TIMER_EXPIRED, 0));
        return stay;
      case 'TcpConnectionFails':
      case 'NotifMsg':
        this.dropCandidate(conn, event.type === 'NotifMsg' ? `peer closed the second connection: ${describeNotification(event.message)}` : 'second connection lost');
        return stay;
      case 'BGPHeaderErr':
      case 'BGPOpenMsgErr': {
        const failure = messageFailure(event.error);
        this.dropCandidate(conn, failure.reason, failure.send);
        return stay;
      }
      case 'OpenCollisionDump':
        this.dropCandidate(conn, 'connection collision', collisionDump().send);
        return stay;
      case 'KeepAliveMsg':
      case 'UpdateMsg':
      case 'UpdateMsgErr':
      case 'RouteRefreshMsg': {
        const failure = unexpected(event.type, 'OpenSent', FSM_SUBCODE.UNEXPECTED_IN_OPENSENT);
        this.dropCandidate(conn, failure.reason, failure.send);
        return stay;
      }
      default:
        return stay;
    }
  }

  private candidateOpen(conn: Connection, open: OpenMessage): Transition {
    const stay: Transition = { next: this.current };
    const check = checkOpen(this.local, open, conn.direction);
    if (!check.ok) {
      this.dropCandidate(conn, check.reason, check.notification);
      return stay;
    }
    const primary = this.primary;
    if (!primary) return stay; // cannot happen: a candidate exists only beside a primary
    if (this.current === 'Established') {
      const gr = primary.negotiated?.gracefulRestart;
      if (!gr) {
        // §6.8: a collision with an Established session closes the new connection.
        this.handleCandidateDump(conn);
        return stay;
      }
      // RFC 4724 §4.2: a new OPEN from a GR peer means it restarted; the old session is dead.
      this.closeConnection(primary);
      this.primary = conn;
      this.candidate = undefined;
      conn.negotiated = check.negotiated;
      this.confirm(conn);
      return { next: 'OpenConfirm', reason: 'peer restarted (new OPEN while Established)', graceful: true };
    }
    if (this.survivor(open) !== conn.direction || conn.direction === primary.direction) {
      this.handleCandidateDump(conn);
      return stay;
    }
    // The candidate wins: the primary gets Cease 6/7 and the candidate carries on from its OPEN.
    this.log.info({ kept: conn.direction, closed: primary.direction }, 'BGP connection collision resolved');
    this.sendNotification(primary, collisionDump().send);
    this.closeConnection(primary);
    this.primary = conn;
    this.candidate = undefined;
    conn.negotiated = check.negotiated;
    this.confirm(conn);
    return { next: 'OpenConfirm', reason: `connection collision: kept the ${conn.direction} connection` };
  }

  /** Which connection §6.8 keeps, given the peer's OPEN. */
  private survivor(peerOpen: OpenMessage): Direction {
    return collisionSurvivor({ routerId: this.local.routerId, asn: this.local.localAsn }, { routerId: peerOpen.routerId, asn: peerOpen.asn });
  }

  private handleCandidateDump(conn: Connection): void {
    this.candidateEvent(conn, { type: 'OpenCollisionDump', connection: conn.id });
  }

  private admitSecond(id: ConnectionId, direction: Direction): void {
    if (this.candidate) {
      this.refuse(id, CEASE_SUBCODE.CONNECTION_REJECTED);
      return;
    }
    if (this.current === 'Established' && direction === 'outgoing') {
      // Our own late connect: an Established session needs no second one.
      this.outputs.closeConnection(id);
      return;
    }
    const conn: Connection = { id, direction };
    this.candidate = conn;
    this.log.debug({ connection: id, direction }, 'second BGP connection with the peer: sending OPEN');
    this.outputs.send(id, buildOpen(this.local));
    this.clock.setTimer(TIMER.hold(id), this.openSentHoldMs, () => this.handle({ type: 'HoldTimer_Expires', connection: id }));
    // An OPEN already received on the primary identifies the peer: nothing to wait for.
    const peerOpen = this.primary?.negotiated?.peerOpen;
    if (peerOpen && this.current !== 'Established') {
      if (this.survivor(peerOpen) !== direction || direction === this.primary?.direction) {
        this.handleCandidateDump(conn);
      }
    }
  }

  private dropCandidate(conn: Connection, reason: string, send?: NotificationMessage): void {
    this.log.info({ connection: conn.id, reason }, 'closing the second BGP connection');
    if (send) this.sendNotification(conn, send);
    this.closeConnection(conn);
    this.candidate = undefined;
  }

  // -------------------------------------------------------------------------------------
  // Steps shared by the handlers

  private start(passive: boolean, reason: string): Transition {
    this.running = true;
    this.passiveMode = passive;
    this.clock.clearTimer(TIMER.IDLE_HOLD);
    if (passive) return { next: 'Active', reason: `${reason}; waiting for the peer to connect` };
    this.initiate();
    return { next: 'Connect', reason };
  }

  /** Connect, with the connect retry timer bounding the attempt (not a backoff step: failing is). */
  private initiate(): void {
    // An older attempt still hanging (it outlived a session on the peer's connection) goes.
    if (this.pendingConnect !== undefined) this.outputs.closeConnection(this.pendingConnect);
    this.pendingConnect = this.outputs.connect();
    this.clock.setTimer(TIMER.CONNECT_RETRY, this.connectTimeoutMs, () => this.handle({ type: 'ConnectRetryTimer_Expires' }));
  }

  private armConnectRetry(): void {
    if (this.passiveMode) return;
    this.clock.setTimer(TIMER.CONNECT_RETRY, this.backoff.next(), () => this.handle({ type: 'ConnectRetryTimer_Expires' }));
  }

  private openConnection(id: ConnectionId, direction: Direction): Transition {
    this.clock.clearTimer(TIMER.CONNECT_RETRY);
    const conn: Connection = { id, direction };
    this.primary = conn;
    this.outputs.send(id, buildOpen(this.local));
    this.clock.setTimer(TIMER.hold(id), this.openSentHoldMs, () => this.handle({ type: 'HoldTimer_Expires', connection: id }));
    return { next: 'OpenSent', reason: `${direction} TCP connection up; OPEN sent` };
  }

  private receiveOpen(conn: Connection, open: OpenMessage): Transition {
    const check = checkOpen(this.local, open, conn.direction);
    if (!check.ok) return this.fail(conn, { reason: check.reason, send: check.notification });
    conn.negotiated = check.negotiated;
    const candidate = this.candidate;
    if (candidate) {
      if (this.survivor(open) === candidate.direction && candidate.direction !== conn.direction) {
        return this.openSent({ type: 'OpenCollisionDump', connection: conn.id });
      }
      this.handleCandidateDump(candidate);
    }
    this.confirm(conn);
    return { next: 'OpenConfirm', reason: `OPEN accepted (hold time ${check.negotiated.holdTimeSeconds} s)` };
  }

  /** OPEN accepted: KEEPALIVE, and the negotiated timers (none at hold time 0). */
  private confirm(conn: Connection): void {
    this.sendKeepalive(conn);
    this.armHold(conn);
  }

  private armHold(conn: Connection): void {
    const holdSeconds = conn.negotiated?.holdTimeSeconds ?? 0;
    if (holdSeconds === 0) {
      this.clock.clearTimer(TIMER.hold(conn.id));
      return;
    }
    this.clock.setTimer(TIMER.hold(conn.id), holdSeconds * 1000, () => this.handle({ type: 'HoldTimer_Expires', connection: conn.id }));
  }

  private armKeepalive(conn: Connection): void {
    const keepaliveMs = conn.negotiated?.keepaliveMs ?? 0;
    if (keepaliveMs === 0) return;
    this.clock.setTimer(TIMER.keepalive(conn.id), keepaliveMs, () => this.handle({ type: 'KeepaliveTimer_Expires', connection: conn.id }));
  }

  private sendKeepalive(conn: Connection): void {
    this.outputs.send(conn.id, { type: 'keepalive' });
    this.armKeepalive(conn);
  }

  private sendNotification(conn: Connection, message: NotificationMessage): void {
    this.log.warn({ connection: conn.id, code: message.code, subcode: message.subcode }, 'sending NOTIFICATION');
    this.outputs.send(conn.id, message);
  }

  private closeConnection(conn: Connection): void {
    this.clock.clearTimer(TIMER.hold(conn.id));
    this.clock.clearTimer(TIMER.keepalive(conn.id));
    this.outputs.closeConnection(conn.id);
  }

  /** Established: our late outgoing attempt is no longer wanted. */
  private pendingConnectGiveUp(): void {
    if (this.pendingConnect === undefined) return;
    this.outputs.closeConnection(this.pendingConnect);
    this.pendingConnect = undefined;
  }

  /** A connection we will not talk on: Cease with `subcode`, then close. */
  private refuse(id: ConnectionId, subcode: number): void {
    this.log.info({ connection: id, subcode }, 'refusing BGP connection');
    this.outputs.send(id, notification(ERROR_CODE.CEASE, subcode));
    this.outputs.closeConnection(id);
  }

  /**
   * The primary connection ends. If the candidate is still there, it becomes the primary
   * (the peer may have resolved the collision before we did); otherwise `fallback`.
   */
  private fail(conn: Connection, failure: Failure): Transition {
    if (failure.send) this.sendNotification(conn, failure.send);
    this.closeConnection(conn);
    this.primary = undefined;
    const notice = failure.send
      ? { direction: 'sent' as const, code: failure.send.code, subcode: failure.send.subcode }
      : failure.received
        ? { direction: 'received' as const, code: failure.received.code, subcode: failure.received.subcode }
        : undefined;
    const down = { graceful: failure.graceful ?? false, ...(notice ? { notification: notice } : {}) };
    const candidate = this.candidate;
    if (candidate) {
      this.primary = candidate;
      this.candidate = undefined;
      return { next: 'OpenSent', reason: `${failure.reason}; carrying on with the other connection`, ...down };
    }
    const fallback = failure.fallback ?? 'Idle';
    if (fallback === 'Active') this.armConnectRetry();
    return { next: fallback, reason: failure.reason, ...down };
  }

  private stop(event: Extract<FsmEvent, { type: 'ManualStop' }>): Transition {
    this.running = false;
    const subcode = event.subcode ?? CEASE_SUBCODE.ADMINISTRATIVE_SHUTDOWN;
    const cease = notification(ERROR_CODE.CEASE, subcode);
    for (const conn of [this.primary, this.candidate]) {
      if (!conn) continue;
      if (!event.gracefulRestart) this.sendNotification(conn, cease);
      this.closeConnection(conn);
    }
    this.primary = undefined;
    this.candidate = undefined;
    return {
      next: 'Idle',
      reason: event.reason ?? 'stopped',
      ...(event.gracefulRestart ? {} : { notification: { direction: 'sent' as const, code: ERROR_CODE.CEASE, subcode } }),
    };
  }

  private lost(reason: string): Transition {
    // A bookkeeping bug, not a peer's fault: say so and start over rather than wedge.
    this.log.warn({ state: this.current }, reason);
    return { next: 'Idle', reason };
  }

  /** Entering Idle: nothing of the old session survives; restart later unless stopped. */
  private enterIdle(): void {
    this.clock.clearTimer(TIMER.CONNECT_RETRY);
    if (this.pendingConnect !== undefined) {
      this.outputs.closeConnection(this.pendingConnect);
      this.pendingConnect = undefined;
    }
    for (const conn of [this.primary, this.candidate]) if (conn) this.closeConnection(conn);
    this.primary = undefined;
    this.candidate = undefined;
    if (this.running) this.clock.setTimer(TIMER.IDLE_HOLD, this.backoff.next(), () => this.handle({ type: 'IdleHoldTimer_Expires' }));
  }
}

function describeNotification(message: NotificationMessage): string {
  return `NOTIFICATION ${message.code}/${message.subcode}`;
}

function messageFailure(error: MessageErrorInfo): Failure {
  return {
    reason: `bad message from the peer: ${error.message ?? `error ${error.code}/${error.subcode}`}`,
    send: notification(error.code, error.subcode, error.data),
  };
}

function notificationReceived(message: NotificationMessage): Failure {
  return { reason: `peer sent ${describeNotification(message)}`, received: message };
}

function collisionDump(): Failure & { readonly send: NotificationMessage } {
  return { reason: 'connection collision: closed this connection', send: notification(ERROR_CODE.CEASE, CEASE_SUBCODE.CONNECTION_COLLISION_RESOLUTION) };
}

function unexpected(what: FsmEvent['type'], state: State, subcode: number): Failure {
  return { reason: `unexpected ${what} in ${state}`, send: notification(ERROR_CODE.FSM, subcode) };
}
