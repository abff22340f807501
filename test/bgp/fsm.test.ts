/**
 * The BGP FSM against a fake clock and recorded outputs: no sockets, no codec, no sleeps.
 * Each test drives events in and checks what the FSM sent, closed and reported.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ConnectionId,
  type DecodedUpdate,
  type DownInfo,
  FsmConfigError,
  type FsmEvent,
  messageErrorEvent,
  messageEvent,
  type NegotiatedSession,
  PeerFsm,
  type PeerFsmOptions,
  type State,
  TIMER,
} from '../../src/bgp/fsm.js';
import { FakeClock } from '../../src/bgp/timers.js';
import type { BgpMessage, Capability, NotificationMessage, OpenMessage, UpdateMessage } from '../../src/bgp/types.js';

const LOCAL_ID = 0x0a000002; // 10.0.0.2
const LOCAL_AS = 65001;
const PEER_AS = 65002;

class Harness {
  readonly clock = new FakeClock();
  readonly sent: { connection: ConnectionId; message: BgpMessage }[] = [];
  readonly closed: ConnectionId[] = [];
  readonly connects: ConnectionId[] = [];
  readonly downs: DownInfo[] = [];
  readonly established: NegotiatedSession[] = [];
  readonly updates: DecodedUpdate[] = [];
  readonly refreshes: string[] = [];
  readonly states: [State, State, string][] = [];
  readonly fsm: PeerFsm;
  private nextId = 1;

  constructor(options: Partial<Omit<PeerFsmOptions, 'clock' | 'outputs'>> = {}) {
    this.fsm = new PeerFsm({
      localAsn: LOCAL_AS,
      peerAsn: PEER_AS,
      routerId: LOCAL_ID,
      retry: { initialMs: 1000, maxMs: 16_000, random: () => 1 },
      ...options,
      clock: this.clock,
      outputs: {
        connect: () => {
          const id = this.allocate();
          this.connects.push(id);
          return id;
        },
        send: (connection, message) => this.sent.push({ connection, message }),
        closeConnection: (connection) => this.closed.push(connection),
        established: (negotiated) => this.established.push(negotiated),
        update: (update) => this.updates.push(update),
        routeRefresh: (family) => this.refreshes.push(family),
        down: (info) => this.downs.push(info),
        stateChanged: (from, to, reason) => this.states.push([from, to, reason]),
      },
    });
  }

  allocate(): ConnectionId {
    return this.nextId++;
  }

  handle(event: FsmEvent): void {
    this.fsm.handle(event);
  }

  get state(): State {
    return this.fsm.state;
  }

  lastConnect(): ConnectionId {
    const id = this.connects.at(-1);
    assert.ok(id !== undefined, 'connect() was called');
    return id;
  }

  sentOn(connection: ConnectionId): BgpMessage[] {
    return this.sent.filter((s) => s.connection === connection).map((s) => s.message);
  }

  notificationsOn(connection: ConnectionId): [number, number][] {
    return this.sentOn(connection).flatMap((m) => (m.type === 'notification' ? [[m.code, m.subcode] as [number, number]] : []));
  }

  allNotifications(): NotificationMessage[] {
    return this.sent.flatMap((s) => (s.message.type === 'notification' ? [s.message] : []));
  }

  stateTrail(): State[] {
    const first = this.states[0];
    return first ? [first[0], ...this.states.map((s) => s[1])] : [this.state];
  }
}

function peerOpen(overrides: Partial<OpenMessage> = {}, extraCaps: readonly Capability[] = []): OpenMessage {
  return {
    type: 'open',
    version: 4,
    asn: PEER_AS,
    holdTimeSeconds: 90,
    routerId: 0x0a000001, // 10.0.0.1: lower than ours
    capabilities: [{ code: 'multiprotocol', family: 'ipv4-unicast' }, { code: 'route-refresh' }, { code: 'four-octet-asn', asn: PEER_AS }, ...extraCaps],
    ...overrides,
  };
}

const GR_CAP: Capability = { code: 'graceful-restart', restarting: false, restartTimeSeconds: 120, families: [{ family: 'ipv4-unicast', forwardingPreserved: true }] };

/** ManualStart, our connect succeeds, the peer's OPEN and KEEPALIVE: Established on the returned id. */
function establishOutgoing(h: Harness, open: OpenMessage = peerOpen()): ConnectionId {
  h.handle({ type: 'ManualStart' });
  const id = h.lastConnect();
  h.handle({ type: 'Tcp_CR_Acked', connection: id });
  h.handle({ type: 'BGPOpen', connection: id, message: open });
  h.handle({ type: 'KeepAliveMsg', connection: id });
  assert.equal(h.state, 'Established');
  return id;
}

