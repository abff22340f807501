/**
 * The SPDY/3.1 codec and server session without kubectl: frames round-trip, malformed input
 * fails typed, header blocks interoperate with a real zlib (Node's, seeded with the
 * dictionary, as Go's compress/zlib writes them), and a session over a socket pair answers
 * SYN_STREAM, carries data both ways, echoes PINGs and resets what the peer resets.
 */
import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { constants as zlibConstants, createDeflate, inflateSync } from 'node:zlib';
import {
  encodeData, encodeGoAway, encodePing, encodeRstStream, encodeSynReply, encodeSynStream, FLAG_FIN, FrameReader, FrameType, SpdyFrameError,
} from '../../src/lib/spdy/frames.js';
import { adler32, decodeHeaderBlock, encodeHeaderBlock, HeaderCompressor, HeaderDecompressor, SPDY_DICTIONARY, SpdyHeaderError } from '../../src/lib/spdy/headers.js';
import { SpdyServerSession, type SpdyStream } from '../../src/lib/spdy/session.js';

/** A zlib writer like Go's spdy Framer: best compression, the dictionary, a sync flush per block. */
function peerCompressor(): (block: Buffer) => Promise<Buffer> {
  const deflate = createDeflate({ dictionary: SPDY_DICTIONARY, level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => out.push(chunk));
  return async (block) => {
    deflate.write(block);
    await new Promise<void>((resolve) => deflate.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
    return Buffer.concat(out.splice(0));
  };
}

describe('SPDY/3 header blocks', () => {
  test('the dictionary is the spec\'s 1423 bytes', () => {
    assert.equal(SPDY_DICTIONARY.length, 1423);
    assert.equal(SPDY_DICTIONARY.subarray(0, 11).toString('latin1'), '\0\0\0\x07options');
    assert.ok(SPDY_DICTIONARY.toString('latin1').endsWith(',enq=0.'));
  });

  test('our blocks inflate with a standard zlib, each one on its own within one stream', () => {
    const compressor = new HeaderCompressor();
    const first = new Map([['streamtype', ['error']], ['port', ['8080']], ['requestid', ['0']]]);
    const second = new Map([['x', ['a', 'b']]]);
    const a = compressor.compress(encodeHeaderBlock(first));
    const b = compressor.compress(encodeHeaderBlock(second));
    // The stream header names the dictionary by its Adler-32.
    assert.equal(a.readUInt32BE(2), adler32(SPDY_DICTIONARY));
    const options = { dictionary: SPDY_DICTIONARY, finishFlush: zlibConstants.Z_SYNC_FLUSH };
    const firstOnly = inflateSync(a, options);
    assert.deepEqual(decodeHeaderBlock(firstOnly), first);
    const both = inflateSync(Buffer.concat([a, b]), options);
    assert.deepEqual(decodeHeaderBlock(both.subarray(firstOnly.length)), second);
    // Every block ends on the sync-flush marker, which Go's inflater needs between frames.
    assert.deepEqual([...b.subarray(-5)], [0, 0, 0, 0xff, 0xff]);
  });

  test('peer blocks compressed with the dictionary decode in order', async () => {
    const compress = peerCompressor();
    const decompressor = new HeaderDecompressor();
    try {
      for (let i = 0; i < 5; i++) {
        const headers = new Map([['streamtype', [i % 2 ? 'data' : 'error']], ['port', ['80']], ['requestid', [String(i)]]]);
        assert.deepEqual(decodeHeaderBlock(await decompressor.decompress(await compress(encodeHeaderBlock(headers)))), headers);
      }
    } finally {
      decompressor.close();
    }
  });

  test('garbage and truncated blocks fail with typed errors', async () => {
    const decompressor = new HeaderDecompressor();
    await assert.rejects(decompressor.decompress(Buffer.from('not zlib at all')), SpdyHeaderError);
    decompressor.close();
    assert.throws(() => decodeHeaderBlock(Buffer.from([0, 0, 0, 2, 0, 0, 0, 9, 0x61])), SpdyHeaderError);
  });
});

describe('SPDY/3 frames', () => {
  test('every frame we write reads back, split at any byte', () => {
    const wire = Buffer.concat([
      encodeSynStream(1, Buffer.from('hdr')),
      encodeSynReply(1, Buffer.from('rep'), FLAG_FIN),
      encodeData(1, Buffer.from('payload'), FLAG_FIN),
      encodeRstStream(3, 5),
      encodePing(7),
      encodeGoAway(9, 0),
    ]);
    for (const split of [1, 3, 8, 13, wire.length]) {
      const reader = new FrameReader();
      const frames = [...reader.push(wire.subarray(0, split)), ...reader.push(wire.subarray(split))];
      assert.deepEqual(frames.map((f) => f.kind), ['syn_stream', 'syn_reply', 'data', 'rst_stream', 'ping', 'goaway']);
      const [syn, reply, data, rst, ping, goaway] = frames;
      assert.ok(syn?.kind === 'syn_stream' && syn.streamId === 1 && syn.headerBlock.toString() === 'hdr');
      assert.ok(reply?.kind === 'syn_reply' && reply.flags === FLAG_FIN);
      assert.ok(data?.kind === 'data' && data.data.toString() === 'payload' && data.flags === FLAG_FIN);
      assert.ok(rst?.kind === 'rst_stream' && rst.streamId === 3 && rst.status === 5);
      assert.ok(ping?.kind === 'ping' && ping.id === 7);
      assert.ok(goaway?.kind === 'goaway' && goaway.lastGoodStreamId === 9);
    }
  });

  test('a wrong version or a short control frame is a SpdyFrameError', () => {
    const badVersion = encodePing(1);
    badVersion.writeUInt16BE(0x8002, 0);
    assert.throws(() => new FrameReader().push(badVersion), SpdyFrameError);
    const short = Buffer.from([0x80, 0x03, 0x00, FrameType.RST_STREAM, 0, 0, 0, 2, 0, 1]);
    assert.throws(() => new FrameReader().push(short), SpdyFrameError);
  });
});

/** Two ends of an in-memory byte pipe. */
function socketPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

describe('SPDY server session', () => {
  test('replies to SYN_STREAM, carries data both ways with half-close, echoes PING, honours RST', async () => {
    const [serverEnd, clientEnd] = socketPair();
    const session = new SpdyServerSession(serverEnd);
    const streams: SpdyStream[] = [];
    session.on('stream', (stream) => {
      streams.push(stream);
      session.reply(stream);
      // An echo server: what comes in goes back, and our side ends after theirs.
      stream.pipe(stream);
    });
    const reader = new FrameReader();
    const received: ReturnType<FrameReader['push']> = [];
    clientEnd.on('data', (chunk: Buffer) => received.push(...reader.push(chunk)));
    const compress = peerCompressor();
    const until = async (what: string, check: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(check(), what);
    };

    clientEnd.write(encodeSynStream(1, await compress(encodeHeaderBlock(new Map([['streamtype', ['data']]])))));
    clientEnd.write(encodeData(1, Buffer.from('ping-pong')));
    clientEnd.write(encodeData(1, Buffer.alloc(0), FLAG_FIN));
    clientEnd.write(encodePing(5));
    await until('the reply, the echo, our FIN and the PING answer', () => received.filter((f) => f.kind === 'data').length >= 2 && received.some((f) => f.kind === 'ping'));
    assert.equal(streams[0]?.header('streamType'), 'data');
    assert.ok(received.some((f) => f.kind === 'syn_reply' && f.streamId === 1));
    const data = received.filter((f) => f.kind === 'data');
    assert.equal(Buffer.concat(data.map((f) => (f.kind === 'data' ? f.data : Buffer.alloc(0)))).toString(), 'ping-pong');
    assert.ok(data.some((f) => f.kind === 'data' && (f.flags & FLAG_FIN) !== 0));
    assert.ok(received.some((f) => f.kind === 'ping' && f.id === 5));
    assert.ok(!received.some((f) => f.kind === 'rst_stream'), 'a cleanly finished stream is not reset');

    clientEnd.write(encodeSynStream(3, await compress(encodeHeaderBlock(new Map([['streamtype', ['error']]])))));
    await until('the second stream', () => streams.length === 2);
    const closed = new Promise((resolve) => streams[1]!.once('close', resolve));
    clientEnd.write(encodeRstStream(3, 5));
    await closed;
    // Data for a stream the peer reset is refused, not delivered.
    clientEnd.write(encodeData(3, Buffer.from('late')));
    await until('INVALID_STREAM for data on a reset stream', () => received.some((f) => f.kind === 'rst_stream' && f.streamId === 3 && f.status === 2));
    clientEnd.on('error', () => undefined);
    session.close();
    clientEnd.destroy();
  });
});
