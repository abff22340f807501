import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  completeChecksum,
  frameRecord,
  framedLength,
  RecordReassembler,
  SEGMENT_HEADER_LEN,
  unitLength,
} from '../../src/flanneld/backend/udp-records.js';

function ipv4(totalLength: number, fill: number): Buffer {
  const packet = Buffer.alloc(totalLength, fill);
  packet[0] = 0x45;
  packet.writeUInt16BE(totalLength, 2);
  return packet;
}

/** A record as an offloading TUN hands it over: virtio header + IP packet. */
function record(ipLength: number, fill: number): Buffer {
  const header = Buffer.from([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ipv4(ipLength, fill)]);
}

/** Cuts a framed buffer into the datagrams UDP_SEGMENT would send. */
function datagrams(framed: Buffer, segmentSize: number): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < framed.length; offset += segmentSize) out.push(framed.subarray(offset, Math.min(offset + segmentSize, framed.length)));
  return out;
}

function frame(data: Buffer, seq: number, segmentSize = 1472): Buffer {
  const into = Buffer.alloc(framedLength(data.length, segmentSize));
  assert.equal(frameRecord(data, data.length, seq, segmentSize, into), into.length);
  return into;
}

test('a record framed into segments is cut by UDP_SEGMENT exactly at unit boundaries and reassembles', () => {
  const data = record(64000, 7);
  const pieces = datagrams(frame(data, 1), 1472);
  assert.equal(pieces.length, Math.ceil(data.length / (1472 - SEGMENT_HEADER_LEN)));
  const reassembler = new RecordReassembler();
  let complete = 0;
  for (const piece of pieces) {
    assert.equal(unitLength(piece, 0, piece.length), piece.length, 'each datagram is one whole unit');
    complete = reassembler.add(piece, 0, () => assert.fail('nothing is dropped'));
  }
  assert.equal(complete, data.length);
  assert.ok(reassembler.record.subarray(0, complete).equals(data));
});

test('units glued by GRO are walked by their own lengths, plain packets included', () => {
  const glued = Buffer.concat([...datagrams(frame(record(3000, 1), 9), 1472), ipv4(60, 2), ipv4(1472, 3)]);
  const lengths: number[] = [];
  for (let offset = 0; offset < glued.length; ) {
    const length = unitLength(glued, offset, glued.length);
    assert.ok(length > 0);
    lengths.push(length);
    offset += length;
  }
  assert.deepEqual(lengths.slice(-2), [60, 1472]);
  assert.equal(lengths.length, 3 + 2);
});

test('a record that lost a segment is dropped, never completed with the next record’s bytes', () => {
  const first = datagrams(frame(record(4000, 1), 1), 1472);
  const second = record(4000, 2);
  const reassembler = new RecordReassembler();
  let dropped = 0;
  const feed = (piece: Buffer) => reassembler.add(piece, 0, () => dropped++);
  feed(first[0] as Buffer);
  feed(first[2] as Buffer); // first[1] is lost
  let complete = 0;
  for (const piece of datagrams(frame(second, 2), 1472)) complete = feed(piece);
  assert.equal(dropped, 1);
  assert.equal(complete, second.length);
  assert.ok(reassembler.record.subarray(0, complete).equals(second), 'the second record is intact');
});

test('unitLength rejects garbage and units running past the read', () => {
  assert.equal(unitLength(Buffer.from([0x20, 0, 0, 0, 0, 0, 0, 0]), 0, 8), -1);
  assert.equal(unitLength(ipv4(100, 1), 0, 50), -1);
  const bad = Buffer.alloc(SEGMENT_HEADER_LEN + 10);
  bad[0] = 0x0f;
  bad.writeUInt16BE(60000, 2); // claims far more payload than the read holds
  assert.equal(unitLength(bad, 0, bad.length), -1);
});

test('completeChecksum finishes a partial TCP checksum the way hardware would', () => {
  // IPv4 + TCP with payload; checksum field pre-filled with the pseudo-header sum.
  const packet = Buffer.alloc(20 + 20 + 6);
  packet[0] = 0x45;
  packet.writeUInt16BE(packet.length, 2);
  packet[9] = 6;
  packet.writeUInt32BE(0x0a000001, 12);
  packet.writeUInt32BE(0x0a000002, 16);
  packet.write('pontoo', 40);
  let pseudo = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 26;
  while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
  packet.writeUInt16BE(pseudo, 20 + 16);
  completeChecksum(packet, 0, packet.length, 20, 16);
  // Verify: the one's complement sum over pseudo header + segment is 0xffff.
  let sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 26;
  for (let i = 20; i < packet.length; i += 2) sum += packet.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff);
});
