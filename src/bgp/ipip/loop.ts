/**
 * The IPIP tunnel's packet loops, one worker thread per direction, each a tight loop of
 * blocking system calls through koffi on one preallocated arena (the udp backend's shape,
 * see src/flanneld/backend/udp-loop.ts for why threads and raw calls):
 *
 *   tx:  read(TUN) → peer of the inner destination → outer header (+ userspace TSO for a
 *        TCP super-packet) → one sendmmsg of all segments on an IP_HDRINCL raw socket
 *   rx:  recvmmsg(raw IPPROTO_IPIP socket, up to RX_BATCH packets) → drop unless the outer
 *        source is a peer → userspace GRO (packet.ts) → write(TUN)
 *
 * A raw socket cannot send GSO packets, so a 64 KB super-packet leaves as ~45 packets; what
 * keeps that cheap is one sendmmsg per super-packet (not a sendto per segment) and iovecs:
 * each segment is [its headers, built here][its payload, where the TUN read put it], so the
 * payload is touched once, by the checksum. Addresses inside the arena are computed once
 * (`bufferAddress`) and passed as integers: no per-packet buffers or subarrays.
 */
import { workerData } from 'node:worker_threads';
import { type AddressIo, addressIo, bufferAddress, IOVEC_SIZE, MMSGHDR_SIZE, MSG_WAITFORONE } from '../../lib/sys/libc.js';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN } from '../../lib/tun.js';
import { completeChecksum, IPV4_HEADER_LEN, MAX_IP_PACKET, TcpCoalescer, TcpSegmenter, writeHostUnreachable, writeOuterHeader } from './packet.js';
import { counterIndex, type CounterName, PeerTableReader } from './peers.js';

