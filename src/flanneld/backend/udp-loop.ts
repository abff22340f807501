/**
 * The udp backend's packet loops, one worker thread per direction, each a tight loop of
 * blocking system calls through koffi:
 *
 *   tx:  read(TUN) → look up the destination subnet → sendto(UDP, peer:8285)
 *   rx:  recv(UDP) → write(TUN)
 *
 * Why threads and raw calls instead of Node's dgram and fs: the event-loop path costs a
 * thread-pool hand-off per TUN read, an eventfd wake-up, a send request object and a fresh
 * 64 KB Buffer per received datagram (garbage for the collector). Here each direction owns one
 * preallocated buffer, and the two directions run on both cores at once. Packets stay in
 * order because each direction has exactly one reader.
 */
import { workerData } from 'node:worker_threads';
import { packetIo, sockaddrIn } from '../../lib/sys/libc.js';
import { VNET_HDR_LEN } from '../../lib/tun.js';
import { counterIndex, PEER_OFFLOAD, PEER_PRESENT, PeerTable, type PeerTableLayout } from './udp-peers.js';

export interface LoopData {
  direction: 'tx' | 'rx';
  tunFd: number;
  socketFd: number;
  offload: boolean;
  port: number;
  layout: PeerTableLayout;
  peers: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

const MAX_PACKET = 65535;
const EINTR = 4;
const EAGAIN = 11;

function run(data: LoopData): void {
  const io = packetIo();
  const counters = new Uint32Array(data.counters);
  const bump = (name: Parameters<typeof counterIndex>[0]): void => void Atomics.add(counters, counterIndex(name), 1);
  const retryable = (): boolean => {
    const errno = io.errno();
    if (errno === EINTR || errno === EAGAIN) return true;
    bump('ioErrors');
    return errno !== 9; // EBADF: the daemon closed the descriptor, stop
  };
  const header = data.offload ? VNET_HDR_LEN : 0;
  // Room for a virtio header in front of what we receive, so a plain packet can be prefixed
  // with zeros without copying it.
  const buffer = Buffer.alloc(VNET_HDR_LEN + MAX_PACKET);
  const afterHeader = buffer.subarray(VNET_HDR_LEN);

  if (data.direction === 'rx') {
    for (;;) {
      const length = io.recv(data.socketFd, afterHeader, MAX_PACKET);
      if (length < 0) {
        if (retryable()) continue;
        return;
      }
      bump('receivedDatagrams');
      const version = (afterHeader[0] ?? 0) >> 4;
      const plain = version === 4 || version === 6;
      // The first VNET_HDR_LEN bytes of `buffer` are never written: they stay a zero header.
      if (plain && data.offload) io.write(data.tunFd, buffer, length + VNET_HDR_LEN);
      else if (plain || data.offload) io.write(data.tunFd, afterHeader, length);
      else bump('droppedIncompatible');
    }
  }

  const peers = new PeerTable(data.layout, data.peers);
  const ipPacket = buffer.subarray(header);
  const sockaddrs = new Map<number, Buffer>();
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
    // An all-zero virtio header means "plain packet": send it the way flannel does.
    const plain = !data.offload || (buffer.readUInt32LE(0) === 0 && buffer.readUInt32LE(4) === 0 && buffer.readUInt16LE(8) === 0);
    if (!plain && (flags & PEER_OFFLOAD) === 0) {
      bump('droppedIncompatible');
      continue;
    }
    const underlay = peers.underlay(slot);
    let sockaddr = sockaddrs.get(underlay);
    if (!sockaddr) sockaddrs.set(underlay, (sockaddr = sockaddrIn(underlay, data.port)));
    const sent = plain ? io.sendto(data.socketFd, ipPacket, length - header, sockaddr) : io.sendto(data.socketFd, buffer, length, sockaddr);
    if (sent < 0) retryable();
    else bump('sentDatagrams');
  }
}

run(workerData as LoopData);
