/**
 * The userspace IPIP tunnel's packet work, as pure functions over preallocated memory (no
 * sockets, no allocation per packet), so the packet loops stay small and this is unit-tested.
 *
 * Wire format (RFC 2003 §3): an outer IPv4 header, protocol 4, then the inner IPv4 packet
 * unmodified. The outer fields copy what Linux's `tunl0` (the ipip module's fallback device,
 * the one Calico uses) puts there, so a kernel node and this one cannot tell each other apart:
 *   - TTL: inherited from the inner packet (tunl0 has `ttl 0` = inherit; the inner TTL was
 *     already decremented when the node forwarded the packet into the tunnel);
 *   - DF: copied from the inner packet (tunl0 has `nopmtudisc`: frag_off 0, then
 *     `df |= inner DF` in ip_tunnel_xmit);
 *   - TOS: DSCP 0, ECN per RFC 6040 normal mode (INET_ECN_encapsulate: inner ECN, CE → ECT(0));
 *   - ID: a per-loop counter (never 0, so the kernel keeps it; Linux picks one per packet too).
 * The outer checksum and total length are filled in by the kernel (IP_HDRINCL always does).
 *
 * Checksums: a TCP super-packet from the offloading TUN carries only the pseudo-header sum
 * (virtio NEEDS_CSUM), and a raw socket cannot offload, so each segment's checksum is computed
 * here. `onesSum` sums 32-bit little-endian words through a Uint32Array and byte-swaps the
 * folded result (RFC 1071 §2(B): the one's complement sum is byte-order independent) — about
 * 4× faster than reading 16-bit big-endian words.
 */
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN } from '../../lib/tun.js';

export const IPV4_HEADER_LEN = 20;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
/** Largest IPv4 packet. */
export const MAX_IP_PACKET = 65535;
/** IPv4 flags/fragment-offset field. */
const IP_DF = 0x4000;
const IP_MF_AND_OFFSET = 0x3fff;
const ECN_MASK = 3;
const ECN_CE = 3;
const ECN_ECT0 = 2;
/** TCP flag bits (byte 13 of the header). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_URG = 0x20;
export const TCP_CWR = 0x80;
/** Segments with these flags are never coalesced (kernel GRO flushes on them too). */
const TCP_NO_COALESCE = TCP_SYN | TCP_RST | TCP_URG | TCP_CWR | TCP_FIN;

/** Folds a one's complement sum (any non-negative safe integer) to 16 bits. */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

function swap16(value: number): number {
  return ((value & 0xff) << 8) | (value >>> 8);
}

/**
 * Unfolded one's complement sum of `bytes[start, end)` as big-endian 16-bit words from
 * `start`. `words` views the same ArrayBuffer as `bytes` from byte 0 (bytes.byteOffset 0).
 */
export function onesSum(bytes: Uint8Array, words: Uint32Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  if ((i & 1) === 0 && end - i >= 16) {
    if ((i & 3) === 2) {
      sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
      i += 2;
    }
    const first = i >>> 2;
    const last = first + ((end - i) >>> 2);
    let little = 0;
    for (let w = first; w < last; w++) little += words[w] ?? 0;
    sum += swap16(fold(little));
    i = last << 2;
  }
  for (; i + 1 < end; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  if (i < end) sum += (bytes[i] ?? 0) << 8;
  return sum;
}

function readU32(bytes: Uint8Array, at: number): number {
  return (((bytes[at] ?? 0) << 24) | ((bytes[at + 1] ?? 0) << 16) | ((bytes[at + 2] ?? 0) << 8) | (bytes[at + 3] ?? 0)) >>> 0;
}

function readU16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0);
}

function writeU16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = (value >>> 8) & 0xff;
  bytes[at + 1] = value & 0xff;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = (value >>> 24) & 0xff;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

/** Sum of the TCP/UDP pseudo-header (RFC 793 §3.1) for an IPv4 header at `ip`. */
function pseudoHeaderSum(bytes: Uint8Array, ip: number, protocol: number, length: number): number {
  return readU16(bytes, ip + 12) + readU16(bytes, ip + 14) + readU16(bytes, ip + 16) + readU16(bytes, ip + 18) + protocol + length;
}

