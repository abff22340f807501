/**
 * The UDP fast path's loop, in a worker thread: one recvmmsg takes every query queued on the
 * socket (up to BATCH), each is answered from a mirror of the prepared answers, and one
 * sendmmsg sends every reply. Node's dgram costs a recv and a send system call, a Buffer, an
 * rinfo object and a send request per datagram on the main thread; here a busy second costs
 * two calls per batch and no allocation but a subarray per query. Same shape as the IPIP and
 * udp-backend loops (preallocated arena, addresses as integers, blocking calls via koffi).
 *
 * Only what the mirror can answer is answered here: a query whose key is held, class IN, EDNS
 * version 0 or none. Everything else — errors, forwarding, ExternalName chasing, answers not
 * built yet — goes to the main thread as it came (bytes and sender address), which answers
 * it with the full handler and sends with sendto on this same socket.
 *
 * Mirror updates arrive on a MessagePort and are applied before each batch is answered, so
 * a query that arrives after a change sees it; a stop flag in shared memory plus shutdown(2)
 * on the socket ends the loop.
 */
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { addressIo, bufferAddress, MMSGHDR_SIZE, MSG_WAITFORONE, IOVEC_SIZE, SOCKADDR_IN6_SIZE } from '../lib/sys/libc.js';
import { renderInto } from './answers.js';
import { REPORT_EVERY_MS, type LoopReport, type MirroredAnswer, type MirrorUpdate, type UdpLoopData } from './udp-protocol.js';
import { CLASS_IN, OPCODE_QUERY, scanQuery, udpLimit } from './wire.js';

export const BATCH = 64;
/** Queries are small; one larger than this (MSG_TRUNC) is not a query we could answer anyway. */
const RX_SLOT = 4096;
/** Our UDP answers never exceed ADVERTISED_UDP_BYTES (1232). */
const TX_SLOT = 2048;
const ADDR_SLOT = 32;
const MSG_TRUNC = 0x20;
const EINTR = 4;
const EAGAIN = 11;
/** Latency samples kept per report per type: enough for the histogram's shape. */
const SAMPLES_PER_REPORT = 2000;

const RX_MSGS = 0;
const RX_IOV = RX_MSGS + BATCH * MMSGHDR_SIZE;
const RX_ADDR = RX_IOV + BATCH * IOVEC_SIZE;
const RX_DATA = RX_ADDR + BATCH * ADDR_SLOT;
const TX_MSGS = RX_DATA + BATCH * RX_SLOT;
const TX_IOV = TX_MSGS + BATCH * MMSGHDR_SIZE;
const TX_DATA = TX_IOV + BATCH * IOVEC_SIZE;
const ARENA = TX_DATA + BATCH * TX_SLOT;

function u64(arena: Buffer, offset: number, value: number): void {
  arena.writeUInt32LE(value % 0x100000000, offset);
  arena.writeUInt32LE(Math.floor(value / 0x100000000), offset + 4);
}

/** Posted Buffers arrive as plain Uint8Arrays: view them as Buffers again (no copy). */
function asBuffers(answer: MirroredAnswer): MirroredAnswer {
  const view = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { rcode: answer.rcode, wire: view(answer.wire), questionEnd: answer.questionEnd };
}

class Tally {
  private requests = new Map<number, number>();
  private responses = new Map<number, number>();
  private durations = new Map<number, number[]>();
  private since = performance.now();

  count(qtype: number, rcode: number, seconds: number): void {
    this.requests.set(qtype, (this.requests.get(qtype) ?? 0) + 1);
    this.responses.set(rcode, (this.responses.get(rcode) ?? 0) + 1);
    let list = this.durations.get(qtype);
    if (!list) this.durations.set(qtype, (list = []));
    if (list.length < SAMPLES_PER_REPORT) list.push(seconds);
  }

  /** The counts since the last report, when one is due. */
  due(now: number): LoopReport | undefined {
    if (now - this.since < REPORT_EVERY_MS || this.requests.size === 0) return undefined;
    const report: LoopReport = { kind: 'metrics', requests: [...this.requests], responses: [...this.responses], durations: [...this.durations] };
    this.requests = new Map();
    this.responses = new Map();
    this.durations = new Map();
    this.since = now;
    return report;
  }
}

