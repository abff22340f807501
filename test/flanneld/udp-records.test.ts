import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordAssembler, recordLength } from '../../src/flanneld/backend/udp-records.js';

function ipv4(totalLength: number, fill: number): Buffer {
  const packet = Buffer.alloc(totalLength, fill);
  packet[0] = 0x45;
  packet.writeUInt16BE(totalLength, 2);
  return packet;
}

function ipv6(payloadLength: number, fill: number): Buffer {
  const packet = Buffer.alloc(40 + payloadLength, fill);
  packet[0] = 0x60;
  packet.writeUInt16BE(payloadLength, 4);
  return packet;
}

function offload(ip: Buffer): Buffer {
  const header = Buffer.alloc(10);
  header[0] = 1; // NEEDS_CSUM
  header[1] = 1; // GSO TCPv4
  return Buffer.concat([header, ip]);
}

function collect(): { records: Buffer[]; corrupt: number; sink: ConstructorParameters<typeof RecordAssembler>[0] } {
  const state = { records: [] as Buffer[], corrupt: 0 };
  return {
    ...state,
    get records() {
      return state.records;
    },
    get corrupt() {
      return state.corrupt;
    },
    sink: {
      record: (buffer, offset, length) => state.records.push(Buffer.from(buffer.subarray(offset, offset + length))),
      corrupt: () => state.corrupt++,
    },
  };
}

test('recordLength reads plain IPv4/IPv6 and offload records, asks for more bytes, rejects garbage', () => {
  assert.equal(recordLength(ipv4(60, 1), 0, 60), 60);
  assert.equal(recordLength(ipv6(100, 1), 0, 140), 140);
  assert.equal(recordLength(offload(ipv4(65000, 2)), 0, 65010), 65010);
  assert.equal(recordLength(ipv4(60, 1), 0, 3), 0, 'header incomplete');
  assert.equal(recordLength(Buffer.from([0x20, 0, 0, 0, 0, 0]), 0, 6), -1);
  const tiny = ipv4(60, 1);
  tiny.writeUInt16BE(10, 2);
  assert.equal(recordLength(tiny, 0, 60), -1, 'an IP length below a header is corrupt');
});

test('records split across reads, glued in one read, or both come out whole and in order', () => {
  const records = [offload(ipv4(64000, 3)), ipv4(52, 4), offload(ipv4(1400, 5)), ipv6(20, 6), ipv4(1500, 7)];
  const stream = Buffer.concat(records);
  for (const chunk of [1, 7, 1472, 4096, 70000, stream.length]) {
    const out = collect();
    const assembler = new RecordAssembler(out.sink);
    for (let offset = 0; offset < stream.length; offset += chunk) {
      const piece = Buffer.concat([Buffer.alloc(10), stream.subarray(offset, Math.min(offset + chunk, stream.length))]);
      assembler.push(piece, 10, piece.length); // offset 10: the loop reads behind a spare header
    }
    assert.equal(out.corrupt, 0, `chunk ${chunk}`);
    assert.deepEqual(out.records.map((r) => r.length), records.map((r) => r.length), `chunk ${chunk}`);
    out.records.forEach((r, i) => assert.ok(r.equals(records[i] as Buffer), `record ${i} intact with chunk ${chunk}`));
  }
});

test('a corrupt byte stream is dropped and the next read starts afresh', () => {
  const out = collect();
  const assembler = new RecordAssembler(out.sink);
  assembler.push(Buffer.from([0x20, 1, 2, 3, 4, 5, 6, 7]), 0, 8);
  assert.equal(out.corrupt, 1);
  const good = ipv4(40, 9);
  assembler.push(good, 0, good.length);
  assert.deepEqual(out.records.map((r) => r.length), [40]);
});