/** Writes the IPv4 header checksum of the header at `ip`. */
export function writeIpChecksum(bytes: Uint8Array, ip: number): void {
  const length = ((bytes[ip] ?? 0) & 0x0f) * 4;
  writeU16(bytes, ip + 10, 0);
  let sum = 0;
  for (let i = ip; i < ip + length; i += 2) sum += readU16(bytes, i);
  writeU16(bytes, ip + 10, ~fold(sum) & 0xffff);
}

export function ipChecksumValid(bytes: Uint8Array, ip: number): boolean {
  const length = ((bytes[ip] ?? 0) & 0x0f) * 4;
  let sum = 0;
  for (let i = ip; i < ip + length; i += 2) sum += readU16(bytes, i);
  return fold(sum) === 0xffff;
}

/**
 * Writes the 20-byte outer header at `at` for the inner packet at `inner` (RFC 2003 §3.1,
 * with tunl0's choices: see the module note). `length` is the whole outer packet's.
 */
export function writeOuterHeader(bytes: Uint8Array, at: number, inner: number, length: number, id: number, source: number, destination: number): void {
  const innerEcn = (bytes[inner + 1] ?? 0) & ECN_MASK;
  bytes[at] = 0x45;
  bytes[at + 1] = innerEcn === ECN_CE ? ECN_ECT0 : innerEcn;
  writeU16(bytes, at + 2, length);
  writeU16(bytes, at + 4, id);
  writeU16(bytes, at + 6, readU16(bytes, inner + 6) & IP_DF);
  bytes[at + 8] = bytes[inner + 8] ?? 64;
  bytes[at + 9] = IPPROTO_IPIP;
  writeU16(bytes, at + 10, 0);
  writeU32(bytes, at + 12, source);
  writeU32(bytes, at + 16, destination);
}

/**
 * Finishes a checksum the kernel left to "hardware" (virtio NEEDS_CSUM) in the IP packet at
 * `ip`: the field at csumStart + csumOffset holds the pseudo-header sum, the sum of the bytes
 * from csumStart on completes it.
 */
export function completeChecksum(bytes: Uint8Array, words: Uint32Array, ip: number, end: number, csumStart: number, csumOffset: number): void {
  const start = ip + csumStart;
  if (start + csumOffset + 2 > end) return;
  writeU16(bytes, start + csumOffset, ~fold(onesSum(bytes, words, start, end)) & 0xffff);
}

/**
 * Where TcpSegmenter put segment `i`: its headers (outer + inner IP + TCP) at
 * `headerStart(i)` in the header area, its payload in the super-packet.
 */
export interface SegmentLayout {
  count: number;
  headerLength: number;
  payloadStart: number;
  mss: number;
  payloadEnd: number;
}

/**
 * Userspace TSO for one TCP/IPv4 super-packet, as tcp_gso_segment + inet_gso_segment do it:
 * segment i carries sequence seq + i·mss, IP ID id + i, CWR only on the first, FIN and PSH
 * only on the last, and full IP and TCP checksums. Headers are written into `headers` (one
 * slot of `stride` bytes per segment, the outer header first) in the same arena as the
 * super-packet; payloads stay where they are
 * and are sent from there (an iovec each), so the only pass over the data is the checksum.
 */
export class TcpSegmenter {
  readonly layout: SegmentLayout = { count: 0, headerLength: 0, payloadStart: 0, mss: 0, payloadEnd: 0 };

  constructor(
    /** The loop's memory, holding both the super-packet and the header slots (byteOffset 0). */
    readonly arena: Uint8Array,
    readonly words: Uint32Array,
    readonly headersStart: number,
    readonly stride: number,
    readonly maxSegments: number,
  ) {}

  headerStart(i: number): number {
    return this.headersStart + i * this.stride;
  }

  payloadStart(i: number): number {
    return this.layout.payloadStart + i * this.layout.mss;
  }

  payloadLength(i: number): number {
    return Math.min(this.layout.mss, this.layout.payloadEnd - this.payloadStart(i));
  }

