/**
 * Bounds-checked reading and growable writing of big-endian fields.
 *
 * Every `Reader` is made for one field of one message and told which BgpMessageError a
 * short read means there (a truncated OPEN is not the same NOTIFICATION as a truncated
 * capability), so no decoder can run off the end of a buffer into a RangeError: the check
 * happens before every read, in one place.
 */
import { BgpEncodeError } from './errors.js';

export class Reader {
  private readonly view: DataView;
  private position: number;
  private readonly end: number;

  constructor(
    readonly bytes: Uint8Array,
    private readonly short: (what: string) => Error,
    start = 0,
    end = bytes.length,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.position = start;
    this.end = end;
  }

  get offset(): number {
    return this.position;
  }

  get remaining(): number {
    return this.end - this.position;
  }

  /** Throws this reader's error unless `count` more bytes are there. */
  need(count: number, what: string): void {
    if (count > this.remaining) throw this.short(what);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.position++);
  }

  u16(what: string): number {
    this.need(2, what);
    const value = this.view.getUint16(this.position);
    this.position += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.position);
    this.position += 4;
    return value;
  }

  /** A view (not a copy) of the next `count` bytes. */
  bytesView(count: number, what: string): Uint8Array {
    this.need(count, what);
    const value = this.bytes.subarray(this.position, this.position + count);
    this.position += count;
    return value;
  }

  skip(count: number, what: string): void {
    this.need(count, what);
    this.position += count;
  }
}

/** Appends fields to a buffer that doubles as needed; `finish()` returns the bytes written. */
export class Writer {
  private buffer: Uint8Array;
  private view: DataView;
  private length = 0;

  constructor(initialSize = 256) {
    this.buffer = new Uint8Array(initialSize);
    this.view = new DataView(this.buffer.buffer);
  }

  get offset(): number {
    return this.length;
  }

  private reserve(count: number): void {
    if (this.length + count <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + count) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): void {
    this.reserve(1);
    this.view.setUint8(this.length++, value);
  }

  u16(value: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, value);
    this.length += 2;
  }

  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value);
    this.length += 4;
  }

  bytes(value: Uint8Array): void {
    this.reserve(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
  }

  /** Overwrites a 2-octet field written earlier (a length known only once its body is out). */
  patchU16(at: number, value: number): void {
    this.view.setUint16(at, value);
  }

  patchU8(at: number, value: number): void {
    this.view.setUint8(at, value);
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/**
 * An owned, plain copy. `Buffer#slice` returns a view that shares memory (and stays a
 * Buffer), so decoders never call `.slice()` on input that may be a Buffer.
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** Range checks for values the model types only as `number`. */
export function checkUint(value: number, bits: 8 | 16 | 32, what: string): number {
  const max = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new BgpEncodeError(what, `${value} is not an unsigned ${bits}-bit integer`);
  }
  return value;
}
