/**
 * A seeded fuzz of the BGP FSM itself (test/bgp/fuzz.test.ts fuzzes the codec alone).
 *
 * Each episode builds a PeerFsm with a random configuration (active or passive, eBGP or iBGP,
 * hold time 0/3/9/90, with or without GR), drives it with a cooperative peer to a target state
 * (Idle, Connect, Active, OpenSent, OpenConfirm, Established), then feeds it random inputs:
 * mutated wire messages (test/bgp/mutate.ts) and valid messages of every type at any time,
 * pushed through a per-connection MessageFramer + decodeMessage and turned into events as
 * src/bgp/session.ts does (decode errors → messageErrorEvent); timer expiries through the
 * FakeClock; TCP events (connects completing or failing, incoming connections and so
 * collisions, connections lost); ManualStart/ManualStop; the local API (sendUpdates,
 * requestRouteRefresh); now and then a stale event for a connection already closed.
 *
 * `handle` is wrapped on the instance, so timer-fired events are checked too. After every
 * event: nothing thrown; the state is one of the six; a transition to Idle caused by an error
 * sent exactly one NOTIFICATION (code 1..7) on the connection the session was on, unless the
 * peer sent a NOTIFICATION or TCP failed; ManualStop sends one Cease per connection (none with
 * gracefulRestart); no connection ever gets two NOTIFICATIONs, or anything after being closed
 * (or before being connected), and a NOTIFICATION is followed by the close; no connection is
 * left open in Idle/Connect/Active; Established has hold and keepalive timers armed per the
 * negotiated hold time (none at 0); outputs.update only in Established, for the primary.
 * A failure prints the seed, episode and the last events, so it replays.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BgpMessageError, decodeMessage, encodeMessage, endOfRib, MessageFramer } from '../../src/bgp/codec/index.js';
import { type ConnectionId, type FsmEvent, messageErrorEvent, messageEvent, PeerFsm, type State, TIMER } from '../../src/bgp/fsm.js';
import { FakeClock } from '../../src/bgp/timers.js';
import { type BgpMessage, type Capability, type CodecContext, CEASE_SUBCODE, ERROR_CODE, type OpenMessage, type UpdateMessage } from '../../src/bgp/types.js';
import { parseIp, parseIpNet } from '../../src/lib/ip.js';
import { mutate, type Random, rng, seedFrames } from './mutate.js';

const SEED = 0xf5a;
const EPISODES = 3_000;
const STEPS_PER_EPISODE = 50;
const STATES: readonly State[] = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'];

const LOCAL_AS = 65001;
const LOCAL_ID = 0x0a000002;

const int = (random: Random, below: number): number => Math.floor(random() * below);
function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[int(random, items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

class Violation extends Error {}

type ConnStatus = 'pending' | 'live' | 'closed';
interface Conn {
  readonly id: ConnectionId;
  readonly direction: 'outgoing' | 'incoming';
  status: ConnStatus;
  /** we told the FSM the TCP connection failed */
  failed: boolean;
  readonly framer: MessageFramer;
  notifications: number;
  opens: number;
}

interface Config {
  readonly peerAsn: number;
  readonly holdTimeSeconds: number;
  readonly passive: boolean;
  readonly gracefulRestart: boolean;
  readonly families: readonly ('ipv4-unicast' | 'ipv6-unicast')[];
}

export interface Stats {
  inputs: number;
  events: number;
  inputsByState: Record<State, number>;
  entered: Record<State, number>;
  targets: Record<State, number>;
  notifications: Map<string, number>;
  actions: Map<string, number>;
  updatesDelivered: number;
  decoderCrashes: number;
}

function emptyStats(): Stats {
  const zero = (): Record<State, number> => Object.fromEntries(STATES.map((s) => [s, 0])) as Record<State, number>;
  return { inputs: 0, events: 0, inputsByState: zero(), entered: zero(), targets: zero(), notifications: new Map(), actions: new Map(), updatesDelivered: 0, decoderCrashes: 0 };
}

