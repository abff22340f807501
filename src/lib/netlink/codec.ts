/**
 * Netlink wire format: message headers and type-length-value attributes. Pure functions over
 * buffers, no sockets, so every encoder has a decoder and both are unit tested.
 *
 * Design note: we encode rtnetlink ourselves instead of using node-netlink's typed layer.
 * Requiring `netlink` costs ~44 ms (it evaluates every generated struct module, wifi and
 * WireGuard included), which is most of a CNI ADD's budget; the handful of messages we need
 * is ~300 lines here, measured at well under 1 ms to load.
 */
import { PontoonError } from '../errors.js';

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

// linux/netlink.h
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
/** Set on a dump's messages when the table changed under it (nl_dump_check_consistent). */
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
// Flags on an NLMSG_ERROR reply (extended ACK).
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;
export const NLMSGERR_ATTR_MSG = 1;

export class NetlinkDecodeError extends PontoonError {}

export function align4(length: number): number {
  return (length + 3) & ~3;
}

/** One attribute to encode; nested attributes are a list. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
  /** Set NLA_F_NESTED on a nested attribute (some kernel parsers require it). */
  nestedFlag?: boolean;
}

function attrLength(attr: Attr): number {
  const payload = Array.isArray(attr.value) ? attrsLength(attr.value) : attr.value.length;
  return NLA_HDRLEN + payload;
}

export function attrsLength(attrs: readonly Attr[]): number {
  let total = 0;
  for (const attr of attrs) total += align4(attrLength(attr));
  return total;
}

/** Writes attributes at `offset`; returns the offset after the last one (4-aligned). */
export function writeAttrs(target: Buffer, offset: number, attrs: readonly Attr[]): number {
  for (const attr of attrs) {
    const length = attrLength(attr);
    target.writeUInt16LE(length, offset);
    const nested = Array.isArray(attr.value);
    target.writeUInt16LE(attr.type | (nested && attr.nestedFlag ? NLA_F_NESTED : 0), offset + 2);
    if (Array.isArray(attr.value)) writeAttrs(target, offset + NLA_HDRLEN, attr.value);
    else target.set(attr.value, offset + NLA_HDRLEN);
    offset += align4(length);
  }
  return offset;
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const out = Buffer.alloc(attrsLength(attrs));
  writeAttrs(out, 0, attrs);
  return out;
}

/** Decoded attributes by type. A repeated type keeps the last value, as the kernel does. */
export type AttrMap = Map<number, Buffer>;

export function decodeAttrs(buf: Buffer, offset = 0, end = buf.length): AttrMap {
  const attrs: AttrMap = new Map();
  while (offset + NLA_HDRLEN <= end) {
    const length = buf.readUInt16LE(offset);
    const type = buf.readUInt16LE(offset + 2) & NLA_TYPE_MASK;
    if (length < NLA_HDRLEN || offset + length > end) {
      throw new NetlinkDecodeError(`attribute ${type} at offset ${offset} has bad length ${length}`);
    }
    attrs.set(type, buf.subarray(offset + NLA_HDRLEN, offset + length));
    offset += align4(length);
  }
  return attrs;
}

/** Attributes in order, repeats kept (nested lists such as nf_tables' expressions). */
export function decodeAttrList(buf: Buffer): { type: number; value: Buffer }[] {
  const attrs: { type: number; value: Buffer }[] = [];
  let offset = 0;
  while (offset + NLA_HDRLEN <= buf.length) {
    const length = buf.readUInt16LE(offset);
    const type = buf.readUInt16LE(offset + 2) & NLA_TYPE_MASK;
    if (length < NLA_HDRLEN || offset + length > buf.length) throw new NetlinkDecodeError(`attribute ${type} at offset ${offset} has bad length ${length}`);
    attrs.push({ type, value: buf.subarray(offset + NLA_HDRLEN, offset + length) });
    offset += align4(length);
  }
  return attrs;
}