const emptyUpdate: UpdateMessage = { type: 'update', withdrawn: [], nlri: [] };

describe('BGP FSM: reaching Established', () => {
  test('active: Idle → Connect → OpenSent → OpenConfirm → Established, OPEN then KEEPALIVE sent', () => {
    const h = new Harness();
    const id = establishOutgoing(h);
    assert.deepEqual(h.stateTrail(), ['Idle', 'Connect', 'OpenSent', 'OpenConfirm', 'Established']);
    assert.deepEqual(h.sentOn(id).map((m) => m.type), ['open', 'keepalive']);
    const open = h.sentOn(id)[0];
    assert.ok(open?.type === 'open');
    assert.equal(open.version, 4);
    assert.equal(open.asn, LOCAL_AS);
    assert.equal(open.routerId, LOCAL_ID);
    assert.equal(open.holdTimeSeconds, 90);
    assert.equal(h.established.length, 1);
    const negotiated = h.established[0];
    assert.equal(negotiated?.direction, 'outgoing');
    assert.equal(negotiated?.peerType, 'ebgp');
    assert.equal(negotiated?.peerRouterId, 0x0a000001);
    assert.deepEqual(h.fsm.negotiated, negotiated);
    assert.equal(h.fsm.primaryConnection, id);
    assert.deepEqual(h.fsm.codecContext(id), { fourOctetAsn: true });
    assert.equal(h.clock.isArmed(TIMER.CONNECT_RETRY), false, 'no retry timer once connected');
  });

  test('passive start never connects and establishes on the peer’s connection', () => {
    for (const start of ['option', 'event'] as const) {
      const h = new Harness(start === 'option' ? { passive: true } : {});
      h.handle({ type: start === 'option' ? 'ManualStart' : 'ManualStart_with_PassiveTcpEstablishment' });
      assert.equal(h.state, 'Active');
      h.clock.advance(600_000);
      assert.deepEqual(h.connects, [], 'a passive peer never connects');
      const id = h.allocate();
      h.handle({ type: 'TcpConnectionConfirmed', connection: id });
      assert.equal(h.state, 'OpenSent');
      h.handle({ type: 'BGPOpen', connection: id, message: peerOpen() });
      h.handle({ type: 'KeepAliveMsg', connection: id });
      assert.deepEqual(h.stateTrail(), ['Idle', 'Active', 'OpenSent', 'OpenConfirm', 'Established']);
      assert.equal(h.established[0]?.direction, 'incoming');
    }
  });

  test('the peer connecting while our connect is in flight is accepted', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    assert.equal(h.state, 'OpenSent');
    assert.deepEqual(h.sentOn(incoming).map((m) => m.type), ['open']);
  });

  test('capabilities: common families, 4-octet ASN and route refresh only when the peer has them', () => {
    const h = new Harness({ families: ['ipv4-unicast', 'ipv6-unicast'] });
    h.handle({ type: 'ManualStart' });
    const id = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: id });
    const ours = h.sentOn(id)[0];
    assert.ok(ours?.type === 'open');
    assert.deepEqual(
      ours.capabilities.map((c) => c.code),
      ['multiprotocol', 'multiprotocol', 'route-refresh', 'four-octet-asn'],
    );
    h.handle({ type: 'BGPOpen', connection: id, message: peerOpen({ capabilities: [{ code: 'multiprotocol', family: 'ipv6-unicast' }] }) });
    h.handle({ type: 'KeepAliveMsg', connection: id });
    const n = h.established[0];
    assert.deepEqual(n?.families, ['ipv6-unicast']);
    assert.equal(n?.fourOctetAsn, false);
    assert.equal(n?.routeRefresh, false);
    assert.equal(h.fsm.requestRouteRefresh('ipv6-unicast'), false, 'no ROUTE-REFRESH to a peer that did not offer it');
  });

  test('a peer without multiprotocol capabilities speaks IPv4 unicast; no family in common is refused with 2/7', () => {
    const v4 = new Harness();
    establishOutgoing(v4, peerOpen({ capabilities: [] }));
    assert.deepEqual(v4.established[0]?.families, ['ipv4-unicast']);

    const v6only = new Harness({ families: ['ipv6-unicast'] });
    v6only.handle({ type: 'ManualStart' });
    const id = v6only.lastConnect();
    v6only.handle({ type: 'Tcp_CR_Acked', connection: id });
    v6only.handle({ type: 'BGPOpen', connection: id, message: peerOpen({ capabilities: [] }) });
    assert.deepEqual(v6only.notificationsOn(id), [[2, 7]]);
    assert.equal(v6only.state, 'Idle');
  });

  test('a restarting speaker sets the R and F bits in its OPEN', () => {
    const h = new Harness({ gracefulRestart: { restartTimeSeconds: 90, restarting: true, forwardingPreserved: true } });
    h.handle({ type: 'ManualStart' });
    const id = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: id });
    const open = h.sentOn(id)[0];
    assert.ok(open?.type === 'open');
    const gr = open.capabilities.find((c) => c.code === 'graceful-restart');
    assert.deepEqual(gr, { code: 'graceful-restart', restarting: true, restartTimeSeconds: 90, families: [{ family: 'ipv4-unicast', forwardingPreserved: true }] });
  });
});

