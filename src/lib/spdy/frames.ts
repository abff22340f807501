/**
 * SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 §2.2, spdy-protocol-draft3-1): a pure
 * codec, no sockets. Control frames carry a version (3) and a type; data frames a 31-bit
 * stream id. Header blocks stay compressed here; headers.ts owns their zlib contexts.
 *
 * Only what Kubernetes' port-forward (moby/spdystream on the other end) exchanges is typed:
 * SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE, DATA.
 */
import { PontoonError } from '../errors.js';

export const SPDY_VERSION = 3;
export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;
/** Frames larger than this are refused (spdystream never sends more than 16 MiB - 1). */
export const MAX_FRAME_BYTES = 0xffffff;

/** §2.6 control frame types. */
export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** §2.6.3 RST_STREAM status codes. */
export const RstStatus = { PROTOCOL_ERROR: 1, INVALID_STREAM: 2, REFUSED_STREAM: 3, CANCEL: 5, INTERNAL_ERROR: 6, STREAM_ALREADY_CLOSED: 9 } as const;

export class SpdyFrameError extends PontoonError {}

export type SpdyFrame =
  | { kind: 'data'; streamId: number; flags: number; data: Buffer }
  | { kind: 'syn_stream'; streamId: number; associatedTo: number; priority: number; flags: number; headerBlock: Buffer }
  | { kind: 'syn_reply'; streamId: number; flags: number; headerBlock: Buffer }
  | { kind: 'headers'; streamId: number; flags: number; headerBlock: Buffer }
  | { kind: 'rst_stream'; streamId: number; status: number }
  | { kind: 'ping'; id: number }
  | { kind: 'goaway'; lastGoodStreamId: number; status: number }
  | { kind: 'settings' }
  | { kind: 'window_update'; streamId: number; delta: number }
  | { kind: 'unknown'; type: number };

function need(payload: Buffer, bytes: number, what: string): void {
  if (payload.length < bytes) throw new SpdyFrameError(`${what} frame too short: ${payload.length} bytes, need ${bytes}`);
}

/** Decodes one frame's payload given its 8-byte header. */
function decodeFrame(header: Buffer, payload: Buffer): SpdyFrame {
  const first = header.readUInt32BE(0);
  const flags = header[4]!;
  if ((first & 0x80000000) === 0) return { kind: 'data', streamId: first & 0x7fffffff, flags, data: payload };
  const version = (first >>> 16) & 0x7fff;
  if (version !== SPDY_VERSION) throw new SpdyFrameError(`unsupported SPDY version ${version}`);
  const type = first & 0xffff;
  switch (type) {
    case FrameType.SYN_STREAM:
      need(payload, 10, 'SYN_STREAM');
      return {
        kind: 'syn_stream',
        streamId: payload.readUInt32BE(0) & 0x7fffffff,
        associatedTo: payload.readUInt32BE(4) & 0x7fffffff,
        priority: payload[8]! >> 5,
        flags,
        headerBlock: payload.subarray(10),
      };
    case FrameType.SYN_REPLY:
    case FrameType.HEADERS:
      need(payload, 4, type === FrameType.SYN_REPLY ? 'SYN_REPLY' : 'HEADERS');
      return { kind: type === FrameType.SYN_REPLY ? 'syn_reply' : 'headers', streamId: payload.readUInt32BE(0) & 0x7fffffff, flags, headerBlock: payload.subarray(4) };
    case FrameType.RST_STREAM:
      need(payload, 8, 'RST_STREAM');
      return { kind: 'rst_stream', streamId: payload.readUInt32BE(0) & 0x7fffffff, status: payload.readUInt32BE(4) };
    case FrameType.PING:
      need(payload, 4, 'PING');
      return { kind: 'ping', id: payload.readUInt32BE(0) };
    case FrameType.GOAWAY:
      need(payload, 8, 'GOAWAY');
      return { kind: 'goaway', lastGoodStreamId: payload.readUInt32BE(0) & 0x7fffffff, status: payload.readUInt32BE(4) };
    case FrameType.SETTINGS:
      return { kind: 'settings' };
    case FrameType.WINDOW_UPDATE:
      need(payload, 8, 'WINDOW_UPDATE');
      return { kind: 'window_update', streamId: payload.readUInt32BE(0) & 0x7fffffff, delta: payload.readUInt32BE(4) & 0x7fffffff };
    default:
      return { kind: 'unknown', type };
  }
}

/** Splits a byte stream into frames; feed it chunks as they arrive. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): SpdyFrame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: SpdyFrame[] = [];
    for (;;) {
      if (this.pending.length < 8) break;
      const length = this.pending.readUInt32BE(4) & 0xffffff;
      if (this.pending.length < 8 + length) break;
      const header = this.pending.subarray(0, 8);
      // Copy the payload out: the rest of the buffer is reused for later frames.
      const payload = Buffer.from(this.pending.subarray(8, 8 + length));
      this.pending = this.pending.subarray(8 + length);
      frames.push(decodeFrame(header, payload));
    }
    return frames;
  }
}

function control(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_BYTES) throw new SpdyFrameError(`control frame of ${payload.length} bytes is too large`);
  const header = Buffer.alloc(8);
  header.writeUInt32BE((0x80000000 | (SPDY_VERSION << 16) | type) >>> 0, 0);
  header.writeUInt32BE(((flags << 24) | payload.length) >>> 0, 4);
  return Buffer.concat([header, payload]);
}

export function encodeData(streamId: number, data: Buffer, flags = 0): Buffer {
  if (data.length > MAX_FRAME_BYTES) throw new SpdyFrameError(`data frame of ${data.length} bytes is too large`);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(streamId & 0x7fffffff, 0);
  header.writeUInt32BE(((flags << 24) | data.length) >>> 0, 4);
  return Buffer.concat([header, data]);
}

export function encodeSynStream(streamId: number, headerBlock: Buffer, flags = 0, associatedTo = 0, priority = 0): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt32BE(streamId & 0x7fffffff, 0);
  fixed.writeUInt32BE(associatedTo & 0x7fffffff, 4);
  fixed[8] = (priority & 0x7) << 5;
  return control(FrameType.SYN_STREAM, flags, Buffer.concat([fixed, headerBlock]));
}

export function encodeSynReply(streamId: number, headerBlock: Buffer, flags = 0): Buffer {
  const fixed = Buffer.alloc(4);
  fixed.writeUInt32BE(streamId & 0x7fffffff, 0);
  return control(FrameType.SYN_REPLY, flags, Buffer.concat([fixed, headerBlock]));
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(streamId & 0x7fffffff, 0);
  payload.writeUInt32BE(status, 4);
  return control(FrameType.RST_STREAM, 0, payload);
}

export function encodePing(id: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(id >>> 0, 0);
  return control(FrameType.PING, 0, payload);
}

export function encodeGoAway(lastGoodStreamId: number, status = 0): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastGoodStreamId & 0x7fffffff, 0);
  payload.writeUInt32BE(status, 4);
  return control(FrameType.GOAWAY, 0, payload);
}
