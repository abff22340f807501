/**
 * Pure tests of the netlink wire codec: exact bytes for every encoder, round trips through the
 * decoders, and a corpus of malformed input (test/fixtures/netlink-malformed.json) that must
 * end in NetlinkDecodeError rather than a RangeError or an endless loop.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  align4,
  type Attr,
  attrsLength,
  cstring,
  decodeAttrs,
  decodeError,
  decodeMessages,
  encodeAttrs,
  encodeMessage,
  NLA_F_NESTED,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MSG,
  NetlinkDecodeError,
  readCString,
  readU32,
  readU8,
  u16,
  u16be,
  u32,
  u8,
} from '../../src/lib/netlink/codec.js';
import { rtnlDecoders } from '../../src/lib/netlink/rtnl.js';

/** `hex('0800 0100')` → bytes; spaces are for reading only. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

// linux/rtnetlink.h, linux/if_link.h: only what the examples below need.
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const NLMSGERR_ATTR_OFFS = 2;
const EEXIST = 17;
const EINVAL = 22;

describe('attributes', () => {
  test('align4 rounds up to the next multiple of 4', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9].map(align4), [0, 4, 4, 4, 4, 8, 8, 12]);
  });

  test('scalar helpers write little-endian (u16be big-endian) bytes', () => {
    assert.deepEqual(u8(0x1ff), hex('ff'));
    assert.deepEqual(u16(0x1234), hex('3412'));
    assert.deepEqual(u32(0x12345678), hex('78563412'));
    assert.deepEqual(u32(-1), hex('ffffffff'));
    assert.deepEqual(u16be(0x1234), hex('1234'));
    assert.deepEqual(cstring('eth0'), hex('6574683000'));
  });

  test('an attribute whose value is not a multiple of 4 is padded with zeros, nla_len excludes the padding', () => {
    const bytes = encodeAttrs([{ type: IFLA_IFNAME, value: cstring('eth0') }]);
    assert.deepEqual(bytes, hex('0900 0300 65746830 00 000000'));
  });

  test('consecutive attributes start 4-aligned', () => {
    const attrs: Attr[] = [
      { type: IFLA_IFNAME, value: cstring('ab') }, // 4 + 3 = 7 → 8
      { type: IFLA_MTU, value: u32(1500) }, // 8
      { type: 7, value: Buffer.alloc(0) }, // header only
    ];
    assert.equal(attrsLength(attrs), 20);
    assert.deepEqual(encodeAttrs(attrs), hex('0700 0300 616200 00  0800 0400 dc050000  0400 0700'));
  });

  test('a nested attribute carries NLA_F_NESTED only when asked, and its length covers the padded children', () => {
    const linkinfo = (nestedFlag: boolean): Attr => ({
      type: IFLA_LINKINFO,
      nestedFlag,
      value: [
        { type: IFLA_INFO_KIND, value: cstring('veth') }, // 9 → 12
        { type: IFLA_INFO_DATA, value: [{ type: 1, value: u16(0xbeef) }] }, // 4 + (6 → 8) = 12
      ],
    });
    const children = '0900 0100 76657468 00 000000  0c00 0200 0600 0100 efbe 0000';
    assert.deepEqual(encodeAttrs([linkinfo(true)]), hex(`1c00 1280 ${children}`));
    assert.deepEqual(encodeAttrs([linkinfo(false)]), hex(`1c00 1200 ${children}`));
    assert.equal(encodeAttrs([linkinfo(true)]).readUInt16LE(2), IFLA_LINKINFO | NLA_F_NESTED);
  });

  test('decodeAttrs round-trips values without their padding, nested ones included', () => {
    const encoded = encodeAttrs([
      { type: IFLA_IFNAME, value: cstring('veth0') },
      { type: IFLA_MTU, value: u32(9000) },
      {
        type: IFLA_LINKINFO,
        nestedFlag: true,
        value: [
          { type: IFLA_INFO_KIND, value: cstring('vxlan') },
          { type: IFLA_INFO_DATA, value: [{ type: 5, value: u8(7) }] },
        ],
      },
    ]);
    const attrs = decodeAttrs(encoded);
    assert.deepEqual([...attrs.keys()], [IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO], 'NLA_F_NESTED is masked off the type');
    assert.deepEqual(attrs.get(IFLA_IFNAME), cstring('veth0'));
    assert.equal(readCString(attrs.get(IFLA_IFNAME)), 'veth0');
    assert.equal(readU32(attrs.get(IFLA_MTU)), 9000);
    const linkinfo = decodeAttrs(attrs.get(IFLA_LINKINFO) ?? assert.fail('IFLA_LINKINFO missing'));
    assert.equal(readCString(linkinfo.get(IFLA_INFO_KIND)), 'vxlan');
    const data = decodeAttrs(linkinfo.get(IFLA_INFO_DATA) ?? assert.fail('IFLA_INFO_DATA missing'));
    assert.deepEqual(data.get(5), hex('07'));
    assert.equal(readU8(data.get(5)), 7);
  });

  test('decodeAttrs masks NLA_F_NET_BYTEORDER too and keeps the last of a repeated type', () => {
    const attrs = decodeAttrs(hex('0500 0140 aa000000  0500 0100 bb000000'));
    assert.deepEqual([...attrs.entries()], [[1, hex('bb')]]);
  });

  test('decodeAttrs accepts a last attribute without trailing padding and honours offset/end', () => {
    assert.deepEqual(decodeAttrs(hex('0500 0200 cc')).get(2), hex('cc'));
    const buf = hex('deadbeef  0800 0100 01020304  0800 0200 05060708');
    const window = decodeAttrs(buf, 4, 12);
    assert.deepEqual([...window.entries()], [[1, hex('01020304')]]);
  });

  test('readers return undefined for missing or short values', () => {
    assert.equal(readU32(undefined), undefined);
    assert.equal(readU32(hex('010203')), undefined);
    assert.equal(readU8(Buffer.alloc(0)), undefined);
    assert.equal(readCString(undefined), undefined);
    assert.equal(readCString(hex('6869')), 'hi', 'no NUL: the whole value');
  });
});

describe('messages', () => {
  test('encodeMessage writes header, padded family header and attributes', () => {
    const ifinfomsg = Buffer.alloc(16); // AF_UNSPEC, no index, no flags
    const flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    const bytes = encodeMessage(RTM_NEWLINK, flags, 7, ifinfomsg, [{ type: IFLA_IFNAME, value: cstring('eth0') }]);
    assert.deepEqual(
      bytes,
      hex(`2c000000 1000 0506 07000000 00000000  ${'00'.repeat(16)}  0900 0300 65746830 00 000000`),
    );
  });

  test('encodeMessage pads a family header that is not 4-aligned (rtgenmsg)', () => {
    const bytes = encodeMessage(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 0xfffffffe, Buffer.from([17]));
    assert.deepEqual(bytes, hex('14000000 1200 0103 feffffff 00000000  11000000'));
  });

  test('decodeMessages round-trips what encodeMessage wrote', () => {
    const head = hex('0a000000');
    const attrs: Attr[] = [{ type: 1, value: u32(42) }];
    const [message, ...rest] = decodeMessages(encodeMessage(RTM_NEWLINK, NLM_F_REQUEST, 99, head, attrs));
    assert.equal(rest.length, 0);
    assert.deepEqual(message, {
      type: RTM_NEWLINK,
      flags: NLM_F_REQUEST,
      seq: 99,
      pid: 0,
      payload: Buffer.concat([head, encodeAttrs(attrs)]),
    });
  });

  test('decodeMessages splits a multipart datagram, stepping over an unaligned nlmsg_len', () => {
    const datagram = hex(
      // nlmsg_len 18: a 2-byte payload padded to 20
      '12000000 1000 0200 05000000 39300000  abcd 0000' +
        // NLMSG_DONE with its 4-byte payload
        '14000000 0300 0200 05000000 39300000  00000000',
    );
    const messages = decodeMessages(datagram);
    assert.deepEqual(
      messages.map((m) => ({ ...m, payload: m.payload.toString('hex') })),
      [
        { type: RTM_NEWLINK, flags: NLM_F_MULTI, seq: 5, pid: 12345, payload: 'abcd' },
        { type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 5, pid: 12345, payload: '00000000' },
      ],
    );
  });

  test('decodeMessages of an empty datagram is an empty list', () => {
    assert.deepEqual(decodeMessages(Buffer.alloc(0)), []);
  });
});

describe('decodeError', () => {
  /** An NLMSG_ERROR message as the kernel builds it. */
  function errorMessage(flags: number, errno: number, echoed: Buffer, tlvs: Attr[] = []): Buffer {
    const head = Buffer.alloc(4 + echoed.length);
    head.writeInt32LE(-errno, 0);
    echoed.copy(head, 4);
    return encodeMessage(NLMSG_ERROR, flags, 1, head, tlvs);
  }
  const request = encodeMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1, Buffer.alloc(16), [
    { type: IFLA_IFNAME, value: cstring('eth0') },
  ]);
  const only = (datagram: Buffer) => {
    const [message, ...rest] = decodeMessages(datagram);
    assert.ok(message);
    assert.equal(rest.length, 0);
    return message;
  };

  test('an ACK is errno 0 without text', () => {
    // deepStrictEqual tells 0 from -0: negating a zero error field must still give +0.
    assert.deepEqual(decodeError(only(errorMessage(0, 0, request.subarray(0, 16)))), { errno: 0 });
  });

  test('a plain error gives the positive errno', () => {
    assert.deepEqual(decodeError(only(errorMessage(0, EEXIST, request))), { errno: EEXIST });
  });

  test('without NLM_F_ACK_TLVS trailing bytes are not read as TLVs', () => {
    const message = only(errorMessage(0, EINVAL, request.subarray(0, 16), [{ type: NLMSGERR_ATTR_MSG, value: cstring('ignored') }]));
    assert.deepEqual(decodeError(message), { errno: EINVAL });
  });

  test('extended ACK, capped: TLVs follow the echoed 16-byte header whatever its nlmsg_len says', () => {
    // The echoed header still says 44 bytes; only its 16-byte header was copied.
    assert.equal(request.readUInt32LE(0), 44);
    const message = only(
      errorMessage(NLM_F_ACK_TLVS | NLM_F_CAPPED, EINVAL, request.subarray(0, 16), [
        { type: NLMSGERR_ATTR_OFFS, value: u32(36) },
        { type: NLMSGERR_ATTR_MSG, value: cstring('Unknown device type') },
      ]),
    );
    assert.deepEqual(decodeError(message), { errno: EINVAL, text: 'Unknown device type' });
  });

  test('extended ACK, not capped: TLVs follow the whole echoed request', () => {
    const message = only(
      errorMessage(NLM_F_ACK_TLVS, EEXIST, request, [{ type: NLMSGERR_ATTR_MSG, value: cstring('File exists') }]),
    );
    assert.deepEqual(decodeError(message), { errno: EEXIST, text: 'File exists' });
  });

  test('extended ACK, not capped, with an echoed request of unaligned length', () => {
    // A request with nlmsg_len 18 is echoed as 18 bytes, padded to 20 before the TLVs.
    const odd = Buffer.concat([hex('12000000 1000 0500 01000000 00000000 ffff'), Buffer.alloc(2)]);
    const message = only(errorMessage(NLM_F_ACK_TLVS, EINVAL, odd, [{ type: NLMSGERR_ATTR_MSG, value: cstring('bad') }]));
    assert.equal(message.payload.length, 4 + 20 + 8);
    assert.deepEqual(decodeError(message), { errno: EINVAL, text: 'bad' });
  });

  test('extended ACK without a message attribute has no text', () => {
    const message = only(
      errorMessage(NLM_F_ACK_TLVS | NLM_F_CAPPED, EINVAL, request.subarray(0, 16), [{ type: NLMSGERR_ATTR_OFFS, value: u32(20) }]),
    );
    assert.deepEqual(decodeError(message), { errno: EINVAL });
  });
});