function run(data: UdpLoopData): void {
  const io = addressIo();
  const control = new Int32Array(data.control);
  const arena = Buffer.alloc(ARENA);
  const base = bufferAddress(arena);
  const prepared = new Map<string, MirroredAnswer>();
  const dynamic = new Map<string, MirroredAnswer>();
  const tally = new Tally();
  for (let i = 0; i < BATCH; i++) {
    const rx = RX_MSGS + i * MMSGHDR_SIZE;
    u64(arena, rx, base + RX_ADDR + i * ADDR_SLOT); // msg_name
    u64(arena, rx + 16, base + RX_IOV + i * IOVEC_SIZE); // msg_iov
    u64(arena, rx + 24, 1); // msg_iovlen
    u64(arena, RX_IOV + i * IOVEC_SIZE, base + RX_DATA + i * RX_SLOT);
    u64(arena, RX_IOV + i * IOVEC_SIZE + 8, RX_SLOT);
    const tx = TX_MSGS + i * MMSGHDR_SIZE;
    u64(arena, tx + 16, base + TX_IOV + i * IOVEC_SIZE);
    u64(arena, tx + 24, 1);
    u64(arena, TX_IOV + i * IOVEC_SIZE, base + TX_DATA + i * TX_SLOT);
  }
  const apply = (update: MirrorUpdate): void => {
    if (update.dynamicCleared) dynamic.clear();
    for (const key of update.deleted) prepared.delete(key);
    for (const [key, answer, isDynamic] of update.set) (isDynamic ? dynamic : prepared).set(key, asBuffers(answer));
  };
  const post = (report: LoopReport): void => data.port.postMessage(report);

  for (;;) {
    for (let i = 0; i < BATCH; i++) arena.writeUInt32LE(ADDR_SLOT, RX_MSGS + i * MMSGHDR_SIZE + 8); // msg_namelen, in/out
    const received = io.recvmmsg(data.socketFd, base + RX_MSGS, BATCH, MSG_WAITFORONE);
    if (Atomics.load(control, 0) === 1) return;
    if (received < 0) {
      const errno = io.errno();
      // EAGAIN: SO_RCVTIMEO (REPORT_EVERY_MS) passed with no query; report what is pending,
      // so the counts reach /metrics on an idle server too.
      if (errno === EAGAIN) {
        const report = tally.due(performance.now());
        if (report) post(report);
        continue;
      }
      if (errno === EINTR) continue;
      post({ kind: 'failed', errno });
      return;
    }
    if (received === 0) continue;
    for (let update = receiveMessageOnPort(data.port); update; update = receiveMessageOnPort(data.port)) apply(update.message as MirrorUpdate);
    const started = performance.now();
    let replies = 0;
    const answered: [qtype: number, rcode: number][] = [];
    for (let i = 0; i < received; i++) {
      const rx = RX_MSGS + i * MMSGHDR_SIZE;
      const length = arena.readUInt32LE(rx + 56);
      const flags = arena.readInt32LE(rx + 48);
      const namelen = Math.min(arena.readUInt32LE(rx + 8), SOCKADDR_IN6_SIZE);
      if (flags & MSG_TRUNC) continue;
      const message = arena.subarray(RX_DATA + i * RX_SLOT, RX_DATA + i * RX_SLOT + length);
      let answer: MirroredAnswer | undefined;
      let query: ReturnType<typeof scanQuery>;
      try {
        query = scanQuery(message);
        if (query && query.opcode === OPCODE_QUERY && query.qclass === CLASS_IN && (query.edns === undefined || query.edns.version === 0)) {
          answer = prepared.get(query.key) ?? dynamic.get(query.key);
        }
      } catch {
        query = undefined; // FORMERR and friends: the main thread words the error
      }
      if (!answer || !query) {
        const sender = arena.subarray(RX_ADDR + i * ADDR_SLOT, RX_ADDR + i * ADDR_SLOT + namelen);
        post({ kind: 'query', message: new Uint8Array(message), sender: new Uint8Array(sender) });
        continue;
      }
      const tx = TX_MSGS + replies * MMSGHDR_SIZE;
      const written = renderInto(arena, TX_DATA + replies * TX_SLOT, answer, query.edns !== undefined, udpLimit(query), message, query.nameStart, query.nameEnd, data.recursion);
      u64(arena, TX_IOV + replies * IOVEC_SIZE + 8, written);
      u64(arena, tx, base + RX_ADDR + i * ADDR_SLOT);
      arena.writeUInt32LE(namelen, tx + 8);
      answered.push([query.qtype, answer.rcode]);
      replies++;
    }
    for (let sent = 0; sent < replies; ) {
      const n = io.sendmmsg(data.socketFd, base + TX_MSGS + sent * MMSGHDR_SIZE, replies - sent, 0);
      if (n < 0) {
        if (io.errno() === EINTR) continue;
        break; // a full socket buffer: UDP may drop, the client asks again
      }
      sent += n;
    }
    const now = performance.now();
    const seconds = (now - started) / 1000;
    for (const [qtype, rcode] of answered) tally.count(qtype, rcode, seconds);
    const report = tally.due(now);
    if (report) post(report);
  }
}

run(workerData as UdpLoopData);