  /**
   * Segments the packet at `bytes[ip, end)`; returns the segment count, 0 when the packet is
   * not TCP/IPv4 or its headers do not fit (the caller drops it).
   */
  segment(ip: number, end: number, mss: number, firstOuterId: number, source: number, destination: number): number {
    const bytes = this.arena;
    const words = this.words;
    const ihl = ((bytes[ip] ?? 0) & 0x0f) * 4;
    if ((bytes[ip] ?? 0) >> 4 !== 4 || ihl < IPV4_HEADER_LEN || bytes[ip + 9] !== IPPROTO_TCP || ip + ihl + 20 > end) return 0;
    const tcp = ip + ihl;
    const thl = ((bytes[tcp + 12] ?? 0) >> 4) * 4;
    const headerLength = ihl + thl;
    const payloadStart = ip + headerLength;
    if (thl < 20 || payloadStart > end || mss <= 0 || IPV4_HEADER_LEN + headerLength > this.stride) return 0;
    const count = Math.max(1, Math.ceil((end - payloadStart) / mss));
    if (count > this.maxSegments) return 0;
    Object.assign(this.layout, { count, headerLength, payloadStart, mss, payloadEnd: end });
    const out = bytes;
    const seq = readU32(bytes, tcp + 4);
    const id = readU16(bytes, ip + 4);
    const flags = bytes[tcp + 13] ?? 0;
    for (let i = 0; i < count; i++) {
      const slot = this.headerStart(i);
      const innerIp = slot + IPV4_HEADER_LEN;
      const innerTcp = innerIp + ihl;
      const start = this.payloadStart(i);
      const length = this.payloadLength(i);
      out.copyWithin(innerIp, ip, payloadStart);
      writeU16(out, innerIp + 2, headerLength + length);
      writeU16(out, innerIp + 4, (id + i) & 0xffff);
      writeIpChecksum(out, innerIp);
      writeU32(out, innerTcp + 4, (seq + i * mss) >>> 0);
      let segmentFlags = flags;
      if (i > 0) segmentFlags &= ~TCP_CWR;
      if (i < count - 1) segmentFlags &= ~(TCP_FIN | TCP_PSH);
      out[innerTcp + 13] = segmentFlags;
      writeU16(out, innerTcp + 16, 0);
      const sum = pseudoHeaderSum(out, innerIp, IPPROTO_TCP, thl + length) + onesSum(out, words, innerTcp, innerTcp + thl) + onesSum(bytes, words, start, start + length);
      writeU16(out, innerTcp + 16, ~fold(sum) & 0xffff);
      writeOuterHeader(out, slot, innerIp, IPV4_HEADER_LEN + headerLength + length, ((firstOuterId + i) % 0xffff) + 1, source, destination);
    }
    return count;
  }
}

/**
 * Writes an ICMP Destination Unreachable / Host Unreachable (RFC 792) at `at` about the IPv4
 * packet at `original`, from `source` back to the packet's sender — what the kernel's ipip
 * sends (dst_link_failure) when it has no next hop for a packet. Returns its length.
 */
export function writeHostUnreachable(bytes: Uint8Array, at: number, original: number, originalLength: number, source: number): number {
  const quoted = Math.min(originalLength, ((bytes[original] ?? 0) & 0x0f) * 4 + 8);
  const length = IPV4_HEADER_LEN + 8 + quoted;
  bytes.copyWithin(at + IPV4_HEADER_LEN + 8, original, original + quoted);
  const sender = readU32(bytes, original + 12);
  bytes[at] = 0x45;
  bytes[at + 1] = 0xc0; // DSCP CS6, as Linux sends ICMP errors
  writeU16(bytes, at + 2, length);
  writeU16(bytes, at + 4, 0);
  writeU16(bytes, at + 6, 0);
  bytes[at + 8] = 64;
  bytes[at + 9] = IPPROTO_ICMP;
  writeU32(bytes, at + 12, source);
  writeU32(bytes, at + 16, sender);
  writeIpChecksum(bytes, at);
  const icmp = at + IPV4_HEADER_LEN;
  bytes[icmp] = 3; // destination unreachable
  bytes[icmp + 1] = 1; // host unreachable
  writeU16(bytes, icmp + 2, 0);
  writeU32(bytes, icmp + 4, 0);
  let sum = 0;
  for (let i = icmp; i + 1 < at + length; i += 2) sum += readU16(bytes, i);
  if ((length - IPV4_HEADER_LEN) % 2 === 1) sum += (bytes[at + length - 1] ?? 0) << 8;
  writeU16(bytes, icmp + 2, ~fold(sum) & 0xffff);
  return length;
}