export const u8 = (value: number): Buffer => Buffer.from([value & 0xff]);
export function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16LE(value);
  return out;
}
export function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value >>> 0);
  return out;
}
export function u16be(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}
export const cstring = (text: string): Buffer => Buffer.from(`${text}\0`, 'utf8');

export function readCString(buf: Buffer | undefined): string | undefined {
  if (!buf) return undefined;
  const nul = buf.indexOf(0);
  return buf.toString('utf8', 0, nul < 0 ? buf.length : nul);
}
export function readU32(buf: Buffer | undefined): number | undefined {
  return buf && buf.length >= 4 ? buf.readUInt32LE(0) : undefined;
}
export function readU8(buf: Buffer | undefined): number | undefined {
  return buf && buf.length >= 1 ? buf.readUInt8(0) : undefined;
}

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header. */
  payload: Buffer;
}

/** Encodes one message: header, a fixed family header (`head`), then attributes. */
export function encodeMessage(type: number, flags: number, seq: number, head: Buffer, attrs: readonly Attr[] = []): Buffer {
  const length = NLMSG_HDRLEN + align4(head.length) + attrsLength(attrs);
  const out = Buffer.alloc(length);
  out.writeUInt32LE(length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq, 8);
  out.writeUInt32LE(0, 12);
  head.copy(out, NLMSG_HDRLEN);
  writeAttrs(out, NLMSG_HDRLEN + align4(head.length), attrs);
  return out;
}