describe('BGP FSM: hold time and keepalives', () => {
  test('the smaller hold time wins and keepalives go every third of it', () => {
    const h = new Harness({ holdTimeSeconds: 90 });
    const id = establishOutgoing(h, peerOpen({ holdTimeSeconds: 30 }));
    assert.equal(h.fsm.negotiated?.holdTimeSeconds, 30);
    assert.equal(h.fsm.negotiated?.keepaliveMs, 10_000);
    assert.equal(h.clock.remainingMs(TIMER.hold(id)), 30_000);
    const keepalives = () => h.sentOn(id).filter((m) => m.type === 'keepalive').length;
    assert.equal(keepalives(), 1, 'the OpenConfirm KEEPALIVE');
    h.clock.advance(9_999);
    assert.equal(keepalives(), 1);
    h.clock.advance(1);
    assert.equal(keepalives(), 2);
    // The peer's keepalives keep the session up well past one hold time.
    for (let i = 0; i < 10; i++) {
      h.clock.advance(10_000);
      h.handle({ type: 'KeepAliveMsg', connection: id });
    }
    assert.equal(h.state, 'Established');
    assert.equal(keepalives(), 12);
  });

  test('our hold time is used when it is the smaller, and is configurable', () => {
    const h = new Harness({ holdTimeSeconds: 9 });
    establishOutgoing(h);
    assert.equal(h.fsm.negotiated?.holdTimeSeconds, 9);
    assert.equal(h.fsm.negotiated?.keepaliveMs, 3000);
  });

  test('hold time 0 on either side: no hold timer, no keepalives', () => {
    for (const [local, peer] of [
      [90, 0],
      [0, 90],
    ] as const) {
      const h = new Harness({ holdTimeSeconds: local });
      const id = establishOutgoing(h, peerOpen({ holdTimeSeconds: peer }));
      assert.equal(h.fsm.negotiated?.holdTimeSeconds, 0);
      assert.equal(h.clock.isArmed(TIMER.hold(id)), false);
      assert.equal(h.clock.isArmed(TIMER.keepalive(id)), false);
      h.clock.advance(3_600_000);
      assert.equal(h.state, 'Established');
      assert.deepEqual(h.sentOn(id).map((m) => m.type), ['open', 'keepalive']);
    }
  });

  test('a peer hold time of 1 or 2 s is refused with 2/6 (UNACCEPTABLE_HOLD_TIME)', () => {
    for (const hold of [1, 2]) {
      const h = new Harness();
      h.handle({ type: 'ManualStart' });
      const id = h.lastConnect();
      h.handle({ type: 'Tcp_CR_Acked', connection: id });
      h.handle({ type: 'BGPOpen', connection: id, message: peerOpen({ holdTimeSeconds: hold }) });
      assert.deepEqual(h.notificationsOn(id), [[2, 6]]);
      assert.equal(h.state, 'Idle');
      assert.ok(h.closed.includes(id));
    }
  });

  test('a local hold time of 1 or 2 s is a configuration error', () => {
    for (const hold of [1, 2, -1, 1.5]) assert.throws(() => new Harness({ holdTimeSeconds: hold }), FsmConfigError);
  });

  test('hold timer expiry in Established sends 4/0, closes, goes Idle', () => {
    const h = new Harness({ holdTimeSeconds: 9 });
    const id = establishOutgoing(h);
    h.clock.advance(8_999);
    assert.equal(h.state, 'Established');
    h.clock.advance(1);
    assert.equal(h.state, 'Idle');
    assert.deepEqual(h.notificationsOn(id), [[4, 0]]);
    assert.ok(h.closed.includes(id));
    assert.equal(h.downs.length, 1);
    assert.deepEqual(h.downs[0]?.notification, { direction: 'sent', code: 4, subcode: 0 });
  });

  test('OpenSent waits 4 minutes for the OPEN, then sends 4/0', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const id = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: id });
    h.clock.advance(239_999);
    assert.equal(h.state, 'OpenSent');
    h.clock.advance(1);
    assert.equal(h.state, 'Idle');
    assert.deepEqual(h.notificationsOn(id), [[4, 0]]);
  });
});

