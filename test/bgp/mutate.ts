/**
 * A seeded mutation fuzzer for the BGP codec, shared by test/bgp/fuzz.test.ts (100k
 * inputs) and bench/fuzz.ts (1M). Inputs start from valid messages of every type and get
 * one to four mutations: bit flips, bytes set to boundary values, truncation, tweaks of
 * 1- and 2-octet length fields, insertions and deletions, and splices of two messages.
 * Most of the time the marker and header Length are repaired afterwards so mutations reach
 * the per-type decoders instead of all dying in the header check.
 *
 * `fuzzOne` is the property: framing and decoding either succeed or throw BgpMessageError;
 * anything else is a crash. A message decoded without treat-as-withdraw or ignore must
 * re-encode without throwing and decode again to an equal message (unknown attributes are
 * compared with the Partial bit set, which the encoder adds on purpose, RFC 4271 §5).
 */
import { isDeepStrictEqual } from 'node:util';
import { BgpMessageError, decodeMessage, encodeMessage, endOfRib, MessageFramer } from '../../src/bgp/codec/index.js';
import { ATTR_FLAG, type BgpMessage, type CodecContext } from '../../src/bgp/types.js';
import { PontoonError } from '../../src/lib/errors.js';
import { parseIp, parseIpNet } from '../../src/lib/ip.js';

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Random = () => number;
const int = (random: Random, below: number): number => Math.floor(random() * below);

export function seedMessages(): BgpMessage[] {
  const attributes = {
    origin: 'igp' as const,
    asPath: [
      { type: 'confed-sequence' as const, asns: [64512] },
      { type: 'sequence' as const, asns: [65001, 4200000000, 65003] },
      { type: 'set' as const, asns: [7, 8] },
    ],
    nextHop: parseIp('192.0.2.1'),
    med: 10,
    localPref: 100,
    atomicAggregate: true,
    aggregator: { asn: 4200000001, address: parseIp('192.0.2.2') },
    communities: [0xfde90064, 0xffffff01],
    originatorId: 0x0a000001,
    clusterList: [0x0a000002, 0x0a000003],
    unknown: [{ flags: 0xc0, typeCode: 32, value: Uint8Array.of(0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2) }],
  };
  return [
    { type: 'keepalive' },
    {
      type: 'open',
      version: 4,
      asn: 4200000000,
      holdTimeSeconds: 90,
      routerId: 0x0a000001,
      capabilities: [
        { code: 'multiprotocol', family: 'ipv4-unicast' },
        { code: 'multiprotocol', family: 'ipv6-unicast' },
        { code: 'route-refresh' },
        { code: 'enhanced-route-refresh' },
        { code: 'four-octet-asn', asn: 4200000000 },
        { code: 'graceful-restart', restarting: true, restartTimeSeconds: 120, families: [{ family: 'ipv4-unicast', forwardingPreserved: true }] },
        { code: 'unknown', type: 73, value: Uint8Array.of(1, 2, 3) },
      ],
    },
    { type: 'update', withdrawn: [parseIpNet('10.9.0.0/16')], attributes, nlri: [parseIpNet('10.0.0.0/8'), parseIpNet('192.0.2.128/25'), parseIpNet('0.0.0.0/0')] },
    {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 'egp', asPath: [{ type: 'sequence', asns: [65001] }], nextHop: parseIp('2001:db8::1'), linkLocalNextHop: parseIp('fe80::1'), med: 5 },
      nlri: [],
      mpReach: { family: 'ipv6-unicast', nlri: [parseIpNet('2001:db8:1::/48'), parseIpNet('2001:db8::1/128')] },
      mpUnreach: { family: 'ipv6-unicast', withdrawn: [parseIpNet('2001:db8:2::/48')] },
    },
    { type: 'update', withdrawn: [], attributes: { origin: 'incomplete', asPath: [], nextHop: parseIp('192.0.2.7') }, nlri: [], mpReach: { family: 'ipv4-unicast', nlri: [parseIpNet('10.1.0.0/16')] } },
    endOfRib('ipv4-unicast'),
    endOfRib('ipv6-unicast'),
    { type: 'notification', code: 3, subcode: 5, data: Uint8Array.of(0x40, 0x01, 0x02, 0, 0) },
    { type: 'route-refresh', family: 'ipv6-unicast', subtype: 1 },
    { type: 'route-refresh', family: 'ipv4-unicast', subtype: 0 },
  ];
}

