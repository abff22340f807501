/**
 * The IPIP tunnel's packet functions without sockets: checksums against a plain RFC 1071
 * implementation, userspace TSO output checked field by field, and TSO → GRO giving back the
 * original super-packet.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { fold, onesSum, TcpCoalescer, TcpSegmenter, writeHostUnreachable, writeOuterHeader } from '../../src/bgp/ipip/packet.js';
import { VNET_HDR_LEN } from '../../src/lib/tun.js';

function naiveSum(bytes: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (bytes[i]! << 8) | (i + 1 < end ? bytes[i + 1]! : 0);
  return fold(sum);
}

function arena(size: number): { bytes: Buffer; words: Uint32Array } {
  const bytes = Buffer.from(new ArrayBuffer(size));
  return { bytes, words: new Uint32Array(bytes.buffer) };
}

/** A TCP/IPv4 super-packet at `ip`: 32-byte TCP header (timestamps), DF, `payload` bytes. */
function superPacket(bytes: Buffer, ip: number, payload: Buffer, flags = 0x18): number {
  const total = 20 + 32 + payload.length;
  bytes[ip] = 0x45;
  bytes[ip + 1] = 0x02; // ECT(0)
  bytes.writeUInt16BE(total, ip + 2);
  bytes.writeUInt16BE(0x1000, ip + 4);
  bytes.writeUInt16BE(0x4000, ip + 6);
  bytes[ip + 8] = 63;
  bytes[ip + 9] = 6;
  bytes.writeUInt32BE(0x0af40102, ip + 12);
  bytes.writeUInt32BE(0x0af40202, ip + 16);
  const tcp = ip + 20;
  bytes.writeUInt16BE(40000, tcp);
  bytes.writeUInt16BE(5201, tcp + 2);
  bytes.writeUInt32BE(0xfffff000, tcp + 4); // wraps during the packet
  bytes.writeUInt32BE(77, tcp + 8);
  bytes[tcp + 12] = 0x80;
  bytes[tcp + 13] = flags;
  bytes.writeUInt16BE(500, tcp + 14);
  bytes.set([1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6], tcp + 20);
  payload.copy(bytes, ip + 52);
  return ip + total;
}