describe('BGP FSM: OPEN errors and unexpected messages', () => {
  function openWith(open: OpenMessage, options: Partial<Omit<PeerFsmOptions, 'clock' | 'outputs'>> = {}): { h: Harness; id: ConnectionId } {
    const h = new Harness(options);
    h.handle({ type: 'ManualStart' });
    const id = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: id });
    h.handle({ type: 'BGPOpen', connection: id, message: open });
    return { h, id };
  }

  test('a peer AS other than configured is 2/2 (BAD_PEER_AS)', () => {
    const { h, id } = openWith(peerOpen({ asn: 65099 }));
    assert.deepEqual(h.notificationsOn(id), [[2, 2]]);
    assert.equal(h.state, 'Idle');
  });

  test('identifier 0, or our own on iBGP, is 2/3 (BAD_BGP_IDENTIFIER); our own on eBGP is allowed', () => {
    const zero = openWith(peerOpen({ routerId: 0 }));
    assert.deepEqual(zero.h.notificationsOn(zero.id), [[2, 3]]);
    const same = openWith(peerOpen({ routerId: LOCAL_ID, asn: LOCAL_AS }), { peerAsn: LOCAL_AS });
    assert.deepEqual(same.h.notificationsOn(same.id), [[2, 3]]);
    assert.equal(same.h.state, 'Idle');
    const ebgp = openWith(peerOpen({ routerId: LOCAL_ID }));
    assert.deepEqual(ebgp.h.notificationsOn(ebgp.id), []);
    assert.equal(ebgp.h.state, 'OpenConfirm');
  });

  test('version 3 is 2/1 with the version we support as data', () => {
    const { h, id } = openWith(peerOpen({ version: 3 }));
    const notification = h.allNotifications()[0];
    assert.deepEqual(h.notificationsOn(id), [[2, 1]]);
    assert.deepEqual([...(notification?.data ?? [])], [0, 4]);
    assert.equal(h.state, 'Idle');
  });

  test('unexpected messages are FSM errors (5) with the RFC 6608 subcode of the state', () => {
    const inOpenSent = new Harness();
    inOpenSent.handle({ type: 'ManualStart' });
    const a = inOpenSent.lastConnect();
    inOpenSent.handle({ type: 'Tcp_CR_Acked', connection: a });
    inOpenSent.handle({ type: 'KeepAliveMsg', connection: a });
    assert.deepEqual(inOpenSent.notificationsOn(a), [[5, 1]]);
    assert.equal(inOpenSent.state, 'Idle');

    const inOpenConfirm = new Harness();
    inOpenConfirm.handle({ type: 'ManualStart' });
    const b = inOpenConfirm.lastConnect();
    inOpenConfirm.handle({ type: 'Tcp_CR_Acked', connection: b });
    inOpenConfirm.handle({ type: 'BGPOpen', connection: b, message: peerOpen() });
    inOpenConfirm.handle({ type: 'UpdateMsg', connection: b, update: { message: emptyUpdate } });
    assert.deepEqual(inOpenConfirm.notificationsOn(b), [[5, 2]]);
    assert.equal(inOpenConfirm.state, 'Idle');
    assert.deepEqual(inOpenConfirm.updates, [], 'the UPDATE is not delivered');

    const inEstablished = new Harness();
    const c = establishOutgoing(inEstablished);
    inEstablished.handle({ type: 'BGPOpen', connection: c, message: peerOpen() });
    assert.deepEqual(inEstablished.notificationsOn(c), [[5, 3]]);
    assert.equal(inEstablished.state, 'Idle');
  });

  test('decoding errors become NOTIFICATIONs with the codec’s code, subcode and data', () => {
    const h = new Harness();
    const id = establishOutgoing(h);
    h.handle(messageErrorEvent(id, { code: 3, subcode: 11, data: new Uint8Array([9, 9]) }));
    const n = h.allNotifications()[0];
    assert.deepEqual([n?.code, n?.subcode, [...(n?.data ?? [])]], [3, 11, [9, 9]]);
    assert.equal(h.state, 'Idle');
    assert.equal(h.downs[0]?.graceful, false);

    assert.equal(messageErrorEvent(1, { code: 1, subcode: 2, data: new Uint8Array() }).type, 'BGPHeaderErr');
    assert.equal(messageErrorEvent(1, { code: 2, subcode: 4, data: new Uint8Array() }).type, 'BGPOpenMsgErr');
    assert.equal(messageErrorEvent(1, { code: 3, subcode: 1, data: new Uint8Array() }).type, 'UpdateMsgErr');
  });

  test('a NOTIFICATION from the peer ends the session without one back', () => {
    for (const upTo of ['OpenSent', 'Established'] as const) {
      const h = new Harness();
      let id: ConnectionId;
      if (upTo === 'Established') id = establishOutgoing(h);
      else {
        h.handle({ type: 'ManualStart' });
        id = h.lastConnect();
        h.handle({ type: 'Tcp_CR_Acked', connection: id });
      }
      h.handle({ type: 'NotifMsg', connection: id, message: { type: 'notification', code: 6, subcode: 2, data: new Uint8Array() } });
      assert.equal(h.state, 'Idle');
      assert.deepEqual(h.allNotifications(), []);
      assert.ok(h.closed.includes(id));
    }
  });
});