interface MalformedCase {
  decoder: 'decodeAttrs' | 'decodeMessages' | 'decodeError';
  hex: string;
  note: string;
}

describe('malformed input corpus', () => {
  const corpusUrl = new URL('../../../test/fixtures/netlink-malformed.json', import.meta.url);
  const corpus = JSON.parse(readFileSync(corpusUrl, 'utf8')) as { cases: MalformedCase[] };

  test('the corpus covers every decoder', () => {
    const decoders = new Set(corpus.cases.map((c) => c.decoder));
    assert.deepEqual([...decoders].sort(), ['decodeAttrs', 'decodeError', 'decodeMessages']);
  });

  for (const [index, entry] of corpus.cases.entries()) {
    test(`#${index} ${entry.decoder}: ${entry.note}`, () => {
      const bytes = hex(entry.hex);
      const run = (): unknown => {
        switch (entry.decoder) {
          case 'decodeAttrs':
            return decodeAttrs(bytes);
          case 'decodeMessages':
            return decodeMessages(bytes);
          case 'decodeError':
            return decodeMessages(bytes).map(decodeError);
        }
      };
      assert.throws(run, (err: unknown) => {
        assert.ok(err instanceof NetlinkDecodeError, `expected NetlinkDecodeError, got ${String(err)}`);
        assert.equal(err.name, 'NetlinkDecodeError');
        return true;
      });
    });
  }
});