describe('IPIP packet functions', () => {
  test('onesSum matches RFC 1071 at every alignment and length', () => {
    const { bytes, words } = arena(4096);
    randomBytes(4096).copy(bytes);
    for (let start = 0; start < 8; start++) {
      for (const length of [0, 1, 2, 3, 15, 16, 17, 64, 1427, 1428, 2001]) {
        assert.equal(fold(onesSum(bytes, words, start, start + length)), naiveSum(bytes, start, start + length), `start ${start} length ${length}`);
      }
    }
  });

  test('the outer header copies TTL, DF and ECN the way tunl0 does', () => {
    const { bytes } = arena(256);
    bytes[21] = 0xb3; // DSCP 44, CE
    bytes.writeUInt16BE(0x4000, 26);
    bytes[28] = 17;
    writeOuterHeader(bytes, 0, 20, 120, 9, 0xc6120000 + 11, 0xc6120000 + 12);
    assert.deepEqual([bytes[0], bytes[1], bytes.readUInt16BE(2), bytes.readUInt16BE(4), bytes.readUInt16BE(6), bytes[8], bytes[9]], [0x45, 0x02, 120, 9, 0x4000, 17, 4]);
    assert.equal(bytes.readUInt32BE(12), 0xc612000b);
    assert.equal(bytes.readUInt32BE(16), 0xc612000c);
  });

  test('TSO: segments carry consecutive sequence numbers and IDs, PSH only last, valid checksums; GRO glues them back', () => {
    const mss = 1428;
    const payload = randomBytes(mss * 10 + 333);
    const { bytes, words } = arena(1 << 18);
    const ip = 12;
    const end = superPacket(bytes, ip, payload);
    const segmenter = new TcpSegmenter(bytes, words, 70_016, 144, 1024);
    const count = segmenter.segment(ip, end, mss, 41, 0xc612000b, 0xc612000c);
    assert.equal(count, 11);

    // Lay the segments out as the receiver's slots would hold them: outer + inner packet.
    const slots = 140_000;
    const slotSize = 2048;
    const received: { inner: number; length: number }[] = [];
    for (let i = 0; i < count; i++) {
      const header = segmenter.headerStart(i);
      const headerLength = 20 + segmenter.layout.headerLength;
      const slot = slots + i * slotSize;
      bytes.copyWithin(slot, header, header + headerLength);
      bytes.copyWithin(slot + headerLength, segmenter.payloadStart(i), segmenter.payloadStart(i) + segmenter.payloadLength(i));
      const inner = slot + 20;
      const length = bytes.readUInt16BE(inner + 2);
      assert.equal(bytes[slot + 9], 4);
      assert.equal(bytes[slot + 8], 63, 'outer TTL = inner TTL');
      assert.equal(bytes.readUInt16BE(slot + 6), 0x4000, 'outer DF = inner DF');
      assert.equal(bytes.readUInt16BE(slot + 4), 42 + i, 'outer IDs follow the counter');
      assert.equal(length, 52 + (i < count - 1 ? mss : 333));
      assert.equal(bytes.readUInt16BE(inner + 4), 0x1000 + i, 'inner IP ID increments');
      assert.equal(naiveSum(bytes, inner, inner + 20), 0xffff, 'inner IP checksum');
      assert.equal(bytes.readUInt32BE(inner + 24), (0xfffff000 + i * mss) >>> 0, 'sequence number');
      assert.equal(bytes[inner + 33], i < count - 1 ? 0x10 : 0x18, 'PSH only on the last segment');
      const pseudo = fold(bytes.readUInt16BE(inner + 12) + bytes.readUInt16BE(inner + 14) + bytes.readUInt16BE(inner + 16) + bytes.readUInt16BE(inner + 18) + 6 + length - 20);
      assert.equal(fold(pseudo + naiveSum(bytes, inner + 20, inner + length)), 0xffff, `TCP checksum of segment ${i}`);
      received.push({ inner, length });
    }

    const emitted: { offset: number; length: number }[] = [];
    const coalescer = new TcpCoalescer(bytes, words, 200_000, (offset, length) => emitted.push({ offset, length }));
    for (const { inner, length } of received) coalescer.offer(inner, length, 0xc612000b);
    coalescer.flush();
    assert.equal(emitted.length, 1, 'one record');
    const record = emitted[0]!;
    assert.equal(record.offset, 200_000);
    const vnet = bytes.subarray(record.offset, record.offset + VNET_HDR_LEN);
    assert.deepEqual([vnet[0], vnet[1], vnet.readUInt16LE(2), vnet.readUInt16LE(4), vnet.readUInt16LE(6), vnet.readUInt16LE(8)], [1, 1, 52, mss, 20, 16]);
    const merged = record.offset + VNET_HDR_LEN;
    assert.equal(record.length, VNET_HDR_LEN + end - ip);
    assert.equal(bytes.compare(bytes, ip + 20, ip + 36, merged + 20, merged + 36), 0, 'TCP header as in the original (ports, seq, ack, flags, window)');
    assert.equal(bytes.compare(bytes, ip + 52, end, merged + 52, merged + 52 + payload.length), 0, 'payload as in the original');
    assert.equal(naiveSum(bytes, merged, merged + 20), 0xffff, 'merged IP checksum');
  });

  test('GRO refuses a segment with a bad checksum or out of order', () => {
    const mss = 1000;
    const { bytes, words } = arena(1 << 18);
    const end = superPacket(bytes, 12, randomBytes(mss * 4), 0x10);
    const segmenter = new TcpSegmenter(bytes, words, 70_016, 144, 1024);
    const count = segmenter.segment(12, end, mss, 0, 1, 2);
    const inners: number[] = [];
    for (let i = 0; i < count; i++) {
      const slot = 140_000 + i * 2048;
      bytes.copyWithin(slot, segmenter.headerStart(i), segmenter.headerStart(i) + 72);
      bytes.copyWithin(slot + 72, segmenter.payloadStart(i), segmenter.payloadStart(i) + mss);
      inners.push(slot + 20);
    }
    const [a, b, c, d] = inners as [number, number, number, number];
    bytes[b + 100] = (bytes[b + 100] ?? 0) ^ 0xff; // corrupt segment 2
    const emitted: number[] = [];
    const coalescer = new TcpCoalescer(bytes, words, 200_000, (_offset, length) => emitted.push(length - VNET_HDR_LEN));
    for (const inner of [a, b, d, c]) coalescer.offer(inner, 52 + mss, 1);
    coalescer.flush();
    assert.deepEqual(emitted, [52 + mss, 52 + mss, 52 + mss, 52 + mss], 'nothing glued: corrupt, then a gap, then a step back');
  });

  test('ICMP host unreachable quotes the header and 8 bytes, checksums valid', () => {
    const { bytes } = arena(512);
    const end = superPacket(bytes, 100, randomBytes(64));
    const length = writeHostUnreachable(bytes, 300, 100, end - 100, 0x0af40100);
    assert.equal(length, 20 + 8 + 28);
    assert.deepEqual([bytes[300 + 9], bytes[320], bytes[321]], [1, 3, 1]);
    assert.equal(bytes.readUInt32BE(312), 0x0af40100);
    assert.equal(bytes.readUInt32BE(316), 0x0af40102, 'back to the sender');
    assert.equal(naiveSum(bytes, 300, 320), 0xffff);
    assert.equal(naiveSum(bytes, 320, 300 + length), 0xffff);
    assert.equal(bytes.compare(bytes, 100, 128, 328, 356), 0);
  });
});