describe('BGP FSM: Established traffic', () => {
  test('UPDATEs are delivered with the codec’s verdict and restart the hold timer', () => {
    const h = new Harness({ holdTimeSeconds: 9 });
    const id = establishOutgoing(h);
    h.clock.advance(8_000);
    h.handle(messageEvent(id, { message: emptyUpdate, treatAsWithdraw: true }));
    assert.equal(h.clock.remainingMs(TIMER.hold(id)), 9_000);
    assert.deepEqual(h.updates, [{ message: emptyUpdate, treatAsWithdraw: true }]);
    h.handle({ type: 'RouteRefreshMsg', connection: id, message: { type: 'route-refresh', family: 'ipv4-unicast', subtype: 0 } });
    assert.deepEqual(h.refreshes, ['ipv4-unicast']);
  });

  test('sendUpdates sends on the session and restarts the keepalive timer; refused before Established', () => {
    const h = new Harness({ holdTimeSeconds: 30 });
    assert.equal(h.fsm.sendUpdates([emptyUpdate]), false);
    const id = establishOutgoing(h);
    h.clock.advance(5_000);
    assert.equal(h.fsm.sendUpdates([emptyUpdate, emptyUpdate]), true);
    assert.equal(h.sentOn(id).filter((m) => m.type === 'update').length, 2);
    assert.equal(h.clock.remainingMs(TIMER.keepalive(id)), 10_000);
    assert.equal(h.fsm.requestRouteRefresh('ipv4-unicast'), true);
    assert.equal(h.sentOn(id).at(-1)?.type, 'route-refresh');
  });
});