/** Every seed encoded for both kinds of peer. */
export function seedFrames(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const message of seedMessages()) for (const fourOctetAsn of [true, false]) frames.push(encodeMessage(message, { fourOctetAsn }));
  return frames;
}

const BOUNDARY = [0x00, 0x01, 0x02, 0x03, 0x04, 0x7f, 0x80, 0x81, 0xc0, 0xe0, 0xfe, 0xff, 0x10, 0x20, 0x21, 0x40, 0x41];

function setHeaderLength(bytes: Uint8Array): void {
  if (bytes.length < 18) return;
  const length = Math.min(bytes.length, 0xffff);
  bytes[16] = length >> 8;
  bytes[17] = length & 0xff;
}

export function mutate(random: Random, seeds: readonly Uint8Array[]): Uint8Array {
  const pick = (): Uint8Array => seeds[int(random, seeds.length)] ?? new Uint8Array(0);
  let bytes: Uint8Array = new Uint8Array(pick());
  const rounds = 1 + int(random, 4);
  for (let round = 0; round < rounds; round++) {
    const at = int(random, Math.max(bytes.length, 1));
    switch (int(random, 8)) {
      case 0: // bit flip
        if (bytes.length > 0) bytes[at] = (bytes[at] ?? 0) ^ (1 << int(random, 8));
        break;
      case 1: // boundary byte, mostly past the marker
        if (bytes.length > 0) bytes[Math.max(at, Math.min(19, bytes.length - 1))] = BOUNDARY[int(random, BOUNDARY.length)] ?? 0;
        break;
      case 2: // truncation
        bytes = bytes.slice(0, at);
        break;
      case 3: {
        // a 1-octet length field nudged
        if (bytes.length > 19) {
          const where = 19 + int(random, bytes.length - 19);
          bytes[where] = ((bytes[where] ?? 0) + ([-2, -1, 1, 2, 4, 16][int(random, 6)] ?? 1)) & 0xff;
        }
        break;
      }
      case 4: {
        // a 2-octet big-endian field nudged (Withdrawn Routes Length, Total Attribute Length, ...)
        if (bytes.length > 20) {
          const where = 19 + int(random, bytes.length - 20);
          const value = (((bytes[where] ?? 0) << 8) | (bytes[where + 1] ?? 0)) + ([-3, -1, 1, 2, 100, 4096][int(random, 6)] ?? 1);
          bytes[where] = (value >> 8) & 0xff;
          bytes[where + 1] = value & 0xff;
        }
        break;
      }
      case 5: {
        // insertion of random bytes
        const insert = Uint8Array.from({ length: 1 + int(random, 8) }, () => int(random, 256));
        const grown = new Uint8Array(bytes.length + insert.length);
        grown.set(bytes.subarray(0, at));
        grown.set(insert, at);
        grown.set(bytes.subarray(at), at + insert.length);
        bytes = grown;
        break;
      }
      case 6: {
        // deletion of a run
        const count = 1 + int(random, 8);
        const tail = bytes.subarray(Math.min(at + count, bytes.length));
        const shrunk = new Uint8Array(Math.min(at, bytes.length) + tail.length);
        shrunk.set(bytes.subarray(0, at));
        shrunk.set(tail, Math.min(at, bytes.length));
        bytes = shrunk;
        break;
      }
      case 7: {
        // splice: the head of this message and the tail of another
        const other = pick();
        const cut = int(random, other.length + 1);
        const spliced = new Uint8Array(at + other.length - cut);
        spliced.set(bytes.subarray(0, at));
        spliced.set(other.subarray(cut), at);
        bytes = spliced;
        break;
      }
    }
  }
  // Most inputs get their marker and Length repaired, or nearly all would end in the
  // header check (or wait in the framer for bytes that never come) and the decoders behind
  // it would go untested; the rest keep whatever the mutations made of them.
  if (random() < 0.9) bytes.fill(0xff, 0, Math.min(16, bytes.length));
  if (random() < 0.7) setHeaderLength(bytes);
  // Sometimes two messages back to back, to exercise the framer's boundaries.
  if (random() < 0.1) {
    const next = pick();
    const both = new Uint8Array(bytes.length + next.length);
    both.set(bytes);
    both.set(next, bytes.length);
    bytes = both;
  }
  return bytes;
}

