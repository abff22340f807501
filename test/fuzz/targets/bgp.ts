/**
 * BGP target: a mutated wire message (test/bgp/mutate.ts's mutator, which knows the header
 * and repairs the marker and Length most of the time) through MessageFramer + decodeMessage,
 * then through a PeerFsm brought to OpenSent, OpenConfirm or Established with a cooperative
 * peer, the way src/bgp/session.ts feeds it.
 *
 * The property: the codec yields a message or a BgpMessageError (the RFC 4271 §6
 * NOTIFICATION code/subcode) and nothing else, decoded messages round-trip (fuzzOne checks
 * it); the FSM never throws, and a decoding error makes it send exactly that NOTIFICATION on
 * the connection (an UPDATE error before Established is an FSM error instead, RFC 4271 §8.2.2
 * and RFC 6608), close it and go to Idle.
 */
import { BgpMessageError, decodeMessage, MessageFramer } from '../../../src/bgp/codec/index.js';
import { type ConnectionId, FSM_SUBCODE, messageErrorEvent, messageEvent, PeerFsm, type State } from '../../../src/bgp/fsm.js';
import { FakeClock } from '../../../src/bgp/timers.js';
import { type BgpMessage, type CodecContext, ERROR_CODE } from '../../../src/bgp/types.js';
import { FuzzFailure, fuzzOne, mutate, seedFrames } from '../../bgp/mutate.js';
import { int, type Json, pick } from '../mutator.js';
import type { FuzzSession, FuzzTarget, Verdict } from '../target.js';

const STATES = ['OpenSent', 'OpenConfirm', 'Established'] as const;
type StartState = (typeof STATES)[number];

interface BgpInput {
  hex: string;
  fourOctetAsn: boolean;
  splitAt: number;
  state: StartState;
}

function asInput(json: Json): BgpInput {
  const o = json as Record<string, Json>;
  return { hex: String(o['hex']), fourOctetAsn: o['fourOctetAsn'] === true, splitAt: Number(o['splitAt']), state: (o['state'] as StartState) ?? 'Established' };
}

const CONN: ConnectionId = 1;

/** What the FSM did on our one connection. */
class FsmRun {
  readonly sent: BgpMessage[] = [];
  closed = false;
  readonly fsm: PeerFsm;

  constructor() {
    this.fsm = new PeerFsm({
      localAsn: 65001,
      peerAsn: 65002,
      routerId: 0x0a000002,
      passive: true,
      families: ['ipv4-unicast', 'ipv6-unicast'],
      clock: new FakeClock(),
      outputs: {
        connect: () => 99,
        send: (connection, message) => {
          if (connection === CONN) this.sent.push(message);
        },
        closeConnection: (connection) => {
          if (connection === CONN) this.closed = true;
        },
      },
    });
  }
}

function fsmIn(state: StartState): FsmRun {
  const run = new FsmRun();
  const fsm = run.fsm;
  fsm.handle({ type: 'ManualStart_with_PassiveTcpEstablishment' });
  fsm.handle({ type: 'TcpConnectionConfirmed', connection: CONN });
  if (state !== 'OpenSent') {
    fsm.handle({
      type: 'BGPOpen',
      connection: CONN,
      message: {
        type: 'open',
        version: 4,
        asn: 65002,
        holdTimeSeconds: 90,
        routerId: 0x0a000001,
        capabilities: [{ code: 'multiprotocol', family: 'ipv4-unicast' }, { code: 'multiprotocol', family: 'ipv6-unicast' }, { code: 'route-refresh' }, { code: 'four-octet-asn', asn: 65002 }],
      },
    });
  }
  if (state === 'Established') fsm.handle({ type: 'KeepAliveMsg', connection: CONN });
  if (fsm.state !== state) throw new Error(`failed to bring the FSM to ${state}: it is in ${fsm.state}`);
  run.sent.length = 0;
  return run;
}

