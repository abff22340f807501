/**
 * The udp backend's packet loops, one worker thread per direction, each a tight loop of
 * blocking system calls through koffi:
 *
 *   tx:  read(TUN) → look up the destination subnet → sendto(UDP, peer:8285)
 *   rx:  recvfrom(UDP) → units and records (udp-records.ts) → write(TUN)
 *
 * Why threads and raw calls instead of Node's dgram and fs: the event-loop path costs a
 * thread-pool hand-off per TUN read, an eventfd wake-up, a send request object and a fresh
 * 64 KB Buffer per received datagram (garbage for the collector). Here each direction owns one
 * preallocated buffer, and the two directions run on both cores at once. Packets stay in
 * order because each direction has exactly one reader.
 */
import { workerData } from 'node:worker_threads';
import { type PacketIo, packetIo, sockaddrIn } from '../../lib/sys/libc.js';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VNET_HDR_LEN } from '../../lib/tun.js';
import { counterIndex, type CounterName, PEER_OFFLOAD, PEER_PRESENT, PeerTable, type PeerTableLayout } from './udp-peers.js';
import { completeChecksum, frameRecord, framedLength, MAX_RECORD, RecordReassembler, SEGMENT_MAGIC, unitLength } from './udp-records.js';

export interface LoopData {
  direction: 'tx' | 'rx';
  tunFd: number;
  socketFd: number;
  offload: boolean;
  port: number;
  /** Datagram payload size the socket's UDP_SEGMENT cuts at (underlay MTU − 28). */
  segmentSize: number;
  layout: PeerTableLayout;
  peers: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

const EINTR = 4;
const EAGAIN = 11;
const EBADF = 9;
/** How long a sender's "is this a peer?" answer is trusted before the table is read again. */
const SENDER_CHECK_MS = 1000;
/** 65535 − IPv4 header − UDP header. */
const MAX_UDP_PAYLOAD = 65507;

function run(data: LoopData): void {
  const io = packetIo();
  const counters = new Uint32Array(data.counters);
  const bump = (name: CounterName): void => void Atomics.add(counters, counterIndex(name), 1);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  /** True to try again; false when the descriptor is gone (the daemon is stopping). */
  const retryable = (): boolean => {
    const errno = io.errno();
    if (errno === EINTR || errno === EAGAIN) return true;
    if (errno === EBADF || Atomics.load(counters, counterIndex('stopping')) !== 0) return false;
    bump('ioErrors');
    Atomics.wait(pause, 0, 0, 10); // a persistent error must not spin a core
    return true;
  };
  const peers = new PeerTable(data.layout, data.peers);
  return data.direction === 'rx' ? receive(data, io, peers, bump, retryable) : transmit(data, io, peers, bump, retryable);
}

type Bump = (name: CounterName) => void;

/** recvfrom(UDP) → units → TUN. Only peers in the lease table are heard. */
function receive(data: LoopData, io: PacketIo, peers: PeerTable, bump: Bump, retryable: () => boolean): void {
  const source = Buffer.alloc(16);
  const sourceLength = Buffer.alloc(4);
  // Spare room in front of the read area: a plain packet at offset 0 still has room for the
  // zero virtio header an offloading TUN expects.
  const readBuffer = Buffer.alloc(VNET_HDR_LEN + 2 * MAX_RECORD);
  const readArea = readBuffer.subarray(VNET_HDR_LEN);
  const senders = new Map<number, { allowedUntil: number; allowed: boolean; reassembler?: RecordReassembler }>();
  const dropRecord = (): void => bump('droppedIncomplete');
  for (;;) {
    const length = io.recvfrom(data.socketFd, readArea, readArea.length, source, sourceLength);
    if (length <= 0) {
      if (length === 0 || !retryable()) return;
      continue;
    }
    bump('receivedDatagrams');
    const address = source.readUInt32BE(4);
    const now = Date.now();
    let sender = senders.get(address);
    if (!sender || sender.allowedUntil < now) {
      const allowed = peers.hasUnderlay(address);
      sender = { allowedUntil: now + SENDER_CHECK_MS, allowed, ...(sender?.reassembler ? { reassembler: sender.reassembler } : {}) };
      if (allowed) senders.set(address, sender);
      else senders.delete(address);
    }
    if (!sender.allowed) {
      bump('droppedUnknownSender');
      continue;
    }
    const end = VNET_HDR_LEN + length;
    for (let offset = VNET_HDR_LEN; offset < end; ) {
      const unit = unitLength(readBuffer, offset, end);
      if (unit < 0) {
        bump('droppedCorrupt');
        break;
      }
      if (readBuffer[offset] === SEGMENT_MAGIC) {
        if (!data.offload) bump('droppedIncompatible');
        else {
          const reassembler = (sender.reassembler ??= new RecordReassembler());
          const record = reassembler.add(readBuffer, offset, dropRecord);
          if (record > 0 && io.write(data.tunFd, reassembler.record, record) < 0) bump('ioErrors');
        }
      } else if (data.offload) {
        // The bytes before a unit belong to one already handled (or to the spare room).
        readBuffer.fill(0, offset - VNET_HDR_LEN, offset);
        if (io.write(data.tunFd, offset === VNET_HDR_LEN ? readBuffer : readBuffer.subarray(offset - VNET_HDR_LEN), unit + VNET_HDR_LEN) < 0) bump('ioErrors');
      } else if (io.write(data.tunFd, offset === VNET_HDR_LEN ? readArea : readBuffer.subarray(offset), unit) < 0) {
        bump('ioErrors');
      }
      offset += unit;
    }
  }
}

/** read(TUN) → choose the peer → plain packet, or a record in segments, → sendto(UDP). */
function transmit(data: LoopData, io: PacketIo, peers: PeerTable, bump: Bump, retryable: () => boolean): void {
  const header = data.offload ? VNET_HDR_LEN : 0;
  const buffer = Buffer.alloc(MAX_RECORD);
  const ipPacket = buffer.subarray(header);
  const framed = Buffer.alloc(framedLength(MAX_RECORD, data.segmentSize));
  const sockaddrs = new Map<number, Buffer>();
  const sendRun = Math.floor(MAX_UDP_PAYLOAD / data.segmentSize) * data.segmentSize;
  let seq = 0;
  for (;;) {
    const length = io.read(data.tunFd, buffer, buffer.length);
    if (length < 0) {
      if (retryable()) continue;
      return;
    }
    bump('tunPackets');
    if (length < header + 20 || (buffer[header] ?? 0) >> 4 !== 4) continue;
    const slot = peers.slotOf(buffer.readUInt32BE(header + 16));
    const flags = slot < 0 ? 0 : peers.flags(slot);
    if ((flags & PEER_PRESENT) === 0) {
      bump('droppedNoRoute');
      continue;
    }
    const underlay = peers.underlay(slot);
    let sockaddr = sockaddrs.get(underlay);
    if (!sockaddr) sockaddrs.set(underlay, (sockaddr = sockaddrIn(underlay, data.port)));
    // virtio_net_hdr: flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16, csum_offset u16
    const needsChecksum = data.offload && ((buffer[0] ?? 0) & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
    const segmented = data.offload && (buffer[1] ?? 0) !== VIRTIO_NET_HDR_GSO_NONE;
    let sent: number;
    if (!needsChecksum && !segmented) {
      sent = io.sendto(data.socketFd, ipPacket, length - header, sockaddr);
    } else if ((flags & PEER_OFFLOAD) !== 0) {
      // A 64 KB record plus segment headers can exceed one UDP send (65507 bytes): send it in
      // runs of whole segments; the receiver places each by its offset.
      const total = frameRecord(buffer, length, seq++, data.segmentSize, framed);
      sent = 0;
      for (let from = 0; from < total && sent >= 0; from += sendRun) {
        sent = io.sendto(data.socketFd, from === 0 ? framed : framed.subarray(from), Math.min(sendRun, total - from), sockaddr);
      }
    } else if (!segmented) {
      // A peer without offload (flannel itself) gets a finished, plain packet.
      completeChecksum(buffer, header, length, buffer.readUInt16LE(6), buffer.readUInt16LE(8));
      sent = io.sendto(data.socketFd, ipPacket, length - header, sockaddr);
    } else {
      bump('droppedIncompatible'); // a 64 KB TCP super-packet cannot go to a peer that cannot take one
      continue;
    }
    // A failed send loses one packet (TCP resends it); retrying or pausing would stall the rest.
    if (sent < 0) bump('sendErrors');
    else bump('sentDatagrams');
  }
}

run(workerData as LoopData);