const bump = (map: Map<string, number>, key: string): void => {
  map.set(key, (map.get(key) ?? 0) + 1);
};

const UPDATES: readonly UpdateMessage[] = [
  { type: 'update', withdrawn: [], nlri: [] },
  { type: 'update', withdrawn: [parseIpNet('10.9.0.0/16')], attributes: { origin: 'igp', asPath: [{ type: 'sequence', asns: [65002] }], nextHop: parseIp('192.0.2.1') }, nlri: [parseIpNet('10.0.0.0/8')] },
  endOfRib('ipv4-unicast'),
  endOfRib('ipv6-unicast'),
];

class Episode {
  readonly clock = new FakeClock();
  readonly fsm: PeerFsm;
  readonly conns = new Map<ConnectionId, Conn>();
  private nextId = 1;
  /** per-`handle` bookkeeping */
  private stepSends: { id: ConnectionId; message: BgpMessage }[] = [];
  private stepCloses: ConnectionId[] = [];
  private stepTransitions: [State, State, string][] = [];
  private depth = 0;
  readonly trail: string[] = [];
  private readonly seedsForMutation: Uint8Array[];

  constructor(
    readonly random: Random,
    readonly config: Config,
    readonly stats: Stats,
    mutationSeeds: readonly Uint8Array[],
  ) {
    this.seedsForMutation = [...mutationSeeds, ...[true, false].map((fourOctetAsn) => encode(this.peerOpen(), { fourOctetAsn }))];
    const fsm = new PeerFsm({
      localAsn: LOCAL_AS,
      peerAsn: config.peerAsn,
      routerId: LOCAL_ID,
      holdTimeSeconds: config.holdTimeSeconds,
      passive: config.passive,
      families: config.families,
      ...(config.gracefulRestart ? { gracefulRestart: { restartTimeSeconds: 120 } } : {}),
      retry: { initialMs: 1000, maxMs: 16_000, random },
      clock: this.clock,
      outputs: {
        connect: () => {
          const id = this.nextId++;
          this.conns.set(id, { id, direction: 'outgoing', status: 'pending', failed: false, framer: new MessageFramer(), notifications: 0, opens: 0 });
          return id;
        },
        send: (id, message) => this.onSend(id, message),
        closeConnection: (id) => {
          this.stepCloses.push(id);
          const conn = this.conns.get(id);
          if (!conn) throw new Violation(`closeConnection(${id}) of a connection that never existed`);
          conn.status = 'closed';
        },
        update: () => {
          this.stats.updatesDelivered++;
          if (this.fsm.state !== 'Established') throw new Violation(`outputs.update in ${this.fsm.state}`);
        },
        stateChanged: (from, to, reason) => {
          this.stepTransitions.push([from, to, reason]);
          this.stats.entered[to]++;
          if (/without a connection/.test(reason)) throw new Violation(`bookkeeping bug: ${from} -> ${to}: ${reason}`);
        },
      },
    });
    // Wrap handle on the instance: the FSM's timer callbacks call this.handle, so they come through here too.
    const original = fsm.handle.bind(fsm);
    fsm.handle = (event: FsmEvent) => this.checkedHandle(original, event);
    this.fsm = fsm;
  }

  // ---------------------------------------------------------------------------------------
  // Outputs and invariants

  private onSend(id: ConnectionId, message: BgpMessage): void {
    this.stepSends.push({ id, message });
    const conn = this.conns.get(id);
    if (!conn) throw new Violation(`send on connection ${id}, which never existed`);
    if (conn.status === 'closed' || conn.failed) throw new Violation(`${message.type} sent on connection ${id} after it was closed`);
    if (conn.status === 'pending') throw new Violation(`${message.type} sent on connection ${id} before it connected`);
    if (message.type === 'open') {
      if (++conn.opens > 1) throw new Violation(`second OPEN on connection ${id}`);
    } else if (message.type !== 'notification' && conn.opens === 0) {
      throw new Violation(`${message.type} before our OPEN on connection ${id}`);
    }
    if (message.type === 'update' && this.fsm.state !== 'Established') throw new Violation(`UPDATE sent in ${this.fsm.state}`);
    if (message.type === 'notification') {
      bump(this.stats.notifications, `${message.code}/${message.subcode}`);
      if (!Number.isInteger(message.code) || message.code < 1 || message.code > 7) throw new Violation(`NOTIFICATION with code ${message.code}`);
      if (++conn.notifications > 1) throw new Violation(`second NOTIFICATION on connection ${id}`);
    }
  }