/** Feeds `bytes` as session.ts does; returns a crash reason or the state reached. */
function throughFsm(input: BgpInput, bytes: Uint8Array): { crash: string } | { state: State } {
  const run = fsmIn(input.state);
  const { fsm } = run;
  const framer = new MessageFramer();
  const chunks = [bytes.subarray(0, input.splitAt), bytes.subarray(input.splitAt)];
  try {
    for (const chunk of chunks) {
      if (run.closed) break;
      let frames: Uint8Array[];
      let failure: BgpMessageError | undefined;
      try {
        frames = framer.push(chunk);
      } catch (err) {
        if (!(err instanceof BgpMessageError)) return { crash: `framer threw ${String(err)}` };
        frames = [];
        failure = err;
      }
      for (const frame of frames) {
        if (run.closed) break;
        try {
          const decoded = decodeMessage(frame, fsm.codecContext(CONN));
          if (decoded.ignore) continue;
          fsm.handle(messageEvent(CONN, decoded));
        } catch (err) {
          if (!(err instanceof BgpMessageError)) return { crash: `decode or FSM threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` };
          failure = err;
          break;
        }
      }
      if (failure) {
        run.sent.length = 0;
        fsm.handle(messageErrorEvent(CONN, { code: failure.code, subcode: failure.subcode, data: failure.data, message: failure.message }));
        const notifications = run.sent.filter((m) => m.type === 'notification');
        const [first] = notifications;
        if (notifications.length !== 1 || !first || first.type !== 'notification') return { crash: `decode error ${failure.code}/${failure.subcode} in ${input.state}: ${notifications.length} NOTIFICATIONs sent` };
        // RFC 4271 §8.2.2: an UPDATE error before Established (events 25-28) is an FSM
        // error, with RFC 6608's subcode for the state; anything else reports its own code.
        const expected = failure.code === ERROR_CODE.UPDATE_MESSAGE && input.state !== 'Established' ? { code: ERROR_CODE.FSM, subcode: input.state === 'OpenSent' ? FSM_SUBCODE.UNEXPECTED_IN_OPENSENT : FSM_SUBCODE.UNEXPECTED_IN_OPENCONFIRM } : failure;
        if (first.code !== expected.code || first.subcode !== expected.subcode) return { crash: `decode error ${failure.code}/${failure.subcode} but NOTIFICATION ${first.code}/${first.subcode} sent` };
        if (!run.closed || fsm.state !== 'Idle') return { crash: `decode error ${failure.code}/${failure.subcode}: connection ${run.closed ? 'closed' : 'left open'}, FSM in ${fsm.state}` };
        break;
      }
    }
  } catch (err) {
    return { crash: `FSM threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` };
  }
  for (const message of run.sent) {
    if (message.type === 'notification' && (message.code < 1 || message.code > 7)) return { crash: `NOTIFICATION with code ${message.code}` };
  }
  return { state: fsm.state };
}

export function judgeBgp(json: Json): Verdict {
  const input = asInput(json);
  const bytes = Uint8Array.from(Buffer.from(input.hex, 'hex'));
  const ctx: CodecContext = { fourOctetAsn: input.fourOctetAsn };
  let outcomes: string[];
  try {
    outcomes = fuzzOne(bytes, ctx, input.splitAt);
  } catch (err) {
    if (err instanceof FuzzFailure) return { crash: err.message };
    throw err;
  }
  // The FSM's OPEN negotiated four-octet ASNs, so its codec context is that one's.
  const fsm = throughFsm(input, bytes);
  if ('crash' in fsm) return fsm;
  return { outcome: `${outcomes[0] ?? 'nothing'} → ${fsm.state}` };
}

export const bgpTarget: FuzzTarget = {
  name: 'bgp',
  async open(): Promise<FuzzSession> {
    const seeds = seedFrames();
    return {
      generate(random) {
        const bytes = mutate(random, seeds);
        return { hex: Buffer.from(bytes).toString('hex'), fourOctetAsn: random() < 0.5, splitAt: int(random, bytes.length + 1), state: pick(random, STATES) };
      },
      judge: async (input) => judgeBgp(input),
      close: async () => undefined,
    };
  },
};