describe('BGP FSM: connection collisions (RFC 4271 §6.8)', () => {
  /** Our connect up (OpenSent) and the peer's connection arriving beside it. */
  function twoConnections(h: Harness): { outgoing: ConnectionId; incoming: ConnectionId } {
    h.handle({ type: 'ManualStart' });
    const outgoing = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: outgoing });
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    assert.equal(h.sentOn(incoming)[0]?.type, 'open', 'the second connection gets our OPEN too');
    return { outgoing, incoming };
  }

  test('we have the higher identifier: our connection stays, the peer’s gets 6/7', () => {
    const h = new Harness();
    const { outgoing, incoming } = twoConnections(h);
    const open = peerOpen({ routerId: LOCAL_ID - 1 });
    h.handle({ type: 'BGPOpen', connection: incoming, message: open });
    assert.deepEqual(h.notificationsOn(incoming), [[6, 7]]);
    assert.ok(h.closed.includes(incoming));
    assert.equal(h.state, 'OpenSent');
    h.handle({ type: 'BGPOpen', connection: outgoing, message: open });
    h.handle({ type: 'KeepAliveMsg', connection: outgoing });
    assert.equal(h.state, 'Established');
    assert.equal(h.established[0]?.direction, 'outgoing');
    assert.deepEqual(h.notificationsOn(outgoing), []);
  });

  test('the peer has the higher identifier: its connection stays, ours gets 6/7', () => {
    const h = new Harness();
    const { outgoing, incoming } = twoConnections(h);
    const open = peerOpen({ routerId: LOCAL_ID + 1 });
    // The OPEN arrives on our connection first: it loses at once, the peer's carries on.
    h.handle({ type: 'BGPOpen', connection: outgoing, message: open });
    assert.deepEqual(h.notificationsOn(outgoing), [[6, 7]]);
    assert.ok(h.closed.includes(outgoing));
    assert.equal(h.state, 'OpenSent');
    assert.equal(h.fsm.primaryConnection, incoming);
    h.handle({ type: 'BGPOpen', connection: incoming, message: open });
    h.handle({ type: 'KeepAliveMsg', connection: incoming });
    assert.equal(h.state, 'Established');
    assert.equal(h.established[0]?.direction, 'incoming');
    assert.equal(h.downs.length, 0, 'the session never went down');
  });

  test('the winning second connection replaces a primary already in OpenConfirm', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const outgoing = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: outgoing });
    const open = peerOpen({ routerId: LOCAL_ID + 1 });
    h.handle({ type: 'BGPOpen', connection: outgoing, message: open });
    assert.equal(h.state, 'OpenConfirm');
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    h.handle({ type: 'BGPOpen', connection: incoming, message: open });
    assert.deepEqual(h.notificationsOn(outgoing), [[6, 7]]);
    assert.equal(h.state, 'OpenConfirm');
    h.handle({ type: 'KeepAliveMsg', connection: incoming });
    assert.equal(h.state, 'Established');
    assert.equal(h.fsm.primaryConnection, incoming);
  });

  test('a losing second connection beside a known peer is dumped without waiting for its OPEN', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const outgoing = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: outgoing });
    h.handle({ type: 'BGPOpen', connection: outgoing, message: peerOpen({ routerId: LOCAL_ID - 1 }) });
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    assert.deepEqual(h.notificationsOn(incoming), [[6, 7]]);
    assert.equal(h.state, 'OpenConfirm');
  });

  test('the peer resolving first (6/7 on our primary) hands the session to the other connection', () => {
    const h = new Harness();
    const { outgoing, incoming } = twoConnections(h);
    h.handle({ type: 'NotifMsg', connection: outgoing, message: { type: 'notification', code: 6, subcode: 7, data: new Uint8Array() } });
    assert.equal(h.state, 'OpenSent');
    assert.equal(h.fsm.primaryConnection, incoming);
  });

  test('a new connection while Established gets 6/7 and the session stays', () => {
    const h = new Harness();
    const id = establishOutgoing(h);
    const late = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: late });
    h.handle({ type: 'BGPOpen', connection: late, message: peerOpen() });
    assert.deepEqual(h.notificationsOn(late), [[6, 7]]);
    assert.equal(h.state, 'Established');
    assert.equal(h.fsm.primaryConnection, id);
  });

  test('a new OPEN from a GR peer while Established is its restart: old session down gracefully, new one takes over', () => {
    const h = new Harness({ gracefulRestart: { restartTimeSeconds: 120 } });
    const old = establishOutgoing(h, peerOpen({}, [GR_CAP]));
    const fresh = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: fresh });
    h.handle({ type: 'BGPOpen', connection: fresh, message: peerOpen({}, [{ ...GR_CAP, restarting: true }]) });
    assert.ok(h.closed.includes(old));
    assert.equal(h.downs[0]?.graceful, true);
    assert.equal(h.state, 'OpenConfirm');
    h.handle({ type: 'KeepAliveMsg', connection: fresh });
    assert.equal(h.state, 'Established');
    assert.equal(h.established.at(-1)?.gracefulRestart?.restarting, true);
  });
});

