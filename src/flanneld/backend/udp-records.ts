/**
 * Wire format of the udp backend. A datagram's payload is a run of units, each telling its
 * own length, because UDP_GRO may hand the receiver several datagrams glued together:
 *
 *   plain IP packet   first byte 0x4_/0x6_: exactly what flannel sends (length from the IP header)
 *   segment           first byte 0x0f: one piece of a record, behind a 16-byte header
 *
 * A record is what the sender read from its offloading TUN: a 10-byte virtio_net_hdr and an IP
 * packet of up to 64 KB. The sender cuts it into segments that each fill one datagram and
 * hands them to the kernel in one send (UDP_SEGMENT splits at exactly those boundaries):
 *
 *   segment header: magic u8 | 0 u8 | payload length u16 | record seq u32 | offset u32 | record length u32
 *
 * The receiver copies each segment to `offset` in the record of that sequence number and
 * writes the record to its TUN once every byte is there. A record that loses a segment is
 * dropped when the next sequence number arrives (TCP retransmits); without sequence numbers a
 * lost piece would silently be filled with the next record's bytes.
 */
import { VNET_HDR_LEN } from '../../lib/tun.js';

export const SEGMENT_MAGIC = 0x0f;
export const SEGMENT_HEADER_LEN = 16;
/** Largest record: a 64 KB IP packet behind a virtio header. */
export const MAX_RECORD = 65535 + VNET_HDR_LEN;

/** Bytes needed to frame a record of `length` into segments of at most `segmentSize`. */
export function framedLength(length: number, segmentSize: number): number {
  const chunk = segmentSize - SEGMENT_HEADER_LEN;
  return length + Math.ceil(length / chunk) * SEGMENT_HEADER_LEN;
}

/** Writes `record[0, length)` into `into` as segments; returns the bytes written. */
export function frameRecord(record: Buffer, length: number, seq: number, segmentSize: number, into: Buffer): number {
  const chunk = segmentSize - SEGMENT_HEADER_LEN;
  let out = 0;
  for (let offset = 0; offset < length; offset += chunk) {
    const size = Math.min(chunk, length - offset);
    into[out] = SEGMENT_MAGIC;
    into[out + 1] = 0;
    into.writeUInt16BE(size, out + 2);
    into.writeUInt32BE(seq >>> 0, out + 4);
    into.writeUInt32BE(offset, out + 8);
    into.writeUInt32BE(length, out + 12);
    record.copy(into, out + SEGMENT_HEADER_LEN, offset, offset + size);
    out += SEGMENT_HEADER_LEN + size;
  }
  return out;
}

/**
 * Length of the unit at `offset` (segment or plain IP packet), or -1 when the bytes cannot
 * start one or it runs past `end` (GRO only glues whole datagrams, so that is corruption).
 */
export function unitLength(buffer: Buffer, offset: number, end: number): number {
  const available = end - offset;
  if (available < 6) return -1;
  const first = buffer[offset] ?? 0;
  let length: number;
  if (first === SEGMENT_MAGIC) {
    if (available < SEGMENT_HEADER_LEN) return -1;
    length = SEGMENT_HEADER_LEN + buffer.readUInt16BE(offset + 2);
  } else if (first >> 4 === 4) {
    length = buffer.readUInt16BE(offset + 2);
  } else if (first >> 4 === 6) {
    length = 40 + buffer.readUInt16BE(offset + 4);
  } else {
    return -1;
  }
  return length >= 20 && length <= available ? length : -1;
}

/** Reassembles the records of one sender from their segments. */
export class RecordReassembler {
  readonly record = Buffer.alloc(MAX_RECORD);
  private seq = -1;
  private expected = 0;
  private filled = 0;

  /**
   * Adds the segment at `offset` (header included). Returns the record's length when this
   * segment completed it (the record is then in `this.record`), 0 otherwise; `dropped` is
   * called for an incomplete record abandoned for a newer one.
   */
  add(buffer: Buffer, offset: number, dropped: () => void): number {
    const size = buffer.readUInt16BE(offset + 2);
    const seq = buffer.readUInt32BE(offset + 4);
    const at = buffer.readUInt32BE(offset + 8);
    const total = buffer.readUInt32BE(offset + 12);
    if (total > MAX_RECORD || at + size > total) {
      dropped();
      return 0;
    }
    if (seq !== this.seq || total !== this.expected) {
      if (this.filled > 0) dropped();
      this.seq = seq;
      this.expected = total;
      this.filled = 0;
    }
    buffer.copy(this.record, at, offset + SEGMENT_HEADER_LEN, offset + SEGMENT_HEADER_LEN + size);
    this.filled += size;
    if (this.filled < this.expected) return 0;
    this.filled = 0;
    this.seq = -1;
    return this.expected;
  }
}

/**
 * Finishes a checksum the kernel left to "hardware" (virtio NEEDS_CSUM): the field at
 * csumStart + csumOffset holds the pseudo-header sum, the one's complement sum of the bytes
 * from csumStart on completes it. Lets a packet go plain to a peer without offload.
 */
export function completeChecksum(packet: Buffer, start: number, end: number, csumStart: number, csumOffset: number): void {
  let sum = 0;
  let i = start + csumStart;
  for (; i + 1 < end; i += 2) sum += packet.readUInt16BE(i);
  if (i < end) sum += (packet[i] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  packet.writeUInt16BE(~sum & 0xffff, start + csumStart + csumOffset);
}