export class FuzzFailure extends PontoonError {
  constructor(
    readonly input: Uint8Array,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`fuzz input ${Buffer.from(input).toString('hex')}: ${reason}`, options);
  }
}

/** Outcome names: 'decoded', 'treat-as-withdraw', 'discard', 'ignored', 'incomplete', 'reset C/S'. */
export type Outcome = string;

function normalize(message: BgpMessage): BgpMessage {
  if (message.type !== 'update' || !message.attributes?.unknown) return message;
  const unknown = message.attributes.unknown.map((raw) => ({ ...raw, flags: raw.flags | ATTR_FLAG.PARTIAL }));
  return { ...message, attributes: { ...message.attributes, unknown } };
}

function checkRoundTrip(input: Uint8Array, message: BgpMessage, ctx: CodecContext): void {
  let again: BgpMessage;
  try {
    const encoded = encodeMessage(message, ctx);
    const decoded = decodeMessage(encoded, ctx);
    if (decoded.treatAsWithdraw) throw new Error(`re-encoded message is treat-as-withdraw: ${decoded.problems?.join('; ')}`);
    again = decoded.message;
  } catch (err) {
    throw new FuzzFailure(input, `re-encoding a decoded ${message.type} failed: ${String(err)}`, { cause: err });
  }
  if (!isDeepStrictEqual(normalize(again), normalize(message))) throw new FuzzFailure(input, `${message.type} changed in a round trip`);
}

/** Frames and decodes `input` (split at `splitAt`), checks the properties, returns the outcomes. */
export function fuzzOne(input: Uint8Array, ctx: CodecContext, splitAt: number): Outcome[] {
  const outcomes: Outcome[] = [];
  const framer = new MessageFramer();
  try {
    const frames = [...framer.push(input.subarray(0, splitAt)), ...framer.push(input.subarray(splitAt))];
    for (const frame of frames) {
      const decoded = decodeMessage(frame, ctx);
      if (decoded.treatAsWithdraw) {
        outcomes.push('treat-as-withdraw');
        continue;
      }
      if (decoded.ignore) {
        outcomes.push('ignored');
        continue;
      }
      outcomes.push(decoded.discarded ? 'discard' : 'decoded');
      checkRoundTrip(input, decoded.message, ctx);
    }
    if (framer.buffered > 0) outcomes.push('incomplete');
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    if (!(err instanceof BgpMessageError)) throw new FuzzFailure(input, `crashed with ${String(err)}`, { cause: err });
    outcomes.push(`reset ${err.code}/${err.subcode}`);
  }
  return outcomes;
}

/** Runs `count` mutated inputs from `seed`; calls `onOutcome` for each outcome. */
export function runFuzz(seed: number, count: number, onOutcome: (outcome: Outcome) => void): void {
  const random = rng(seed);
  const seeds = seedFrames();
  for (let i = 0; i < count; i++) {
    const input = mutate(random, seeds);
    const ctx: CodecContext = { fourOctetAsn: random() < 0.5 };
    for (const outcome of fuzzOne(input, ctx, int(random, input.length + 1))) onOutcome(outcome);
  }
}