describe('BGP FSM: retries, stop and restart', () => {
  test('connect retry waits grow by doubling with jitter and stop at the cap', () => {
    const randoms = [0, 0.5, 1, 0.25, 0.75, 0, 1];
    let i = 0;
    const h = new Harness({ retry: { initialMs: 1000, maxMs: 8000, random: () => randoms[i++ % randoms.length] ?? 0 } });
    h.handle({ type: 'ManualStart' });
    const waits: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      assert.equal(h.state, 'Connect');
      h.handle({ type: 'TcpConnectionFails', connection: h.lastConnect(), error: 'ECONNREFUSED' });
      assert.equal(h.state, 'Active');
      const wait = h.clock.remainingMs(TIMER.CONNECT_RETRY);
      assert.ok(wait !== undefined);
      waits.push(wait);
      h.clock.fire(TIMER.CONNECT_RETRY);
    }
    // delay d doubles 1000 → 8000; each wait is d/2 + r·d/2 for the r drawn.
    const ceilings = [1000, 2000, 4000, 8000, 8000, 8000, 8000];
    assert.deepEqual(
      waits,
      ceilings.map((d, k) => Math.round(d / 2 + ((randoms[k] ?? 0) * d) / 2)),
    );
    waits.forEach((wait, k) => assert.ok(wait >= (ceilings[k] ?? 0) / 2 && wait <= (ceilings[k] ?? 0)));
    assert.equal(h.connects.length, 8, 'one connect per retry');
  });

  test('a connect that hangs is abandoned after the connect timeout; Active still accepts the peer', () => {
    const h = new Harness({ connectTimeoutMs: 5000 });
    h.handle({ type: 'ManualStart' });
    const first = h.lastConnect();
    h.clock.advance(5000);
    assert.equal(h.state, 'Active');
    assert.ok(h.closed.includes(first));
    // The abandoned connect completing late is closed, not used.
    h.handle({ type: 'Tcp_CR_Acked', connection: first });
    assert.equal(h.state, 'Active');
    assert.equal(h.closed.filter((c) => c === first).length, 2);
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    assert.equal(h.state, 'OpenSent');
  });

  test('ManualStop sends Cease 6/2, reports down, and nothing restarts', () => {
    const h = new Harness();
    const id = establishOutgoing(h);
    h.handle({ type: 'ManualStop' });
    assert.equal(h.state, 'Idle');
    assert.deepEqual(h.notificationsOn(id), [[6, 2]]);
    assert.deepEqual(h.downs[0], { reason: 'stopped', graceful: false, notification: { direction: 'sent', code: 6, subcode: 2 } });
    assert.equal(h.clock.isArmed(TIMER.IDLE_HOLD), false);
    h.clock.advance(3_600_000);
    assert.equal(h.connects.length, 1);
    // Stopped: the peer's connections are refused with 6/5.
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    assert.deepEqual(h.notificationsOn(incoming), [[6, 5]]);
    assert.ok(h.closed.includes(incoming));
  });

  test('after an error the FSM restarts itself after the idle hold time, longer each flap, reset once stable', () => {
    const h = new Harness({ holdTimeSeconds: 9, stableMs: 60_000, retry: { initialMs: 1000, maxMs: 16_000, random: () => 1 } });
    establishOutgoing(h);
    const idleHolds: number[] = [];
    for (let flap = 0; flap < 3; flap++) {
      h.handle({ type: 'TcpConnectionFails', connection: h.lastConnect() });
      assert.equal(h.state, 'Idle');
      idleHolds.push(h.clock.remainingMs(TIMER.IDLE_HOLD) ?? -1);
      h.clock.fire(TIMER.IDLE_HOLD);
      assert.equal(h.state, 'Connect', 'restarted by itself');
      const id = h.lastConnect();
      h.handle({ type: 'Tcp_CR_Acked', connection: id });
      h.handle({ type: 'BGPOpen', connection: id, message: peerOpen() });
      h.handle({ type: 'KeepAliveMsg', connection: id });
    }
    assert.deepEqual(idleHolds, [1000, 2000, 4000]);
    // Stable for a minute (the peer keeps talking): the damping is forgotten.
    for (let t = 0; t < 60_000; t += 3000) {
      h.clock.advance(3000);
      h.handle({ type: 'KeepAliveMsg', connection: h.lastConnect() });
    }
    h.handle({ type: 'TcpConnectionFails', connection: h.lastConnect() });
    assert.equal(h.clock.remainingMs(TIMER.IDLE_HOLD), 1000);
  });

  test('Connection Rejected (6/5) in OpenSent goes to Active: retry later, accept the peer meanwhile', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const id = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: id });
    h.handle({ type: 'NotifMsg', connection: id, message: { type: 'notification', code: 6, subcode: 5, data: new Uint8Array() } });
    assert.equal(h.state, 'Active');
    assert.ok(h.clock.isArmed(TIMER.CONNECT_RETRY));
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    assert.equal(h.state, 'OpenSent');
    assert.deepEqual(h.notificationsOn(incoming), []);
  });

  test('a connect still hanging when the next attempt starts is closed, not leaked', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const hanging = h.lastConnect();
    // The peer connects first; its session then dies, and our old attempt never resolved.
    const incoming = h.allocate();
    h.handle({ type: 'TcpConnectionConfirmed', connection: incoming });
    h.handle({ type: 'TcpConnectionFails', connection: incoming });
    assert.equal(h.state, 'Active');
    h.clock.fire(TIMER.CONNECT_RETRY);
    assert.equal(h.state, 'Connect');
    assert.ok(h.closed.includes(hanging));
    assert.notEqual(h.lastConnect(), hanging);
  });

  test('TCP loss in OpenSent goes to Active and retries', () => {
    const h = new Harness();
    h.handle({ type: 'ManualStart' });
    const id = h.lastConnect();
    h.handle({ type: 'Tcp_CR_Acked', connection: id });
    h.handle({ type: 'TcpConnectionFails', connection: id });
    assert.equal(h.state, 'Active');
    h.clock.fire(TIMER.CONNECT_RETRY);
    assert.equal(h.state, 'Connect');
    assert.equal(h.connects.length, 2);
  });
});