/** Where coalesced and passed-through packets go: `offset` is the virtio header's, in the arena. */
export type Emit = (offset: number, length: number) => void;

/**
 * Userspace GRO for the receive loop: consecutive in-order TCP segments of one flow from one
 * batch of recvmmsg are glued into one super-packet, written to the TUN behind a virtio header
 * (GSO_TCPV4, NEEDS_CSUM), so the node forwards one skb per 64 KB and the pod's TCP sees what
 * kernel GRO would have given it. The rules are tcp_gro_receive's: same addresses, ports, ACK,
 * window, TOS, TTL, DF and TCP options; sequence continues the run; no SYN/RST/URG/CWR/FIN;
 * no segment longer than the first (its length is the gso_size); a shorter one or PSH ends
 * the run. Because the result is marked checksum-partial (trusted by the stack), every segment
 * is checked (IP and TCP checksums) before it may join; a bad one passes through unmodified
 * and the kernel drops it as it would have.
 *
 * Packets that do not coalesce pass through in place: the 10 bytes in front of the inner
 * packet (the end of the outer header, already read) become a zero virtio header.
 */
export class TcpCoalescer {
  private active = false;
  private merged = 0;
  private headStart = 0;
  private headLength = 0;
  private recordLength = 0;
  private outerSource = 0;
  private thl = 0;
  private mss = 0;
  private expectedSeq = 0;
  private pushed = 0;
  coalescedRecords = 0;
  coalescedSegments = 0;

  constructor(
    private readonly arena: Uint8Array,
    private readonly words: Uint32Array,
    /** Record area: a virtio header then up to 64 KB of IP packet. */
    private readonly recordStart: number,
    private readonly emit: Emit,
  ) {}

  /**
   * A received inner IPv4 packet at `arena[inner, inner + length)`, `length` trimmed to its
   * total length; at least VNET_HDR_LEN bytes before `inner` are free to overwrite.
   */
  offer(inner: number, length: number, outerSource: number): void {
    const payload = this.candidatePayload(inner, length);
    if (payload <= 0) {
      this.flush();
      this.passThrough(inner, length);
      return;
    }
    if (this.active && this.continues(inner, length, payload, outerSource)) {
      this.append(inner, length, payload);
    } else {
      this.flush();
      this.active = true;
      this.merged = 1;
      this.headStart = inner;
      this.headLength = length;
      this.outerSource = outerSource;
      this.thl = length - IPV4_HEADER_LEN - payload;
      this.mss = payload;
      this.expectedSeq = (readU32(this.arena, inner + 24) + payload) >>> 0;
      this.pushed = (this.arena[inner + 33] ?? 0) & TCP_PSH;
    }
    if (this.pushed !== 0 || payload < this.mss) this.flush();
  }

  /** Ends the run: writes it (one packet in place, or the coalesced record). */
  flush(): void {
    if (!this.active) return;
    this.active = false;
    if (this.merged === 1) {
      this.passThrough(this.headStart, this.headLength);
      return;
    }
    const a = this.arena;
    const ip = this.recordStart + VNET_HDR_LEN;
    const tcp = ip + IPV4_HEADER_LEN;
    writeU16(a, ip + 2, this.recordLength);
    writeIpChecksum(a, ip);
    a[tcp + 13] = (a[tcp + 13] ?? 0) | this.pushed;
    // Checksum-partial convention: the field holds the folded pseudo-header sum, the stack
    // (or the segmentation on a later hop) adds the data.
    writeU16(a, tcp + 16, fold(pseudoHeaderSum(a, ip, IPPROTO_TCP, this.recordLength - IPV4_HEADER_LEN)));
    const vnet = this.recordStart;
    a[vnet] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    a[vnet + 1] = VIRTIO_NET_HDR_GSO_TCPV4;
    writeLe16(a, vnet + 2, IPV4_HEADER_LEN + this.thl);
    writeLe16(a, vnet + 4, this.mss);
    writeLe16(a, vnet + 6, IPV4_HEADER_LEN);
    writeLe16(a, vnet + 8, 16);
    this.coalescedRecords++;
    this.coalescedSegments += this.merged;
    this.emit(vnet, VNET_HDR_LEN + this.recordLength);
  }

