/**
 * Framing of the udp backend's datagram stream. Every send carries one record:
 *
 *   plain record    an IPv4/IPv6 packet (first byte 0x4_/0x6_), exactly what flannel sends
 *   offload record  a 10-byte virtio_net_hdr (first byte = flags, always < 0x10) followed by an
 *                   IP packet that may be a TCP super-packet of up to 64 KB
 *
 * The length of a record is in its IP header (total length / payload length; for a
 * super-packet the kernel sets it to the whole packet), so records need no length prefix.
 * That matters because the sender lets the kernel cut big records into MTU-sized datagrams
 * (UDP_SEGMENT) and the receiver lets it glue consecutive datagrams back together (UDP_GRO):
 * a read may hold one record, several, or part of one, and `RecordAssembler` turns that
 * byte stream back into whole records, per sender.
 */
import { VNET_HDR_LEN } from '../../lib/tun.js';

/** Largest record: a 64 KB IP packet behind a virtio header. */
export const MAX_RECORD = 65535 + VNET_HDR_LEN;

/**
 * Length of the record starting at `offset`, 0 if more bytes are needed to tell, or -1 if the
 * bytes cannot start a record (the stream is corrupt from here on).
 */
export function recordLength(buffer: Buffer, offset: number, end: number): number {
  const available = end - offset;
  if (available < 1) return 0;
  const first = buffer[offset] ?? 0;
  const ipStart = first < 0x10 ? VNET_HDR_LEN : 0;
  if (available < ipStart + 6) return 0;
  const version = (buffer[offset + ipStart] ?? 0) >> 4;
  let ipLength: number;
  if (version === 4) ipLength = buffer.readUInt16BE(offset + ipStart + 2);
  else if (version === 6) ipLength = 40 + buffer.readUInt16BE(offset + ipStart + 4);
  else return -1;
  if (ipLength < 20) return -1;
  return ipStart + ipLength;
}

export interface RecordSink {
  /** `buffer[offset, offset + length)` is one whole record. */
  record(buffer: Buffer, offset: number, length: number): void;
  /** Bytes that could not be parsed were dropped. */
  corrupt(): void;
}

/** Reassembles records from the reads of one sender. */
export class RecordAssembler {
  private readonly pending = Buffer.alloc(2 * MAX_RECORD);
  private pendingLength = 0;

  constructor(private readonly sink: RecordSink) {}

  /** Feeds one read (`buffer[offset, end)`); whole records go to the sink immediately. */
  push(buffer: Buffer, offset: number, end: number): void {
    if (this.pendingLength === 0) {
      const consumed = this.drain(buffer, offset, end);
      if (consumed < end) this.keep(buffer, consumed, end);
      return;
    }
    this.keep(buffer, offset, end);
    const consumed = this.drain(this.pending, 0, this.pendingLength);
    this.pending.copy(this.pending, 0, consumed, this.pendingLength);
    this.pendingLength -= consumed;
  }

  /** Emits every whole record; returns where the first incomplete one starts. */
  private drain(buffer: Buffer, offset: number, end: number): number {
    while (offset < end) {
      const length = recordLength(buffer, offset, end);
      if (length < 0) {
        this.sink.corrupt();
        this.pendingLength = 0;
        return end;
      }
      if (length === 0 || offset + length > end) return offset;
      this.sink.record(buffer, offset, length);
      offset += length;
    }
    return offset;
  }

  private keep(buffer: Buffer, offset: number, end: number): void {
    const length = end - offset;
    if (this.pendingLength + length > this.pending.length) {
      // A record longer than any legal one never completes: start over.
      this.sink.corrupt();
      this.pendingLength = 0;
      return;
    }
    buffer.copy(this.pending, this.pendingLength, offset, end);
    this.pendingLength += length;
  }
}