describe('BGP FSM: graceful restart reporting', () => {
  test('TCP loss or hold expiry is graceful when both sides advertised GR', () => {
    for (const cause of ['tcp', 'hold'] as const) {
      const h = new Harness({ holdTimeSeconds: 9, gracefulRestart: { restartTimeSeconds: 120 } });
      const id = establishOutgoing(h, peerOpen({}, [GR_CAP]));
      if (cause === 'tcp') h.handle({ type: 'TcpConnectionFails', connection: id });
      else h.clock.advance(9000);
      assert.equal(h.state, 'Idle');
      assert.equal(h.downs.length, 1);
      assert.equal(h.downs[0]?.graceful, true);
      assert.equal(h.downs[0]?.restartTimeSeconds, 120);
      assert.deepEqual(h.downs[0]?.families, ['ipv4-unicast']);
    }
  });

  test('not graceful when only one side advertised GR, or after a NOTIFICATION', () => {
    const peerOnly = new Harness();
    const a = establishOutgoing(peerOnly, peerOpen({}, [GR_CAP]));
    assert.equal(peerOnly.fsm.negotiated?.gracefulRestart, undefined);
    peerOnly.handle({ type: 'TcpConnectionFails', connection: a });
    assert.equal(peerOnly.downs[0]?.graceful, false);

    const oursOnly = new Harness({ gracefulRestart: { restartTimeSeconds: 120 } });
    const b = establishOutgoing(oursOnly);
    oursOnly.handle({ type: 'TcpConnectionFails', connection: b });
    assert.equal(oursOnly.downs[0]?.graceful, false);

    const notified = new Harness({ gracefulRestart: { restartTimeSeconds: 120 } });
    const c = establishOutgoing(notified, peerOpen({}, [GR_CAP]));
    notified.handle({ type: 'NotifMsg', connection: c, message: { type: 'notification', code: 6, subcode: 4, data: new Uint8Array() } });
    assert.equal(notified.downs[0]?.graceful, false);
    assert.deepEqual(notified.downs[0]?.notification, { direction: 'received', code: 6, subcode: 4 });
  });

  test('ManualStop with gracefulRestart closes without a NOTIFICATION', () => {
    const h = new Harness({ gracefulRestart: { restartTimeSeconds: 120 } });
    const id = establishOutgoing(h, peerOpen({}, [GR_CAP]));
    h.handle({ type: 'ManualStop', gracefulRestart: true, reason: 'restarting' });
    assert.deepEqual(h.notificationsOn(id), []);
    assert.ok(h.closed.includes(id));
    assert.equal(h.state, 'Idle');
  });
});
