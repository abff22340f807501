/**
 * RFC 4271 §4.1 message header and the TCP stream framer.
 *
 *   Marker (16 octets, all ones) | Length (2) | Type (1)
 *
 * §6.1 header errors: a marker that is not all ones is Connection Not Synchronized; a Length
 * below 19 or above 4096 is Bad Message Length with the erroneous Length field as data; an
 * unknown Type is Bad Message Type with the Type field as data. The per-type length rules
 * (KEEPALIVE exactly 19, OPEN at least 29, ...) belong to each message's decoder.
 *
 * Design note: `MessageFramer` copies a partial message into one fixed 4096-byte buffer
 * (the largest message there can be) instead of concatenating chunks, so an initial table
 * transfer of 100k prefixes costs O(bytes) however the kernel splits the stream; whole
 * messages that sit inside one chunk are sliced out of it directly. A framer that has
 * thrown is unusable: the session is reset anyway, and messages completed earlier in the
 * same chunk are dropped with it.
 */
import { ERROR_CODE, HEADER_SUBCODE } from '../types.js';
import { BgpMessageError, u16Data } from './errors.js';
import { copyBytes } from './wire.js';

/** RFC 4271 §4.1 */
export const BGP_HEADER_LENGTH = 19;
export const BGP_MARKER_LENGTH = 16;
export const BGP_MAX_MESSAGE_LENGTH = 4096;

/**
 * Checks the marker and Length of the header at `offset` (19 bytes must be there) and
 * returns the Length.
 */
export function checkHeader(bytes: Uint8Array, offset: number): number {
  for (let i = offset; i < offset + BGP_MARKER_LENGTH; i++) {
    if (bytes[i] !== 0xff) {
      throw new BgpMessageError(ERROR_CODE.MESSAGE_HEADER, HEADER_SUBCODE.CONNECTION_NOT_SYNCHRONIZED, new Uint8Array(0), 'marker is not all ones');
    }
  }
  const length = ((bytes[offset + 16] ?? 0) << 8) | (bytes[offset + 17] ?? 0);
  if (length < BGP_HEADER_LENGTH || length > BGP_MAX_MESSAGE_LENGTH) {
    throw new BgpMessageError(ERROR_CODE.MESSAGE_HEADER, HEADER_SUBCODE.BAD_MESSAGE_LENGTH, u16Data(length), `header Length ${length} is outside 19..4096`);
  }
  return length;
}

/** The NOTIFICATION for a message whose Length is wrong for its type (§6.1). */
export function badLength(length: number, why: string): BgpMessageError {
  return new BgpMessageError(ERROR_CODE.MESSAGE_HEADER, HEADER_SUBCODE.BAD_MESSAGE_LENGTH, u16Data(length), why);
}

/** Writes a header for a message of `length` bytes (including the header) and `type`. */
export function writeHeader(target: Uint8Array, length: number, type: number): void {
  target.fill(0xff, 0, BGP_MARKER_LENGTH);
  target[16] = length >> 8;
  target[17] = length & 0xff;
  target[18] = type;
}

export class MessageFramer {
  private readonly partial = new Uint8Array(BGP_MAX_MESSAGE_LENGTH);
  private partialLength = 0;
  /** Length of the message being assembled in `partial`, once its header is complete. */
  private expected = 0;

  /** Returns the messages (header included, each its own copy) completed by `chunk`. */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.partialLength === 0) {
        const available = chunk.length - offset;
        if (available >= BGP_HEADER_LENGTH) {
          const length = checkHeader(chunk, offset);
          if (available >= length) {
            frames.push(copyBytes(chunk.subarray(offset, offset + length)));
            offset += length;
            continue;
          }
          this.expected = length;
        }
        this.partial.set(chunk.subarray(offset), 0);
        this.partialLength = available;
        return frames;
      }
      if (this.expected === 0) {
        const take = Math.min(BGP_HEADER_LENGTH - this.partialLength, chunk.length - offset);
        this.partial.set(chunk.subarray(offset, offset + take), this.partialLength);
        this.partialLength += take;
        offset += take;
        if (this.partialLength < BGP_HEADER_LENGTH) return frames;
        this.expected = checkHeader(this.partial, 0);
      }
      const take = Math.min(this.expected - this.partialLength, chunk.length - offset);
      this.partial.set(chunk.subarray(offset, offset + take), this.partialLength);
      this.partialLength += take;
      offset += take;
      if (this.partialLength < this.expected) return frames;
      frames.push(this.partial.slice(0, this.expected));
      this.partialLength = 0;
      this.expected = 0;
    }
    return frames;
  }

  /** Bytes held of a message not yet complete (for tests and diagnostics). */
  get buffered(): number {
    return this.partialLength;
  }
}