describe('rtnetlink message decoders on malformed input', () => {
  const message = (payload: Buffer) => ({ type: 0, flags: 0, seq: 0, pid: 0, payload });
  const { decodeLink, decodeAddress, decodeRoute, decodeNeighbour } = rtnlDecoders;

  test('a payload shorter than the fixed header is a NetlinkDecodeError, not a RangeError', () => {
    for (const [decode, bytes] of [[decodeLink, 16], [decodeAddress, 8], [decodeRoute, 12], [decodeNeighbour, 12]] as const) {
      assert.throws(() => decode(message(Buffer.alloc(bytes - 1))), NetlinkDecodeError);
      assert.doesNotThrow(() => decode(message(Buffer.alloc(bytes))));
    }
  });

  test('an address attribute of the wrong length is refused', () => {
    // rtmsg (12 bytes, AF_INET) + RTA_GATEWAY (type 5) carrying 3 bytes.
    const route = Buffer.concat([hex('0200 0000 fe00 0001 00000000'), hex('0700 0500 0a0000 00')]);
    assert.throws(() => decodeRoute(message(route)), NetlinkDecodeError);
    const good = Buffer.concat([hex('0200 0000 fe00 0001 00000000'), hex('0800 0500 0a000001')]);
    assert.equal(decodeRoute(message(good)).gateway?.family, 4);
  });
});
