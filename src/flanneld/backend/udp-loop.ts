/**
 * The udp backend's packet loops, one worker thread per direction, each a tight loop of
 * blocking system calls through koffi:
 *
 *   tx:  read(TUN) → look up the destination subnet → sendto(UDP, peer:8285)
 *   rx:  recvfrom(UDP) → reassemble records (udp-records.ts) → write(TUN)
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
import { MAX_RECORD, RecordAssembler } from './udp-records.js';

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

  if (data.direction === 'rx') {
    // Reads may glue several records together (UDP_GRO) or hold part of one; the assembler
    // hands back whole records. A plain record goes into an offload TUN behind a zero
    // header, written over the bytes just before it: the previous record (already written)
    // or the spare room at the front of the buffer.
    const zeroHeader = Buffer.alloc(VNET_HDR_LEN);
    const sink = {
      record(from: Buffer, offset: number, length: number): void {
        const plain = (from[offset] ?? 0) >= 0x10;
        let written: number;
        if (plain && data.offload) {
          if (offset >= VNET_HDR_LEN) {
            zeroHeader.copy(from, offset - VNET_HDR_LEN);
            written = io.write(data.tunFd, from.subarray(offset - VNET_HDR_LEN), length + VNET_HDR_LEN);
          } else {
            const staged = Buffer.concat([zeroHeader, from.subarray(offset, offset + length)]);
            written = io.write(data.tunFd, staged, staged.length);
          }
        } else if (plain || data.offload) {
          written = io.write(data.tunFd, offset === 0 ? from : from.subarray(offset), length);
        } else {
          bump('droppedIncompatible');
          return;
        }
        if (written < 0) bump('ioErrors');
      },
      corrupt: () => bump('droppedIncompatible'),
    };
    const assemblers = new Map<number, RecordAssembler>();
    const source = Buffer.alloc(16);
    const sourceLength = Buffer.alloc(4);
    const readBuffer = Buffer.alloc(VNET_HDR_LEN + 2 * MAX_RECORD);
    const readArea = readBuffer.subarray(VNET_HDR_LEN);
    for (;;) {
      const length = io.recvfrom(data.socketFd, readArea, readArea.length, source, sourceLength);
      if (length < 0) {
        if (retryable()) continue;
        return;
      }
      bump('receivedDatagrams');
      const sender = source.readUInt32BE(4);
      let assembler = assemblers.get(sender);
      if (!assembler) assemblers.set(sender, (assembler = new RecordAssembler(sink)));
      assembler.push(readBuffer, VNET_HDR_LEN, VNET_HDR_LEN + length);
    }
  }

  const peers = new PeerTable(data.layout, data.peers);
  const buffer = Buffer.alloc(MAX_RECORD);
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