  private checkedHandle(original: (event: FsmEvent) => void, event: FsmEvent): void {
    if (this.depth > 0) {
      // A re-entrant call (none of our outputs make one) is queued by the FSM; just pass it on.
      original(event);
      return;
    }
    this.stats.events++;
    this.trail.push(describe(event));
    if (this.trail.length > 40) this.trail.shift();
    const from = this.fsm.state;
    const primaryBefore = this.fsm.primaryConnection;
    this.stepSends = [];
    this.stepCloses = [];
    this.stepTransitions = [];
    this.depth++;
    try {
      original(event);
    } catch (err) {
      if (err instanceof Violation) throw err;
      throw new Violation(`handle(${event.type}) threw in ${from}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      this.depth--;
    }
    this.checkAfter(event, from, primaryBefore);
  }

  private notificationsIn(step: readonly { id: ConnectionId; message: BgpMessage }[], id: ConnectionId): number[] {
    return step.flatMap((s) => (s.id === id && s.message.type === 'notification' ? [s.message.code] : []));
  }

  private checkAfter(event: FsmEvent, from: State, primaryBefore: ConnectionId | undefined): void {
    const state = this.fsm.state;
    if (!STATES.includes(state)) throw new Violation(`state ${String(state)}`);
    if (this.stepTransitions.length > 1) throw new Violation(`one event made ${this.stepTransitions.length} transitions`);
    // A NOTIFICATION is the last thing on its connection: it must be closed in the same step.
    for (const { id, message } of this.stepSends) {
      if (message.type === 'notification' && !this.stepCloses.includes(id)) throw new Violation(`NOTIFICATION on ${id} without closing it`);
    }
    if (state === 'Idle' && from !== 'Idle') {
      if (event.type === 'ManualStop') {
        for (const id of this.stepCloses) {
          const sent = this.notificationsIn(this.stepSends, id);
          const conn = this.conns.get(id);
          // Pending connects (never acked) and connections lost at TCP get no Cease.
          const expected = conn && conn.opens > 0 && !conn.failed && !event.gracefulRestart ? 1 : 0;
          if (sent.length !== expected || sent.some((code) => code !== ERROR_CODE.CEASE)) {
            throw new Violation(`ManualStop${event.gracefulRestart ? ' (GR)' : ''}: NOTIFICATIONs ${JSON.stringify(sent)} on ${id}, expected ${expected} Cease`);
          }
        }
      } else {
        if (primaryBefore === undefined) throw new Violation(`${from} -> Idle on ${event.type} with no connection`);
        const peerEnded = 'connection' in event && event.connection === primaryBefore && (event.type === 'NotifMsg' || event.type === 'TcpConnectionFails');
        const sent = this.notificationsIn(this.stepSends, primaryBefore);
        if (peerEnded ? sent.length !== 0 : sent.length !== 1) {
          throw new Violation(`${from} -> Idle on ${event.type}: ${sent.length} NOTIFICATIONs on connection ${primaryBefore}, expected ${peerEnded ? 0 : 1}`);
        }
        if (!this.stepCloses.includes(primaryBefore)) throw new Violation(`${from} -> Idle on ${event.type} without closing connection ${primaryBefore}`);
      }
    }
    // No connection leaks: in Idle/Connect/Active the FSM has no session, so nothing may stay open.
    const open = [...this.conns.values()].filter((c) => c.status === 'live' && !c.failed);
    if ((state === 'Idle' || state === 'Connect' || state === 'Active') && open.length > 0) {
      throw new Violation(`${state} with connection(s) ${open.map((c) => c.id).join(',')} still open`);
    }
    if (open.length > 2) throw new Violation(`${open.length} connections open at once`);
    if (state === 'Idle' && [...this.conns.values()].some((c) => c.status === 'pending' && !c.failed)) throw new Violation('Idle with a connect still pending');
    const primary = this.fsm.primaryConnection;
    if (state !== 'Idle' && state !== 'Connect' && state !== 'Active') {
      const conn = primary === undefined ? undefined : this.conns.get(primary);
      if (!conn || conn.status !== 'live' || conn.failed) throw new Violation(`${state} on connection ${primary}, which is not open`);
    }
    if (state === 'Established') this.checkEstablishedTimers();
    if (event.type === 'UpdateMsg' && from !== 'Established' && this.stats.updatesDelivered !== this.updatesSeen) throw new Violation(`UPDATE delivered in ${from}`);
    if (event.type === 'UpdateMsg' && from === 'Established' && this.stats.updatesDelivered !== this.updatesSeen && event.connection !== primaryBefore) {
      throw new Violation(`UPDATE delivered from connection ${event.connection}, not the primary ${primaryBefore}`);
    }
    this.updatesSeen = this.stats.updatesDelivered;
  }

  private updatesSeen = 0;

  private checkEstablishedTimers(): void {
    const negotiated = this.fsm.negotiated;
    const id = this.fsm.primaryConnection;
    if (!negotiated || id === undefined) throw new Violation('Established without a negotiated session');
    const hold = this.clock.remainingMs(TIMER.hold(id));
    const keepalive = this.clock.remainingMs(TIMER.keepalive(id));
    if (negotiated.holdTimeSeconds === 0) {
      if (hold !== undefined || keepalive !== undefined) throw new Violation(`hold time 0 but hold=${hold} keepalive=${keepalive} armed`);
      return;
    }
    if (hold === undefined || hold < 0 || hold > negotiated.holdTimeSeconds * 1000) throw new Violation(`hold time ${negotiated.holdTimeSeconds} s but hold timer ${hold}`);
    if (keepalive === undefined || keepalive < 0 || keepalive > negotiated.keepaliveMs) throw new Violation(`keepalive ${negotiated.keepaliveMs} ms but keepalive timer ${keepalive}`);
    if (negotiated.keepaliveMs !== Math.floor((negotiated.holdTimeSeconds * 1000) / 3)) throw new Violation(`keepalive ${negotiated.keepaliveMs} ms for hold ${negotiated.holdTimeSeconds} s`);
  }

  // ---------------------------------------------------------------------------------------
  // The peer and the network

  peerOpen(overrides: Partial<OpenMessage> = {}): OpenMessage {
    const r = this.random;
    const caps: Capability[] = [];
    const families = r() < 0.1 ? [] : r() < 0.8 ? ['ipv4-unicast' as const] : r() < 0.5 ? ['ipv6-unicast' as const] : ['ipv4-unicast' as const, 'ipv6-unicast' as const];
    for (const family of families) caps.push({ code: 'multiprotocol', family });
    if (r() < 0.7) caps.push({ code: 'route-refresh' });
    const asn = overrides.asn ?? this.config.peerAsn;
    if (asn > 0xffff || r() < 0.7) caps.push({ code: 'four-octet-asn', asn });
    if (r() < 0.3) caps.push({ code: 'graceful-restart', restarting: r() < 0.5, restartTimeSeconds: 120, families: [{ family: 'ipv4-unicast', forwardingPreserved: true }] });
    const routerId = pick(r, [0x0a000001, 0x0a000003, LOCAL_ID, 0xffffffff, 1]);
    const holdTimeSeconds = pick(r, [0, 3, 4, 9, 30, 90, 90, 240, 65535]);
    return { type: 'open', version: 4, asn, holdTimeSeconds, routerId, capabilities: caps, ...overrides };
  }

  /** An OPEN that is likely wrong in one way. */
  badOpen(): OpenMessage {
    switch (int(this.random, 5)) {
      case 0:
        return this.peerOpen({ version: 3 });
      case 1:
        return this.peerOpen({ asn: 65099 });
      case 2:
        return this.peerOpen({ routerId: 0 });
      case 3:
        return this.peerOpen({ holdTimeSeconds: 1 + int(this.random, 2) });
      default:
        return this.peerOpen({ routerId: LOCAL_ID });
    }
  }

  randomMessage(): BgpMessage {
    const r = this.random;
    switch (int(r, 8)) {
      case 0:
        return this.peerOpen();
      case 1:
        return this.badOpen();
      case 2:
      case 3:
        return { type: 'keepalive' };
      case 4:
        return pick(r, UPDATES);
      case 5:
        return { type: 'notification', code: 1 + int(r, 7), subcode: int(r, 10), data: new Uint8Array(0) };
      case 6:
        return { type: 'route-refresh', family: pick(r, ['ipv4-unicast', 'ipv6-unicast'] as const), subtype: int(r, 3) };
      default:
        return { type: 'notification', code: ERROR_CODE.CEASE, subcode: CEASE_SUBCODE.CONNECTION_REJECTED, data: new Uint8Array(0) };
    }
  }

  liveConns(): Conn[] {
    return [...this.conns.values()].filter((c) => c.status === 'live' && !c.failed);
  }

  pendingConns(): Conn[] {
    return [...this.conns.values()].filter((c) => c.status === 'pending' && !c.failed);
  }

  /** A live connection, the primary most of the time. */
  target(): Conn | undefined {
    const live = this.liveConns();
    if (live.length === 0) return undefined;
    const primary = this.fsm.primaryConnection;
    if (primary !== undefined && this.random() < 0.75) return this.conns.get(primary);
    return pick(this.random, live);
  }

  /** Bytes arriving on `conn`, handled as src/bgp/session.ts `receive` does. */
  receive(conn: Conn, bytes: Uint8Array): void {
    const splitAt = int(this.random, bytes.length + 1);
    for (const chunk of [bytes.subarray(0, splitAt), bytes.subarray(splitAt)]) {
      if (conn.status !== 'live' || conn.failed) return; // closing: drain, ignore
      let frames: Uint8Array[];
      try {
        frames = conn.framer.push(chunk);
      } catch (err) {
        this.deliverError(conn, err);
        return;
      }
      for (const frame of frames) {
        if (conn.status !== 'live' || conn.failed) return;
        let event: FsmEvent;
        try {
          const decoded = decodeMessage(frame, this.fsm.codecContext(conn.id));
          if (decoded.ignore) continue;
          event = messageEvent(conn.id, decoded);
        } catch (err) {
          this.deliverError(conn, err);
          return;
        }
        this.fsm.handle(event);
      }
    }
  }

  private deliverError(conn: Conn, err: unknown): void {
    if (err instanceof BgpMessageError) {
      this.fsm.handle(messageErrorEvent(conn.id, { code: err.code, subcode: err.subcode, data: err.data, message: err.message }));
      return;
    }
    this.stats.decoderCrashes++;
    this.fsm.handle(messageErrorEvent(conn.id, { code: ERROR_CODE.CEASE, subcode: 0, data: new Uint8Array(0), message: String(err) }));
  }

  sendMessage(conn: Conn, message: BgpMessage): void {
    this.receive(conn, encode(message, this.fsm.codecContext(conn.id)));
  }

  incoming(): Conn {
    const id = this.nextId++;
    const conn: Conn = { id, direction: 'incoming', status: 'live', failed: false, framer: new MessageFramer(), notifications: 0, opens: 0 };
    this.conns.set(id, conn);
    this.fsm.handle({ type: 'TcpConnectionConfirmed', connection: id });
    return conn;
  }

  ack(conn: Conn): void {
    conn.status = 'live';
    this.fsm.handle({ type: 'Tcp_CR_Acked', connection: conn.id });
  }

  tcpFails(conn: Conn): void {
    conn.failed = true;
    this.fsm.handle({ type: 'TcpConnectionFails', connection: conn.id, error: 'ECONNRESET' });
  }

  knownTimers(): string[] {
    const names: string[] = [TIMER.CONNECT_RETRY, TIMER.IDLE_HOLD, TIMER.STABLE];
    for (const id of this.conns.keys()) names.push(TIMER.hold(id), TIMER.keepalive(id));
    return names.filter((name) => this.clock.isArmed(name));
  }

  // ---------------------------------------------------------------------------------------
  // Getting to a state with a cooperative peer

  bringTo(target: State): void {
    const fsm = this.fsm;
    if (target === 'Idle') {
      if (this.random() < 0.3) return; // never started
      fsm.handle({ type: 'ManualStart' });
      const conn = this.connectSomehow();
      if (conn) this.sendMessage(conn, this.random() < 0.5 ? { type: 'keepalive' } : this.badOpen()); // an error in OpenSent
      else fsm.handle({ type: 'ManualStop' });
      return;
    }
    if (target === 'Connect') {
      // (a passive speaker never connects: it settles in Active)
      fsm.handle({ type: this.config.passive ? 'ManualStart_with_PassiveTcpEstablishment' : 'ManualStart' });
      return;
    }
    if (target === 'Active') {
      fsm.handle({ type: 'ManualStart' });
      const pending = this.pendingConns()[0];
      if (pending) this.tcpFails(pending);
      return;
    }
    fsm.handle({ type: 'ManualStart' });
    const conn = this.connectSomehow();
    if (!conn || target === 'OpenSent') return;
    this.sendMessage(conn, this.peerOpen({ routerId: pick(this.random, [0x0a000001, 0x0a000003]), holdTimeSeconds: pick(this.random, [0, 3, 9, 90]) }));
    if (target === 'OpenConfirm') return;
    const primary = fsm.primaryConnection;
    const now = primary === undefined ? undefined : this.conns.get(primary);
    if (now) this.sendMessage(now, { type: 'keepalive' });
  }

  private connectSomehow(): Conn | undefined {
    const pending = this.pendingConns()[0];
    if (pending && this.random() < 0.6) {
      this.ack(pending);
      return pending;
    }
    return this.incoming();
  }

  // ---------------------------------------------------------------------------------------
  // One random input

  /** The cooperative peer's next step, so sessions keep getting (back) to Established. */
  private cooperate(): string {
    const fsm = this.fsm;
    const conn = this.target();
    if (!conn) {
      if (fsm.state === 'Idle') fsm.handle({ type: this.random() < 0.5 ? 'IdleHoldTimer_Expires' : 'ManualStart' });
      else this.connectSomehow();
      return 'cooperate';
    }
    const open = this.peerOpen({ holdTimeSeconds: pick(this.random, [0, 3, 90]), routerId: pick(this.random, [0x0a000001, 0x0a000003]) });
    this.sendMessage(conn, fsm.state === 'OpenSent' ? open : { type: 'keepalive' });
    return 'cooperate';
  }

  step(): string {
    const r = this.random;
    const fsm = this.fsm;
    if (fsm.state === 'Established' && r() < 0.5) {
      // Most of an Established session's traffic is harmless; keep it alive long enough to fuzz.
      const conn = this.target();
      if (conn) {
        const benign: BgpMessage[] = [{ type: 'keepalive' }, pick(r, UPDATES), { type: 'route-refresh', family: 'ipv4-unicast', subtype: 0 }];
        if (r() < 0.3) this.clock.advance(pick(r, [100, 1000, 5000]));
        else this.sendMessage(conn, pick(r, benign));
        return 'benign in Established';
      }
    }
    const roll = r();
    if (roll < 0.5 && !this.target()) return this.cooperate();
    if (roll < 0.3) {
      const conn = this.target();
      if (!conn) return this.step();
      this.receive(conn, mutate(r, this.seedsForMutation));
      return 'mutated message';
    }
    if (roll < 0.5) {
      const conn = this.target();
      if (!conn) return this.step();
      const message = this.randomMessage();
      this.sendMessage(conn, message);
      return `valid ${message.type}`;
    }
    if (roll < 0.6) return this.cooperate();
    if (roll < 0.68) {
      const timers = this.knownTimers();
      if (timers.length > 0 && r() < 0.7) {
        this.clock.fire(pick(r, timers));
        return 'timer fires';
      }
      this.clock.advance(pick(r, [1, 100, 1000, 5000, 30_000, 120_000, 300_000]));
      return 'time passes';
    }
    if (roll < 0.74) {
      const pending = this.pendingConns();
      if (pending.length === 0) return this.step();
      const conn = pick(r, pending);
      if (r() < 0.7) this.ack(conn);
      else this.tcpFails(conn);
      return 'connect completes/fails';
    }
    if (roll < 0.8) {
      this.incoming();
      return 'incoming connection';
    }
    if (roll < 0.86) {
      const conn = this.target();
      if (!conn) return this.step();
      this.tcpFails(conn);
      return 'connection lost';
    }
    if (roll < 0.9) {
      switch (int(r, 4)) {
        case 0:
          fsm.handle({ type: 'ManualStart' });
          return 'ManualStart';
        case 1:
          fsm.handle({ type: 'ManualStart_with_PassiveTcpEstablishment' });
          return 'ManualStart passive';
        case 2:
          fsm.handle({ type: 'ManualStop', gracefulRestart: true });
          return 'ManualStop GR';
        default:
          fsm.handle({ type: 'ManualStop', subcode: pick(r, [CEASE_SUBCODE.ADMINISTRATIVE_SHUTDOWN, CEASE_SUBCODE.ADMINISTRATIVE_RESET, CEASE_SUBCODE.PEER_DECONFIGURED]) });
          return 'ManualStop';
      }
    }
    if (roll < 0.96) {
      if (r() < 0.5) fsm.sendUpdates([pick(r, UPDATES)]);
      else fsm.requestRouteRefresh(pick(r, ['ipv4-unicast', 'ipv6-unicast'] as const));
      return 'local API';
    }
    // A stale event for a connection already closed (a late timer or read): must be ignored.
    const closed = [...this.conns.values()].filter((c) => c.status === 'closed' || c.failed);
    if (closed.length === 0) return this.step();
    const conn = pick(r, closed);
    const id = conn.id;
    const stale: FsmEvent[] = [
      { type: 'KeepAliveMsg', connection: id },
      { type: 'HoldTimer_Expires', connection: id },
      { type: 'KeepaliveTimer_Expires', connection: id },
      { type: 'BGPOpen', connection: id, message: this.peerOpen() },
      { type: 'UpdateMsg', connection: id, update: { message: pick(r, UPDATES) } },
      { type: 'TcpConnectionFails', connection: id },
      { type: 'NotifMsg', connection: id, message: { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) } },
    ];
    if (conn.direction === 'outgoing' && conn.opens === 0) stale.push({ type: 'Tcp_CR_Acked', connection: id });
    fsm.handle(pick(r, stale));
    return 'stale event';
  }
}

/**
 * encodeMessage, except that an OPEN may carry what the encoder refuses to write (version 3,
 * hold time 1 or 2, identifier 0): those fields are patched in after encoding a valid one.
 */
function encode(message: BgpMessage, ctx: CodecContext): Uint8Array {
  if (message.type !== 'open') return encodeMessage(message, ctx);
  const bytes = encodeMessage({ ...message, version: 4, holdTimeSeconds: 90, routerId: 0x0a0000ff }, ctx);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint8(19, message.version);
  view.setUint16(22, message.holdTimeSeconds);
  view.setUint32(24, message.routerId);
  return bytes;
}

function describe(event: FsmEvent): string {
  switch (event.type) {
    case 'BGPOpen':
      return `BGPOpen#${event.connection}(as ${event.message.asn}, id ${event.message.routerId.toString(16)}, hold ${event.message.holdTimeSeconds}, caps ${event.message.capabilities.map((c) => c.code).join('+')})`;
    case 'NotifMsg':
      return `NotifMsg#${event.connection}(${event.message.code}/${event.message.subcode})`;
    case 'BGPHeaderErr':
    case 'BGPOpenMsgErr':
    case 'UpdateMsgErr':
      return `${event.type}#${event.connection}(${event.error.code}/${event.error.subcode})`;
    default:
      return 'connection' in event ? `${event.type}#${event.connection}` : event.type;
  }
}

function randomConfig(random: Random): Config {
  const peerAsn = pick(random, [65002, 65002, LOCAL_AS, 4200000000]);
  return {
    peerAsn,
    holdTimeSeconds: pick(random, [0, 3, 9, 90, 90]),
    passive: random() < 0.3,
    gracefulRestart: random() < 0.4,
    families: random() < 0.8 ? ['ipv4-unicast'] : random() < 0.5 ? ['ipv6-unicast'] : ['ipv4-unicast', 'ipv6-unicast'],
  };
}

/** Runs the fuzz; throws (with a replayable description) on the first broken invariant. */
export function runFsmFuzz(seed: number, episodes: number, steps: number): Stats {
  const random = rng(seed);
  const stats = emptyStats();
  const mutationSeeds = seedFrames();
  for (let e = 0; e < episodes; e++) {
    const config = randomConfig(random);
    const target = STATES[e % STATES.length] ?? 'Idle';
    stats.targets[target]++;
    const episode = new Episode(random, config, stats, mutationSeeds);
    let action = `bring to ${target}`;
    try {
      episode.bringTo(target);
      for (let s = 0; s < steps; s++) {
        stats.inputs++;
        stats.inputsByState[episode.fsm.state]++;
        action = episode.step();
        bump(stats.actions, action);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(
        `FSM fuzz seed ${seed}, episode ${e} (config ${JSON.stringify(config)}, target ${target}), during "${action}" in ${episode.fsm.state}: ${message}\nlast events:\n  ${episode.trail.join('\n  ')}`,
        { cause: err },
      );
    }
  }
  return stats;
}

test(`FSM fuzz: ${EPISODES * STEPS_PER_EPISODE} random inputs keep every invariant`, (t) => {
  const started = performance.now();
  const stats = runFsmFuzz(SEED, EPISODES, STEPS_PER_EPISODE);
  const ms = Math.round(performance.now() - started);
  t.diagnostic(`${stats.inputs} inputs, ${stats.events} FSM events (timer-fired included) in ${ms} ms`);
  t.diagnostic(`inputs by state: ${JSON.stringify(stats.inputsByState)}`);
  t.diagnostic(`states entered: ${JSON.stringify(stats.entered)}`);
  t.diagnostic(`NOTIFICATIONs sent by code/subcode: ${JSON.stringify(Object.fromEntries([...stats.notifications].sort()))}`);
  t.diagnostic(`inputs by kind: ${JSON.stringify(Object.fromEntries([...stats.actions].sort()))}`);
  t.diagnostic(`UPDATEs delivered: ${stats.updatesDelivered}; decoder crashes (non-BgpMessageError): ${stats.decoderCrashes}`);
  assert.ok(stats.inputs >= 100_000, `only ${stats.inputs} inputs`);
  assert.equal(stats.decoderCrashes, 0, 'the codec threw something other than BgpMessageError');
  // The fuzzer must keep reaching every state and every kind of reset, or it tests little.
  for (const state of STATES) assert.ok(stats.inputsByState[state] >= 1000, `only ${stats.inputsByState[state]} inputs in ${state}`);
  for (const code of ['1/', '2/', '3/', '4/0', '5/1', '5/2', '5/3', '6/2', '6/5', '6/7']) {
    assert.ok([...stats.notifications.keys()].some((key) => key.startsWith(code)), `no NOTIFICATION ${code}* sent: ${JSON.stringify([...stats.notifications])}`);
  }
  assert.ok(stats.updatesDelivered > 0, 'no UPDATE ever delivered');
});

test('the FSM fuzz replays: the same seed gives the same counts', () => {
  const a = runFsmFuzz(7, 50, 40);
  const b = runFsmFuzz(7, 50, 40);
  assert.deepEqual(a.inputsByState, b.inputsByState);
  assert.deepEqual([...a.notifications].sort(), [...b.notifications].sort());
});
