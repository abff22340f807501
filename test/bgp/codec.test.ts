/**
 * The BGP codec: byte-exact vectors built field by field from the RFC layouts (each
 * annotated), round trips for every message, capability and attribute, RFC 6793 AS4
 * merging both ways, the framer, and the 4096-byte limit. tshark.test.ts checks the same
 * encoder against Wireshark's independent dissector.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BGP_MAX_MESSAGE_LENGTH,
  BgpEncodeError,
  BgpMessageError,
  type DecodedMessage,
  decodeMessage,
  encodedNlriLength,
  encodeMessage,
  endOfRib,
  isEndOfRib,
  mergeAs4Path,
  MessageFramer,
} from '../../src/bgp/codec/index.js';
import {
  AS_TRANS,
  type BgpMessage,
  type CodecContext,
  ERROR_CODE,
  HEADER_SUBCODE,
  type OpenMessage,
  type PathAttributes,
  type UpdateMessage,
} from '../../src/bgp/types.js';
import { type IpNet, parseIp, parseIpNet } from '../../src/lib/ip.js';
import { decodePrefixes, writePrefixes } from '../../src/bgp/codec/nlri.js';
import { Writer } from '../../src/bgp/codec/wire.js';

const ctx4: CodecContext = { fourOctetAsn: true };
const ctx2: CodecContext = { fourOctetAsn: false };
const MARKER = 'ff'.repeat(16);

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const net = (text: string): IpNet => parseIpNet(text);
const routerId = (text: string): number => Number(parseIp(text).value);

function decode(bytes: Uint8Array, ctx: CodecContext = ctx4): DecodedMessage {
  return decodeMessage(bytes, ctx);
}

function roundTrip(message: BgpMessage, ctx: CodecContext = ctx4): DecodedMessage {
  const decoded = decode(encodeMessage(message, ctx), ctx);
  assert.deepEqual(decoded.message, message);
  assert.equal(decoded.treatAsWithdraw, undefined);
  assert.equal(decoded.discarded, undefined);
  return decoded;
}

function rejects(bytes: Uint8Array, code: number, subcode: number, ctx: CodecContext = ctx4): BgpMessageError {
  try {
    decode(bytes, ctx);
  } catch (err) {
    assert.ok(err instanceof BgpMessageError, `expected BgpMessageError, got ${String(err)}`);
    assert.deepEqual([err.code, err.subcode], [code, subcode]);
    return err;
  }
  assert.fail('decoding succeeded');
}

const fullOpen: OpenMessage = {
  type: 'open',
  version: 4,
  asn: 65001,
  holdTimeSeconds: 90,
  routerId: routerId('10.0.0.1'),
  capabilities: [
    { code: 'multiprotocol', family: 'ipv4-unicast' },
    { code: 'multiprotocol', family: 'ipv6-unicast' },
    { code: 'route-refresh' },
    { code: 'enhanced-route-refresh' },
    { code: 'four-octet-asn', asn: 65001 },
    {
      code: 'graceful-restart',
      restarting: true,
      restartTimeSeconds: 120,
      families: [
        { family: 'ipv4-unicast', forwardingPreserved: true },
        { family: 'ipv6-unicast', forwardingPreserved: false },
      ],
    },
    { code: 'unknown', type: 73, value: hex('010203') },
  ],
};

// RFC 4271 §4.2 fields, RFC 5492 capability TLVs in one type-2 parameter.
const fullOpenHex = `${MARKER} 0046 01
  04 fde9 005a 0a000001 29
  02 27
    01 04 0001 00 01
    01 04 0002 00 01
    02 00
    46 00
    41 04 0000fde9
    40 0a 8078 0001 01 80 0002 01 00
    49 03 010203`;

describe('known vectors', () => {
  test('KEEPALIVE is the bare header (RFC 4271 §4.4)', () => {
    assert.equal(toHex(encodeMessage({ type: 'keepalive' }, ctx4)), `${MARKER}001304`);
    assert.deepEqual(decode(hex(`${MARKER}001304`)).message, { type: 'keepalive' });
  });

  test('OPEN with every capability', () => {
    assert.equal(toHex(encodeMessage(fullOpen, ctx4)), toHex(hex(fullOpenHex)));
    assert.deepEqual(decode(hex(fullOpenHex)).message, fullOpen);
  });

  test('OPEN from a 4-octet AS puts AS_TRANS in My Autonomous System (RFC 6793 §4.1)', () => {
    const open: OpenMessage = { type: 'open', version: 4, asn: 4200000000, holdTimeSeconds: 0, routerId: 1, capabilities: [{ code: 'four-octet-asn', asn: 4200000000 }] };
    const bytes = `${MARKER} 0025 01 04 5ba0 0000 00000001 08 02 06 41 04 fa56ea00`;
    assert.equal(toHex(encodeMessage(open, ctx4)), toHex(hex(bytes)));
    assert.equal(decode(hex(bytes)).message.type, 'open');
    assert.deepEqual(decode(hex(bytes)).message, open);
  });

  const v4Update: UpdateMessage = {
    type: 'update',
    withdrawn: [net('10.1.0.0/16')],
    attributes: {
      origin: 'igp',
      asPath: [{ type: 'sequence', asns: [65001, 65002] }],
      nextHop: parseIp('192.0.2.1'),
      med: 100,
      localPref: 200,
      communities: [65001 * 65536 + 100],
    },
    nlri: [net('10.2.0.0/16'), net('192.0.2.0/24')],
  };
  // RFC 4271 §4.3: withdrawn 10.1/16, ORIGIN, AS_PATH (4-octet), NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES.
  const v4UpdateHex = `${MARKER} 004e 02
    0003 10 0a01
    002d
      40 01 01 00
      40 02 0a 02 02 0000fde9 0000fdea
      40 03 04 c0000201
      80 04 04 00000064
      40 05 04 000000c8
      c0 08 04 fde90064
    10 0a02 18 c00002`;

  test('UPDATE with IPv4 NLRI and the common attributes', () => {
    assert.equal(toHex(encodeMessage(v4Update, ctx4)), toHex(hex(v4UpdateHex)));
    assert.deepEqual(decode(hex(v4UpdateHex)).message, v4Update);
  });

  test('UPDATE with MP_REACH_NLRI for IPv6, global and link-local next hop (RFC 4760 §3, RFC 2545 §3)', () => {
    const update: UpdateMessage = {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 'igp', asPath: [], nextHop: parseIp('2001:db8::1'), linkLocalNextHop: parseIp('fe80::1') },
      nlri: [],
      mpReach: { family: 'ipv6-unicast', nlri: [net('2001:db8::/32')] },
    };
    const bytes = `${MARKER} 004b 02 0000 0034
      80 0e 2a 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00 20 20010db8
      40 01 01 00
      40 02 00`;
    assert.equal(toHex(encodeMessage(update, ctx4)), toHex(hex(bytes)));
    assert.deepEqual(decode(hex(bytes)).message, update);
  });

  test('NOTIFICATION Cease / Administrative Shutdown (RFC 4486)', () => {
    const bytes = `${MARKER} 0015 03 06 02`;
    const message: BgpMessage = { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) };
    assert.equal(toHex(encodeMessage(message, ctx4)), toHex(hex(bytes)));
    assert.deepEqual(decode(hex(bytes)).message, message);
  });

  test('ROUTE-REFRESH Beginning of Route Refresh for IPv6 (RFC 7313 §3.2)', () => {
    const bytes = `${MARKER} 0017 05 0002 01 01`;
    const message: BgpMessage = { type: 'route-refresh', family: 'ipv6-unicast', subtype: 1 };
    assert.equal(toHex(encodeMessage(message, ctx4)), toHex(hex(bytes)));
    assert.deepEqual(decode(hex(bytes)).message, message);
  });

  test('End-of-RIB markers (RFC 4724 §2)', () => {
    assert.equal(toHex(encodeMessage(endOfRib('ipv4-unicast'), ctx4)), `${MARKER}0017020000` + '0000');
    const v6 = `${MARKER} 001d 02 0000 0006 80 0f 03 0002 01`;
    assert.equal(toHex(encodeMessage(endOfRib('ipv6-unicast'), ctx4)), toHex(hex(v6)));
    const decoded = decode(hex(v6)).message;
    assert.equal(decoded.type, 'update');
    if (decoded.type === 'update') assert.equal(isEndOfRib(decoded), 'ipv6-unicast');
    assert.equal(isEndOfRib(endOfRib('ipv4-unicast')), 'ipv4-unicast');
    assert.equal(isEndOfRib(v4Update), undefined);
    assert.equal(isEndOfRib({ type: 'update', withdrawn: [], nlri: [], mpUnreach: { family: 'ipv6-unicast', withdrawn: [net('2001:db8::/32')] } }), undefined);
  });
});

describe('round trips', () => {
  test('prefix octets at every IPv4 length: host bits are cleared both ways', () => {
    // Each expected encoding is worked out by hand from RFC 4271 §4.3 (Length, then the
    // fewest octets holding the prefix's bits), not from the encoder.
    const cases: [string, number, number[]][] = [
      ['0.0.0.0', 0, [0]],
      ['255.255.255.255', 1, [1, 0x80]],
      ['10.255.255.255', 9, [9, 10, 0x80]],
      ['192.168.1.255', 23, [23, 192, 168, 0]],
      ['172.16.77.129', 25, [25, 172, 16, 77, 0x80]],
      ['203.0.113.7', 31, [31, 203, 0, 113, 6]],
      ['203.0.113.7', 32, [32, 203, 0, 113, 7]],
    ];
    for (const [address, prefixLength, octets] of cases) {
      const writer = new Writer();
      writePrefixes(writer, [{ family: 4, value: parseIp(address).value, prefixLength }], 4, 'NLRI');
      const bytes = writer.finish();
      assert.deepEqual([...bytes], octets, `${address}/${prefixLength}`);
      const [decoded] = decodePrefixes(bytes, 4, (why) => new Error(why));
      assert.equal(decoded?.prefixLength, prefixLength);
      assert.deepEqual([...bytes.subarray(1)], octets.slice(1));
      const network = octets.slice(1).concat([0, 0, 0, 0]).slice(0, 4).join('.');
      assert.equal(decoded?.value, parseIp(network).value, `${address}/${prefixLength} decodes to ${network}`);
    }
  });

  test('every capability alone and together', () => {
    for (const capability of fullOpen.capabilities) {
      roundTrip({ ...fullOpen, capabilities: capability.code === 'four-octet-asn' ? [capability] : [capability, { code: 'four-octet-asn', asn: 65001 }] });
    }
    roundTrip(fullOpen);
    roundTrip({ ...fullOpen, asn: 100, capabilities: [] });
    roundTrip({ ...fullOpen, capabilities: [{ code: 'graceful-restart', restarting: false, restartTimeSeconds: 4095, families: [] }] , asn: 100 });
  });

  test('capabilities spread over several optional parameters are collected', () => {
    const bytes = hex(`${MARKER} 0029 01 04 fde9 005a 0a000001 0c 02 02 02 00 02 06 41 04 0000fde9`);
    assert.deepEqual(decode(bytes).message, { ...fullOpen, capabilities: [{ code: 'route-refresh' }, { code: 'four-octet-asn', asn: 65001 }] });
    const many = Array.from({ length: 30 }, (_, i) => ({ code: 'unknown' as const, type: 200 + i, value: new Uint8Array(8) }));
    assert.throws(() => encodeMessage({ ...fullOpen, asn: 100, capabilities: many }, ctx4), BgpEncodeError);
  });

  test('every path attribute', () => {
    const attributes: PathAttributes = {
      origin: 'egp',
      asPath: [
        { type: 'confed-sequence', asns: [64512] },
        { type: 'confed-set', asns: [64513, 64514] },
        { type: 'sequence', asns: [65001, 4200000000] },
        { type: 'set', asns: [1, 2, 3] },
      ],
      nextHop: parseIp('198.51.100.1'),
      med: 0xffffffff,
      localPref: 0,
      atomicAggregate: true,
      aggregator: { asn: 4200000001, address: parseIp('198.51.100.2') },
      communities: [1, 0xffffff01],
      originatorId: routerId('192.0.2.9'),
      clusterList: [1, 2, 3],
      unknown: [{ flags: 0xe0, typeCode: 32, value: hex('0000fde9 00000001 00000002') }],
    };
    for (const ctx of [ctx4, ctx2]) {
      roundTrip({ type: 'update', withdrawn: [], attributes, nlri: [net('203.0.113.0/24')] }, ctx);
      for (const origin of ['igp', 'egp', 'incomplete'] as const) roundTrip({ type: 'update', withdrawn: [], attributes: { ...attributes, origin }, nlri: [net('0.0.0.0/0')] }, ctx);
    }
  });

  test('MP_REACH and MP_UNREACH for both families, IPv6 with a 16-byte next hop', () => {
    roundTrip({
      type: 'update',
      withdrawn: [],
      attributes: { origin: 'igp', asPath: [{ type: 'sequence', asns: [65001] }], nextHop: parseIp('2001:db8::1') },
      nlri: [],
      mpReach: { family: 'ipv6-unicast', nlri: [net('2001:db8:1::/48'), net('::/0'), net('2001:db8::1/128')] },
      mpUnreach: { family: 'ipv6-unicast', withdrawn: [net('2001:db8:2::/48')] },
    });
    roundTrip({
      type: 'update',
      withdrawn: [],
      attributes: { origin: 'igp', asPath: [], nextHop: parseIp('192.0.2.1') },
      nlri: [net('10.0.0.0/8')],
      mpReach: { family: 'ipv4-unicast', nlri: [net('10.1.0.0/16')] },
      mpUnreach: { family: 'ipv4-unicast', withdrawn: [net('10.2.0.0/16')] },
    });
    roundTrip({ type: 'update', withdrawn: [net('10.9.0.0/16')], nlri: [], mpUnreach: { family: 'ipv6-unicast', withdrawn: [net('2001:db8::/32')] } });
  });

  test('unknown optional transitive attributes are re-sent with the Partial bit', () => {
    const update: UpdateMessage = {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 'igp', asPath: [], nextHop: parseIp('192.0.2.1'), unknown: [{ flags: 0xc0, typeCode: 99, value: hex('aabb') }] },
      nlri: [net('10.0.0.0/8')],
    };
    const bytes = encodeMessage(update, ctx4);
    assert.ok(toHex(bytes).includes('e06302aabb'), 'flags 0xe0 = optional, transitive, partial');
    const again = decode(bytes).message;
    assert.equal(again.type, 'update');
    if (again.type === 'update') assert.deepEqual(again.attributes?.unknown, [{ flags: 0xe0, typeCode: 99, value: hex('aabb') }]);
  });

  test('long attribute values use the Extended Length bit', () => {
    const communities = Array.from({ length: 100 }, (_, i) => i);
    const update: UpdateMessage = { type: 'update', withdrawn: [], attributes: { origin: 'igp', asPath: [], nextHop: parseIp('192.0.2.1'), communities }, nlri: [net('10.0.0.0/8')] };
    assert.ok(toHex(encodeMessage(update, ctx4)).includes('d0080190'), 'flags 0xd0, length 400');
    roundTrip(update);
  });

  test('NOTIFICATION with data, ROUTE-REFRESH subtypes', () => {
    roundTrip({ type: 'notification', code: ERROR_CODE.UPDATE_MESSAGE, subcode: 5, data: hex('40 01 02 0000') });
    for (const subtype of [0, 1, 2]) for (const family of ['ipv4-unicast', 'ipv6-unicast'] as const) roundTrip({ type: 'route-refresh', family, subtype });
  });

  test('host bits are cleared and prefixes of every length survive', () => {
    for (let length = 0; length <= 32; length++) roundTrip({ type: 'update', withdrawn: [{ family: 4, value: 0n, prefixLength: length }], nlri: [] });
    const update: UpdateMessage = { type: 'update', withdrawn: [{ family: 4, value: BigInt(0x0a0102ff), prefixLength: 25 }], nlri: [] };
    const decoded = decode(encodeMessage(update, ctx4)).message;
    if (decoded.type === 'update') assert.deepEqual(decoded.withdrawn, [net('10.1.2.128/25')]);
  });
});

describe('4-octet AS numbers with a 2-octet peer (RFC 6793)', () => {
  const base = { origin: 'igp' as const, nextHop: parseIp('192.0.2.1') };

  test('encoding puts AS_TRANS in AS_PATH and the real path in AS4_PATH', () => {
    const update: UpdateMessage = { type: 'update', withdrawn: [], attributes: { ...base, asPath: [{ type: 'sequence', asns: [65001, 4200000000] }] }, nlri: [net('10.0.0.0/8')] };
    const expected = `${MARKER} 003a 02 0000 0021
      40 01 01 00
      40 02 06 02 02 fde9 5ba0
      40 03 04 c0000201
      c0 11 0a 02 02 0000fde9 fa56ea00
      08 0a`;
    assert.equal(toHex(encodeMessage(update, ctx2)), toHex(hex(expected)));
    assert.deepEqual(decode(hex(expected), ctx2).message, update);
  });

  const update2 = (asPath: string, extra = ''): Uint8Array => {
    const attributes = hex(`40 01 01 00 ${asPath} 40 03 04 c0000201 ${extra}`);
    const body = Buffer.concat([hex('0000'), Buffer.from([attributes.length >> 8, attributes.length & 0xff]), attributes, hex('08 0a')]);
    const length = 19 + body.length;
    return Uint8Array.from(Buffer.concat([hex(MARKER), Buffer.from([length >> 8, length & 0xff, 2]), body]));
  };
  const pathOf = (decoded: DecodedMessage): unknown => (decoded.message.type === 'update' ? decoded.message.attributes?.asPath : undefined);

  test('AS4_PATH fills in the ASNs an OLD speaker could not carry, after its own prepends', () => {
    // AS_PATH: 65010 (an OLD speaker's prepend) 65001 AS_TRANS; AS4_PATH: 65001 4200000000
    const decoded = decode(update2('40 02 08 02 03 fdf2 fde9 5ba0', 'c0 11 0a 02 02 0000fde9 fa56ea00'), ctx2);
    assert.deepEqual(pathOf(decoded), [
      { type: 'sequence', asns: [65010] },
      { type: 'sequence', asns: [65001, 4200000000] },
    ]);
  });

  test('an AS4_PATH longer than AS_PATH is ignored', () => {
    const decoded = decode(update2('40 02 04 02 01 5ba0', 'c0 11 0a 02 02 0000fde9 fa56ea00'), ctx2);
    assert.deepEqual(pathOf(decoded), [{ type: 'sequence', asns: [AS_TRANS] }]);
  });

  test('an AGGREGATOR that is not AS_TRANS makes AS4_PATH and AS4_AGGREGATOR ignored', () => {
    const decoded = decode(update2('40 02 04 02 01 5ba0', 'c0 07 06 fde9 c0000202 c0 11 06 02 01 fa56ea00 c0 12 08 fa56ea01 c0000203'), ctx2);
    assert.deepEqual(pathOf(decoded), [{ type: 'sequence', asns: [AS_TRANS] }]);
    if (decoded.message.type === 'update') assert.deepEqual(decoded.message.attributes?.aggregator, { asn: 65001, address: parseIp('192.0.2.2') });
  });

  test('AGGREGATOR with AS_TRANS takes AS4_AGGREGATOR', () => {
    const decoded = decode(update2('40 02 04 02 01 5ba0', 'c0 07 06 5ba0 c0000202 c0 11 06 02 01 fa56ea00 c0 12 08 fa56ea01 c0000203'), ctx2);
    assert.deepEqual(pathOf(decoded), [{ type: 'sequence', asns: [4200000000] }]);
    if (decoded.message.type === 'update') assert.deepEqual(decoded.message.attributes?.aggregator, { asn: 4200000001, address: parseIp('192.0.2.3') });
  });

  test('a big aggregator to a 2-octet peer is AS_TRANS plus AS4_AGGREGATOR, and comes back', () => {
    const update: UpdateMessage = { type: 'update', withdrawn: [], attributes: { ...base, asPath: [{ type: 'sequence', asns: [65001] }], aggregator: { asn: 4200000001, address: parseIp('192.0.2.3') } }, nlri: [net('10.0.0.0/8')] };
    const bytes = toHex(encodeMessage(update, ctx2));
    assert.ok(bytes.includes('c007065ba0c0000203'));
    assert.ok(bytes.includes('c01208fa56ea01c0000203'));
    roundTrip(update, ctx2);
  });

  test('confederation segments in AS4_PATH are dropped; leading ones in AS_PATH kept', () => {
    const decoded = decode(update2('40 02 0a 03 01 fc00 02 02 fde9 5ba0', 'c0 11 10 03 01 0000fc00 02 02 0000fde9 fa56ea00'), ctx2);
    assert.deepEqual(pathOf(decoded), [
      { type: 'confed-sequence', asns: [64512] },
      { type: 'sequence', asns: [65001, 4200000000] },
    ]);
    roundTrip({ type: 'update', withdrawn: [], attributes: { ...base, asPath: pathOf(decoded) as PathAttributes['asPath'] }, nlri: [net('10.0.0.0/8')] }, ctx2);
  });

  test('merge counts an AS_SET as one (RFC 4271 §9.1.2.2)', () => {
    const merged = mergeAs4Path(
      [{ type: 'set', asns: [1, 2] }, { type: 'sequence', asns: [3, AS_TRANS] }],
      [{ type: 'sequence', asns: [3, 4200000000] }],
    );
    assert.deepEqual(merged, [{ type: 'set', asns: [1, 2] }, { type: 'sequence', asns: [3, 4200000000] }]);
  });

  test('AS4_PATH between two 4-octet speakers is discarded', () => {
    const attrs = hex('40 01 01 00 40 02 06 02 01 0000fde9 40 03 04 c0000201 c0 11 06 02 01 fa56ea00');
    const frame = Uint8Array.from(Buffer.concat([hex(MARKER), Buffer.from([0, 19 + 4 + attrs.length + 2, 2]), hex('0000'), Buffer.from([0, attrs.length]), attrs, hex('08 0a')]));
    const decoded = decode(frame, ctx4);
    assert.deepEqual(decoded.discarded, [17]);
    assert.deepEqual(pathOf(decoded), [{ type: 'sequence', asns: [65001] }]);
  });
});

describe('decode reactions', () => {
  test('a bad version answers with version 4 as data (RFC 4271 §6.2)', () => {
    const err = rejects(hex(`${MARKER} 001d 01 03 fde9 005a 0a000001 00`), ERROR_CODE.OPEN_MESSAGE, 1);
    assert.equal(toHex(err.data), '0004');
  });

  test('a bad header Length carries the Length as data', () => {
    const err = rejects(hex(`${MARKER} 0012 04`), ERROR_CODE.MESSAGE_HEADER, HEADER_SUBCODE.BAD_MESSAGE_LENGTH);
    assert.equal(toHex(err.data), '0012');
    const type = rejects(hex(`${MARKER} 0013 09`), ERROR_CODE.MESSAGE_HEADER, HEADER_SUBCODE.BAD_MESSAGE_TYPE);
    assert.equal(toHex(type.data), '09');
  });

  test('an unrecognized well-known attribute carries the attribute as data', () => {
    const err = rejects(hex(`${MARKER} 001b 02 0000 0004 40 63 01 00`), ERROR_CODE.UPDATE_MESSAGE, 2);
    assert.equal(toHex(err.data), '40630100');
  });

  test('treat-as-withdraw keeps the prefixes to withdraw', () => {
    // ORIGIN with value 7, then NLRI 10/8 and an MP_REACH IPv6 prefix
    const bytes = hex(`${MARKER} 0044 02 0000 002b
      80 0e 1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8
      40 01 01 07 40 02 00 40 03 04 c0000201
      08 0a`);
    const decoded = decode(bytes);
    assert.equal(decoded.treatAsWithdraw, true);
    assert.equal(decoded.message.type, 'update');
    if (decoded.message.type !== 'update') return;
    assert.equal(decoded.message.attributes, undefined);
    assert.deepEqual(decoded.message.nlri, [net('10.0.0.0/8')]);
    assert.deepEqual(decoded.message.mpReach, { family: 'ipv6-unicast', nlri: [net('2001:db8::/32')] });
  });
});

describe('what the RFCs say to ignore', () => {
  const mpReachV6 = '80 0e 1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8';

  test('NEXT_HOP is ignored when the only NLRI is in MP_REACH_NLRI (RFC 4760 §3)', () => {
    const decoded = decode(hex(`${MARKER} 0042 02 0000 002b ${mpReachV6} 40 01 01 00 40 02 00 40 03 04 c0000201`));
    assert.equal(decoded.treatAsWithdraw, undefined);
    assert.ok(decoded.message.type === 'update' && decoded.message.attributes);
    assert.deepEqual(decoded.message.attributes.nextHop, parseIp('2001:db8::1'));
  });

  test('IPv4 NLRI beside an IPv6 MP_REACH cannot keep both next hops: treat-as-withdraw', () => {
    const decoded = decode(hex(`${MARKER} 0044 02 0000 002b ${mpReachV6} 40 01 01 00 40 02 00 40 03 04 c0000201 08 0a`));
    assert.equal(decoded.treatAsWithdraw, true);
  });

  test('an MP attribute for a family we do not speak is discarded', () => {
    // AFI 1 SAFI 128 (VPNv4) MP_UNREACH alongside a normal IPv4 withdrawal
    const decoded = decode(hex(`${MARKER} 0021 02 0003 10 0a01 0007 80 0f 04 0001 80 00`));
    assert.deepEqual(decoded.discarded, [15]);
    assert.ok(decoded.message.type === 'update');
    assert.deepEqual(decoded.message.withdrawn, [net('10.1.0.0/16')]);
  });

  test('a ROUTE-REFRESH for another family or with a reserved subtype is marked ignore (RFC 2918 §4, RFC 7313 §5)', () => {
    assert.ok(decode(hex(`${MARKER} 0017 05 0001 00 80`)).ignore);
    assert.ok(decode(hex(`${MARKER} 0017 05 0001 03 01`)).ignore);
    assert.equal(decode(hex(`${MARKER} 0017 05 0001 02 01`)).ignore, undefined);
  });

  test('unknown optional non-transitive attributes are dropped (RFC 4271 §9)', () => {
    const decoded = decode(hex(`${MARKER} 002a 02 0000 0011 40 01 01 00 40 02 00 40 03 04 c0000201 80 63 00 08 0a`));
    assert.ok(decoded.message.type === 'update' && decoded.message.attributes);
    assert.equal(decoded.message.attributes.unknown, undefined);
  });

  test('graceful restart entries for unmodelled families are dropped, the rest kept', () => {
    const decoded = decode(hex(`${MARKER} 002b 01 04 fde9 005a 0a000001 0e 02 0c 40 0a 0078 0001 80 80 0001 01 80`));
    assert.deepEqual(decoded.message, {
      type: 'open', version: 4, asn: 65001, holdTimeSeconds: 90, routerId: routerId('10.0.0.1'),
      capabilities: [{ code: 'graceful-restart', restarting: false, restartTimeSeconds: 120, families: [{ family: 'ipv4-unicast', forwardingPreserved: true }] }],
    });
    assert.equal(decoded.problems?.length, 1);
  });
});

describe('MessageFramer', () => {
  const messages: BgpMessage[] = [fullOpen, { type: 'keepalive' }, endOfRib('ipv6-unicast'), { type: 'notification', code: 6, subcode: 4, data: hex('00') }];
  const stream = Buffer.concat(messages.map((m) => encodeMessage(m, ctx4)));

  test('splits a stream however it is chunked', () => {
    for (const size of [1, 2, 7, 19, 20, 64, stream.length]) {
      const framer = new MessageFramer();
      const frames: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += size) frames.push(...framer.push(stream.subarray(at, at + size)));
      assert.deepEqual(frames.map((f) => decode(f).message), messages, `chunk size ${size}`);
      assert.equal(framer.buffered, 0);
    }
  });

  test('rejects a bad marker or Length as soon as the header is complete', () => {
    const framer = new MessageFramer();
    assert.deepEqual(framer.push(hex('ff'.repeat(10))), []);
    assert.throws(() => framer.push(hex(`${'ff'.repeat(5)}fe 0100 02`)), (err: unknown) => err instanceof BgpMessageError && err.subcode === HEADER_SUBCODE.CONNECTION_NOT_SYNCHRONIZED);
    assert.throws(
      () => new MessageFramer().push(hex(`${MARKER} 1001 02`)),
      (err: unknown) => err instanceof BgpMessageError && err.subcode === HEADER_SUBCODE.BAD_MESSAGE_LENGTH && toHex(err.data) === '1001',
    );
  });

  test('frames 100k prefixes in 1-byte-to-64k chunks in linear time', () => {
    const prefixes = Array.from({ length: 100_000 }, (_, i) => ({ family: 4 as const, value: BigInt(0x0a000000 + i * 256), prefixLength: 24 }));
    const frames: Uint8Array[] = [];
    const attributes: PathAttributes = { origin: 'igp', asPath: [{ type: 'sequence', asns: [65001] }], nextHop: parseIp('192.0.2.1') };
    for (let i = 0; i < prefixes.length; i += 900) frames.push(encodeMessage({ type: 'update', withdrawn: [], attributes, nlri: prefixes.slice(i, i + 900) }, ctx4));
    const all = Buffer.concat(frames);
    const framer = new MessageFramer();
    const started = performance.now();
    let count = 0;
    for (let at = 0, size = 1; at < all.length; at += size, size = (size * 7 + 3) % 65536 || 1) count += framer.push(all.subarray(at, at + size)).length;
    const elapsedMs = performance.now() - started;
    assert.equal(count, frames.length);
    assert.ok(elapsedMs < 1000, `${elapsedMs} ms`);
  });
});

describe('the 4096-byte limit (RFC 4271 §4.1)', () => {
  const attributes: PathAttributes = { origin: 'igp', asPath: [{ type: 'sequence', asns: [65001] }], nextHop: parseIp('192.0.2.1') };
  const overhead = encodeMessage({ type: 'update', withdrawn: [], attributes, nlri: [] }, ctx4).length;

  test('a packer using encodedNlriLength fills an UPDATE to exactly 4096 bytes', () => {
    const nlri: IpNet[] = [];
    let length = overhead;
    for (let i = 0; ; i++) {
      const prefix: IpNet = { family: 4, value: BigInt(i) << 8n, prefixLength: i % 2 === 0 ? 24 : 30 };
      if (length + encodedNlriLength(prefix) > BGP_MAX_MESSAGE_LENGTH) break;
      nlri.push(prefix);
      length += encodedNlriLength(prefix);
    }
    if (length < BGP_MAX_MESSAGE_LENGTH) nlri.push({ family: 4, value: 0n, prefixLength: (BGP_MAX_MESSAGE_LENGTH - length - 1) * 8 });
    const bytes = encodeMessage({ type: 'update', withdrawn: [], attributes, nlri }, ctx4);
    assert.equal(bytes.length, BGP_MAX_MESSAGE_LENGTH);
    assert.equal(decode(bytes).message.type, 'update');
    assert.throws(() => encodeMessage({ type: 'update', withdrawn: [], attributes, nlri: [...nlri, net('10.0.0.0/8')] }, ctx4), BgpEncodeError);
  });

  test('encodedNlriLength is 1 + ⌈bits/8⌉', () => {
    assert.deepEqual([net('0.0.0.0/0'), net('10.0.0.0/8'), net('10.128.0.0/9'), net('2001:db8::/128')].map(encodedNlriLength), [1, 2, 3, 17]);
  });

  test('the encoder refuses what the wire cannot carry', () => {
    assert.throws(() => encodeMessage({ type: 'notification', code: 6, subcode: 0, data: new Uint8Array(4096 - 20) }, ctx4), BgpEncodeError);
    assert.throws(() => encodeMessage({ type: 'update', withdrawn: [], nlri: [net('10.0.0.0/8')] }, ctx4), BgpEncodeError);
    assert.throws(() => encodeMessage({ ...fullOpen, asn: 4200000000, capabilities: [] }, ctx4), BgpEncodeError);
    assert.throws(() => encodeMessage({ type: 'update', withdrawn: [], attributes: { ...attributes, nextHop: parseIp('2001:db8::1') }, nlri: [net('10.0.0.0/8')], mpReach: { family: 'ipv6-unicast', nlri: [net('2001:db8::/32')] } }, ctx4), BgpEncodeError);
    assert.throws(() => encodeMessage({ type: 'update', withdrawn: [], attributes: { ...attributes, med: -1 }, nlri: [net('10.0.0.0/8')] }, ctx4), BgpEncodeError);
  });
});