/** Splits one datagram from the kernel into messages. */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const messages: NetlinkMessage[] = [];
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= buf.length) {
    const length = buf.readUInt32LE(offset);
    if (length < NLMSG_HDRLEN || offset + length > buf.length) {
      throw new NetlinkDecodeError(`netlink message at offset ${offset} has bad length ${length}`);
    }
    messages.push({
      type: buf.readUInt16LE(offset + 4),
      flags: buf.readUInt16LE(offset + 6),
      seq: buf.readUInt32LE(offset + 8),
      pid: buf.readUInt32LE(offset + 12),
      payload: buf.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    offset += align4(length);
  }
  return messages;
}

/** The errno (positive; 0 for an ACK) and the kernel's extended-ACK text of an NLMSG_ERROR. */
export function decodeError(message: NetlinkMessage): { errno: number; text?: string } {
  const { payload } = message;
  if (payload.length < 4) throw new NetlinkDecodeError('truncated NLMSG_ERROR');
  const errno = 0 - payload.readInt32LE(0); // not unary minus: an ACK must be 0, not -0
  if ((message.flags & NLM_F_ACK_TLVS) === 0 || payload.length < 4 + NLMSG_HDRLEN) return { errno };
  const echoedLength = (message.flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : payload.readUInt32LE(4);
  const tlvStart = 4 + align4(echoedLength);
  if (tlvStart > payload.length) return { errno };
  const text = readCString(decodeAttrs(payload, tlvStart).get(NLMSGERR_ATTR_MSG));
  return text ? { errno, text } : { errno };
}

/**
 * Writes netlink messages straight into one growing buffer, nested attributes included
 * (their lengths are patched when they end). For batches of 100k messages, where building
 * an Attr tree per message first costs more in garbage collection than the kernel spends
 * applying them.
 */
export class NetlinkWriter {
  private buffer: Buffer;
  private offset = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.offset;
  }

  private reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.offset + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }

  private pad(): void {
    const padded = align4(this.offset);
    this.reserve(padded - this.offset);
    this.buffer.fill(0, this.offset, padded);
    this.offset = padded;
  }

  /** Starts a message; returns the handle `endMessage` takes. */
  beginMessage(type: number, flags: number, seq: number, head: Uint8Array): number {
    const start = this.offset;
    this.reserve(NLMSG_HDRLEN + head.length + 3);
    this.buffer.writeUInt32LE(0, start);
    this.buffer.writeUInt16LE(type, start + 4);
    this.buffer.writeUInt16LE(flags, start + 6);
    this.buffer.writeUInt32LE(seq >>> 0, start + 8);
    this.buffer.writeUInt32LE(0, start + 12);
    this.buffer.set(head, start + NLMSG_HDRLEN);
    this.offset = start + NLMSG_HDRLEN + head.length;
    this.pad();
    return start;
  }

  endMessage(start: number): void {
    this.buffer.writeUInt32LE(this.offset - start, start);
  }

  /** Starts a nested attribute (NLA_F_NESTED set); returns the handle `endNest` takes. */
  beginNest(type: number): number {
    const start = this.offset;
    this.reserve(NLA_HDRLEN);
    this.buffer.writeUInt16LE(type | NLA_F_NESTED, start + 2);
    this.offset += NLA_HDRLEN;
    return start;
  }

  endNest(start: number): void {
    const length = this.offset - start;
    if (length > 0xffff) throw new NetlinkDecodeError(`nested attribute of ${length} bytes exceeds netlink's 16-bit attribute length`);
    this.buffer.writeUInt16LE(length, start);
  }

  /** Bytes written since `start` (a nest or message handle). */
  sizeSince(start: number): number {
    return this.offset - start;
  }

  bytes(type: number, value: Uint8Array): void {
    const length = NLA_HDRLEN + value.length;
    this.reserve(length + 3);
    this.buffer.writeUInt16LE(length, this.offset);
    this.buffer.writeUInt16LE(type, this.offset + 2);
    this.buffer.set(value, this.offset + NLA_HDRLEN);
    this.offset += length;
    this.pad();
  }

  u32be(type: number, value: number): void {
    this.reserve(8);
    this.buffer.writeUInt16LE(8, this.offset);
    this.buffer.writeUInt16LE(type, this.offset + 2);
    this.buffer.writeInt32BE(value | 0, this.offset + 4);
    this.offset += 8;
  }

  /** A host-order (little-endian here, as every machine we run on) u32 attribute: what most rtnetlink numbers are. */
  u32le(type: number, value: number): void {
    this.reserve(8);
    this.buffer.writeUInt16LE(8, this.offset);
    this.buffer.writeUInt16LE(type, this.offset + 2);
    this.buffer.writeUInt32LE(value >>> 0, this.offset + 4);
    this.offset += 8;
  }

  u64be(type: number, value: bigint): void {
    this.reserve(12);
    this.buffer.writeUInt16LE(12, this.offset);
    this.buffer.writeUInt16LE(type, this.offset + 2);
    this.buffer.writeBigUInt64BE(value, this.offset + 4);
    this.offset += 12;
  }

  u8(type: number, value: number): void {
    this.bytes(type, Uint8Array.of(value & 0xff));
  }

  /** A NUL-terminated string attribute. */
  string(type: number, text: string): void {
    const byteLength = Buffer.byteLength(text);
    const length = NLA_HDRLEN + byteLength + 1;
    this.reserve(length + 3);
    this.buffer.writeUInt16LE(length, this.offset);
    this.buffer.writeUInt16LE(type, this.offset + 2);
    this.buffer.write(text, this.offset + NLA_HDRLEN, 'utf8');
    this.buffer[this.offset + NLA_HDRLEN + byteLength] = 0;
    this.offset += length;
    this.pad();
  }

  /** Appends a copy of the bytes at [start, start + length), already written; returns where the copy starts. */
  repeat(start: number, length: number): number {
    this.reserve(length);
    const at = this.offset;
    this.buffer.copyWithin(at, start, start + length);
    this.offset += length;
    return at;
  }

  /** Overwrites bytes already written (the fields of a repeated message). */
  patchU8(at: number, value: number): void {
    this.buffer[at] = value & 0xff;
  }

  patchU16LE(at: number, value: number): void {
    this.buffer.writeUInt16LE(value & 0xffff, at);
  }

  patchU32LE(at: number, value: number): void {
    this.buffer.writeUInt32LE(value >>> 0, at);
  }

  patchU32BE(at: number, value: number): void {
    this.buffer.writeUInt32BE(value >>> 0, at);
  }

  /** The bytes written so far (a view; copy it if the writer is reused). */
  finish(): Buffer {
    return this.buffer.subarray(0, this.offset);
  }
}