export interface LoopData {
  direction: 'tx' | 'rx';
  tunFd: number;
  /** tx: IPPROTO_RAW (header included); rx: IPPROTO_IPIP. */
  socketFd: number;
  /** This node's underlay address (outer source), as an unsigned 32-bit number. */
  localUnderlay: number;
  /** The tunnel device's address: source of the ICMP errors the tunnel sends. */
  tunnelAddress: number;
  peers: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

const EINTR = 4;
const EBADF = 9;
const EAGAIN = 11;
const EFAULT = 14;
/** sendmmsg takes at most UIO_MAXIOV messages. */
const MAX_SEGMENTS = 1024;
/** Header slot per segment: outer 20 + inner IP up to 60 + TCP up to 60, rounded to 8. */
const HEADER_STRIDE = 144;
const RX_BATCH = 64;
/** Any IPv4 packet fits (a kernel peer with a larger MTU, reassembled fragments). */
const RX_SLOT = 65536;
/** ICMP errors the tx loop may send per second (kernel: icmp_ratelimit, burst 6-ish). */
const ICMP_PER_SECOND = 10;
/** The TUN read lands at arena offset 2: the virtio header is 10 bytes and an IPv4 header a
 * multiple of 4, so TCP payloads start 4-aligned and the checksum runs on 32-bit words. */
const TX_READ_AT = 2;

type Bump = (name: CounterName, by?: number) => void;

function u64(words: Uint32Array, byteOffset: number, value: number): void {
  words[byteOffset >>> 2] = value % 0x100000000;
  words[(byteOffset >>> 2) + 1] = Math.floor(value / 0x100000000);
}

function run(data: LoopData): void {
  const io = addressIo();
  const counters = new Uint32Array(data.counters);
  const stopping = counterIndex('stopping');
  const bump: Bump = (name, by = 1) => void Atomics.add(counters, counterIndex(name), by);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  /** True to try again; false when the loop should end (stopping, or the device is gone). */
  const retryable = (): boolean => {
    const errno = io.errno();
    if (Atomics.load(counters, stopping) !== 0 || errno === EBADF || errno === EFAULT) return false;
    if (errno === EINTR || errno === EAGAIN) return true;
    bump('ioErrors');
    Atomics.wait(pause, 0, 0, 10); // a persistent error must not spin a core
    return true;
  };
  const peers = new PeerTableReader(data.peers);
  if (data.direction === 'tx') transmit(data, io, peers, bump, retryable);
  else receive(data, io, peers, bump, retryable);
}

function transmit(data: LoopData, io: AddressIo, peers: PeerTableReader, bump: Bump, retryable: () => boolean): void {
  // arena: [read area][header slots][mmsghdrs][iovecs][sockaddr][ICMP scratch]
  const readArea = TX_READ_AT;
  const readLength = VNET_HDR_LEN + MAX_IP_PACKET;
  const headers = Math.ceil((readArea + readLength) / 64) * 64;
  const msgs = headers + MAX_SEGMENTS * HEADER_STRIDE;
  const iovs = msgs + MAX_SEGMENTS * MMSGHDR_SIZE;
  const sockaddr = iovs + MAX_SEGMENTS * 2 * IOVEC_SIZE;
  const icmp = sockaddr + 64;
  const size = icmp + VNET_HDR_LEN + 128;
  const arena = Buffer.from(new ArrayBuffer(Math.ceil(size / 64) * 64));
  const words = new Uint32Array(arena.buffer);
  const base = bufferAddress(arena);
  const ip = readArea + VNET_HDR_LEN;
  for (let i = 0; i < MAX_SEGMENTS; i++) {
    const msg = msgs + i * MMSGHDR_SIZE;
    u64(words, msg, base + sockaddr); // msg_name
    words[(msg + 8) >>> 2] = 16; // msg_namelen
    u64(words, msg + 16, base + iovs + i * 2 * IOVEC_SIZE); // msg_iov
    u64(words, msg + 24, 2); // msg_iovlen
    u64(words, iovs + i * 2 * IOVEC_SIZE, base + headers + i * HEADER_STRIDE);
  }
  arena.writeUInt16LE(2, sockaddr); // AF_INET
  const segmenter = new TcpSegmenter(arena, words, headers, HEADER_STRIDE, MAX_SEGMENTS);
  let outerId = 0;
  let icmpTokens = ICMP_PER_SECOND;
  let icmpRefilled = Date.now();

  const send = (count: number): void => {
    let done = 0;
    while (done < count) {
      const sent = io.sendmmsg(data.socketFd, base + msgs + done * MMSGHDR_SIZE, count - done, 0);
      if (sent < 0) {
        if (io.errno() === EINTR) continue;
        // ENOBUFS/EMSGSIZE/...: the rest of this super-packet is lost; TCP resends it.
        bump('sendErrors');
        break;
      }
      done += sent;
      bump('sentPackets', sent);
    }
  };

  const unreachable = (length: number): void => {
    bump('droppedNoPeer');
    const now = Date.now();
    if (now - icmpRefilled >= 1000 / ICMP_PER_SECOND) {
      icmpTokens = Math.min(ICMP_PER_SECOND, icmpTokens + Math.floor(((now - icmpRefilled) * ICMP_PER_SECOND) / 1000));
      icmpRefilled = now;
    }
    // Never answer an ICMP error with one (RFC 1122 §3.2.2); the check is on the type.
    const isIcmpError = arena[ip + 9] === 1 && [3, 4, 5, 11, 12].includes(arena[ip + ((arena[ip] ?? 0) & 0x0f) * 4] ?? 0);
    if (icmpTokens <= 0 || isIcmpError || data.tunnelAddress === 0) return;
    icmpTokens--;
    arena.fill(0, icmp, icmp + VNET_HDR_LEN);
    const written = writeHostUnreachable(arena, icmp + VNET_HDR_LEN, ip, Math.min(length, 68), data.tunnelAddress);
    if (io.write(data.tunFd, base + icmp, VNET_HDR_LEN + written) < 0) bump('ioErrors');
    else bump('icmpUnreachableSent');
  };

  for (;;) {
    const length = io.read(data.tunFd, base + readArea, readLength);
    if (length < 0) {
      if (retryable()) continue;
      return;
    }
    bump('tunReads');
    const end = readArea + length;
    if (length < VNET_HDR_LEN + IPV4_HEADER_LEN || (arena[ip] ?? 0) >> 4 !== 4) {
      bump('droppedUnsupported');
      continue;
    }
    const peer = peers.lookup(arena.readUInt32BE(ip + 16));
    if (peer === 0) {
      unreachable(length - VNET_HDR_LEN);
      continue;
    }
    arena.writeUInt32BE(peer, sockaddr + 4);
    // virtio_net_hdr: flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16, csum_offset u16
    const gso = (arena[readArea + 1] ?? 0) & 0x7f; // 0x80 is the ECN bit: CWR handling is the same
    if (gso === VIRTIO_NET_HDR_GSO_NONE) {
      if (((arena[readArea] ?? 0) & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
        completeChecksum(arena, words, ip, end, arena.readUInt16LE(readArea + 6), arena.readUInt16LE(readArea + 8));
      }
      const innerLength = length - VNET_HDR_LEN;
      outerId = (outerId % 0xffff) + 1;
      writeOuterHeader(arena, headers, ip, IPV4_HEADER_LEN + innerLength, outerId, data.localUnderlay, peer);
      u64(words, iovs + 8, IPV4_HEADER_LEN);
      u64(words, iovs + IOVEC_SIZE, base + ip);
      u64(words, iovs + IOVEC_SIZE + 8, innerLength);
      send(1);
      continue;
    }
    const count = gso === VIRTIO_NET_HDR_GSO_TCPV4 ? segmenter.segment(ip, end, arena.readUInt16LE(readArea + 4), outerId, data.localUnderlay, peer) : 0;
    if (count === 0) {
      bump('droppedUnsupported'); // TCPv6 or UDP GSO cannot be in an IPv4 tunnel
      continue;
    }
    outerId = (outerId + count) % 0xffff;
    bump('superPackets');
    const headerLength = IPV4_HEADER_LEN + segmenter.layout.headerLength;
    for (let i = 0; i < count; i++) {
      const iov = iovs + i * 2 * IOVEC_SIZE;
      u64(words, iov + 8, headerLength);
      u64(words, iov + IOVEC_SIZE, base + segmenter.payloadStart(i));
      u64(words, iov + IOVEC_SIZE + 8, segmenter.payloadLength(i));
    }
    send(count);
  }
}

function receive(data: LoopData, io: AddressIo, peers: PeerTableReader, bump: Bump, retryable: () => boolean): void {
  // arena: [slots][record][mmsghdrs][iovecs]
  const slots = 0;
  const record = RX_BATCH * RX_SLOT;
  const msgs = record + Math.ceil((VNET_HDR_LEN + MAX_IP_PACKET) / 64) * 64;
  const iovs = msgs + RX_BATCH * MMSGHDR_SIZE;
  const size = iovs + RX_BATCH * IOVEC_SIZE;
  const arena = Buffer.from(new ArrayBuffer(Math.ceil(size / 64) * 64));
  const words = new Uint32Array(arena.buffer);
  const base = bufferAddress(arena);
  for (let i = 0; i < RX_BATCH; i++) {
    const msg = msgs + i * MMSGHDR_SIZE;
    u64(words, msg + 16, base + iovs + i * IOVEC_SIZE); // msg_iov; msg_name stays NULL
    u64(words, msg + 24, 1);
    u64(words, iovs + i * IOVEC_SIZE, base + slots + i * RX_SLOT);
    u64(words, iovs + i * IOVEC_SIZE + 8, RX_SLOT);
  }
  const coalescer = new TcpCoalescer(arena, words, record, (offset, length) => {
    if (io.write(data.tunFd, base + offset, length) < 0) bump('ioErrors');
    else bump('tunWrites');
  });
  let records = 0;
  let segments = 0;
  for (;;) {
    const count = io.recvmmsg(data.socketFd, base + msgs, RX_BATCH, MSG_WAITFORONE);
    if (count === 0) return; // shutdown(2) woke us: stop() is under way
    if (count < 0) {
      if (retryable()) continue;
      return;
    }
    // A shut-down socket "receives" a 0-byte datagram (recvmmsg counts it): no IP packet is empty.
    if ((words[(msgs + 56) >>> 2] ?? 0) === 0) return;
    bump('receivedPackets', count);
    for (let i = 0; i < count; i++) {
      const slot = slots + i * RX_SLOT;
      const length = words[(msgs + i * MMSGHDR_SIZE + 56) >>> 2] ?? 0; // msg_len
      const outerLength = ((arena[slot] ?? 0) & 0x0f) * 4;
      if (length < outerLength + IPV4_HEADER_LEN || outerLength < IPV4_HEADER_LEN) {
        bump('droppedMalformed');
        continue;
      }
      const source = arena.readUInt32BE(slot + 12);
      if (!peers.isPeer(source)) {
        bump('droppedUnknownPeer');
        continue;
      }
      const inner = slot + outerLength;
      const innerLength = arena.readUInt16BE(inner + 2);
      if ((arena[inner] ?? 0) >> 4 !== 4 || innerLength < IPV4_HEADER_LEN || innerLength > length - outerLength) {
        bump('droppedMalformed');
        continue;
      }
      coalescer.offer(inner, innerLength, source);
    }
    coalescer.flush();
    if (coalescer.coalescedRecords !== records) {
      bump('coalescedRecords', coalescer.coalescedRecords - records);
      bump('coalescedSegments', coalescer.coalescedSegments - segments);
      records = coalescer.coalescedRecords;
      segments = coalescer.coalescedSegments;
    }
  }
}

run(workerData as LoopData);