  private passThrough(inner: number, length: number): void {
    this.arena.fill(0, inner - VNET_HDR_LEN, inner);
    this.emit(inner - VNET_HDR_LEN, VNET_HDR_LEN + length);
  }

  /** Payload length of a segment that may take part in a run (checksums verified), else 0. */
  private candidatePayload(inner: number, length: number): number {
    const a = this.arena;
    if (length < 40 || a[inner] !== 0x45 || a[inner + 9] !== IPPROTO_TCP) return 0;
    if ((readU16(a, inner + 6) & IP_MF_AND_OFFSET) !== 0) return 0;
    const tcp = inner + IPV4_HEADER_LEN;
    const thl = ((a[tcp + 12] ?? 0) >> 4) * 4;
    const payload = length - IPV4_HEADER_LEN - thl;
    if (thl < 20 || payload <= 0 || ((a[tcp + 13] ?? 0) & TCP_NO_COALESCE) !== 0) return 0;
    if (!ipChecksumValid(a, inner)) return 0;
    const sum = pseudoHeaderSum(a, inner, IPPROTO_TCP, length - IPV4_HEADER_LEN) + onesSum(a, this.words, tcp, inner + length);
    return fold(sum) === 0xffff ? payload : 0;
  }

  private continues(inner: number, length: number, payload: number, outerSource: number): boolean {
    const a = this.arena;
    const head = this.merged === 1 ? this.headStart : this.recordStart + VNET_HDR_LEN;
    const thl = length - IPV4_HEADER_LEN - payload;
    if (outerSource !== this.outerSource || thl !== this.thl || payload > this.mss) return false;
    if ((this.merged === 1 ? this.headLength : this.recordLength) + payload > MAX_IP_PACKET) return false;
    if (readU32(a, inner + 24) !== this.expectedSeq) return false;
    // TOS (byte 1), DF (byte 6), TTL (byte 8), addresses (12..20)
    if (a[inner + 1] !== a[head + 1] || ((a[inner + 6] ?? 0) & 0x40) !== ((a[head + 6] ?? 0) & 0x40) || a[inner + 8] !== a[head + 8]) return false;
    for (let i = 12; i < 20; i++) if (a[inner + i] !== a[head + i]) return false;
    const tcp = inner + IPV4_HEADER_LEN;
    const headTcp = head + IPV4_HEADER_LEN;
    // ports (0..4), ACK (8..12), data offset (12), window (14..16), options (20..thl)
    for (let i = 0; i < 4; i++) if (a[tcp + i] !== a[headTcp + i]) return false;
    for (let i = 8; i < 13; i++) if (a[tcp + i] !== a[headTcp + i]) return false;
    if (((a[tcp + 13] ?? 0) & ~TCP_PSH) !== ((a[headTcp + 13] ?? 0) & ~TCP_PSH)) return false;
    if (a[tcp + 14] !== a[headTcp + 14] || a[tcp + 15] !== a[headTcp + 15]) return false;
    for (let i = 20; i < thl; i++) if (a[tcp + i] !== a[headTcp + i]) return false;
    return true;
  }

  private append(inner: number, length: number, payload: number): void {
    const a = this.arena;
    const ip = this.recordStart + VNET_HDR_LEN;
    if (this.merged === 1) {
      a.copyWithin(ip, this.headStart, this.headStart + this.headLength);
      this.recordLength = this.headLength;
    }
    a.copyWithin(ip + this.recordLength, inner + length - payload, inner + length);
    this.recordLength += payload;
    this.merged++;
    this.expectedSeq = (this.expectedSeq + payload) >>> 0;
    this.pushed |= (a[inner + IPV4_HEADER_LEN + 13] ?? 0) & TCP_PSH;
  }
}

function writeLe16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
}
