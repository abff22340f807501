/**
 * The UDP listener's fast path: the socket is ours (socket/bind through koffi) and a worker
 * thread (udp-loop.ts) answers batches of queries from a mirror of the answer cache; what it
 * cannot answer comes back here as bytes plus sender, goes through the server's full handler,
 * and is sent with sendto on the same socket (sends from two threads on one UDP socket are
 * safe; each datagram is one call).
 *
 * Why: at 10k Services the answers are prepared, so a query's cost is Node's per-datagram
 * I/O — the bench (bench/dns.ts) measured 37% of a core in dgram's send path alone. Batching
 * is the lever the udp backend and the IPIP tunnel already pull (docs/flanneld.md).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { MessageChannel, Worker } from 'node:worker_threads';
import { hasErrno, PontoonError } from '../lib/errors.js';
import { parseIp } from '../lib/ip.js';
import type { Logger } from '../lib/log.js';
import * as libc from '../lib/sys/libc.js';
import type { AnswerCache, AnswerChanges } from './answers.js';
import type { DnsMetrics } from './metrics.js';
import { REPORT_EVERY_MS, type LoopReport, type MirrorUpdate, type UdpLoopData } from './udp-protocol.js';
import { workerScript } from '../lib/worker-script.js';

export class UdpFastPathError extends PontoonError {}

const STOP_TIMEOUT_MS = 2000;
const RESTART_DELAY_MS = 1000;

const loopScript = (): string => workerScript(import.meta.url, 'dns-udp-loop', 'udp-loop', 'DNS UDP loop');

function sockaddrFor(host: string, port: number): { family: number; sockaddr: Buffer } {
  const ip = parseIp(host);
  if (isIPv4(host)) return { family: libc.AF_INET, sockaddr: libc.sockaddrIn(Number(ip.value), port) };
  if (!isIPv6(host)) throw new UdpFastPathError(`not an IP address: ${host}`);
  const bytes = Buffer.alloc(16);
  let value = ip.value;
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return { family: libc.AF_INET6, sockaddr: libc.sockaddrIn6(bytes, port) };
}

/** Only what the worker can answer alone: ExternalName chases need the forwarder. */
function mirrored(changes: AnswerChanges): MirrorUpdate {
  return {
    set: changes.set.filter(([, answer]) => answer.externalTarget === undefined).map(([key, a, dynamic]) => [key, { rcode: a.rcode, wire: a.wire, questionEnd: a.questionEnd }, dynamic]),
    deleted: changes.deleted,
    dynamicCleared: changes.dynamicCleared,
  };
}

export interface UdpFastPathOptions {
  host: string;
  port: number;
  answers: AnswerCache;
  metrics: DnsMetrics;
  recursion: boolean;
  log: Logger;
  /** Answers one query the worker handed back; `reply` sends to its sender. */
  slowPath(message: Buffer, reply: (answer: Buffer) => void): void;
}

export class UdpFastPath {
  private fd: number | undefined;
  private worker: Worker | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly control = new Int32Array(new SharedArrayBuffer(4));
  private readonly io = libc.packetIo();

  constructor(private readonly options: UdpFastPathOptions) {}

  /** Binds and starts the loop; returns the bound port. */
  start(): number {
    const { host, port } = this.options;
    const { family, sockaddr } = sockaddrFor(host, port);
    const fd = libc.socket(family, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
    try {
      libc.bind(fd, sockaddr);
      const timeout = Buffer.alloc(16); // struct timeval
      timeout.writeBigInt64LE(BigInt(REPORT_EVERY_MS * 1000), 8);
      libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_RCVTIMEO, timeout);
    } catch (err) {
      libc.close(fd);
      throw err;
    }
    this.fd = fd;
    const bound = libc.boundPort(fd);
    this.startWorker(fd);
    return bound;
  }

  /**
   * A loop that dies (it should not: every error it can see is handled) is logged and
   * started again on the same socket a second later, with the whole mirror; meanwhile
   * queries wait in the socket's buffer.
   */
  private startWorker(fd: number): void {
    const { answers, metrics, log } = this.options;
    const channel = new MessageChannel();
    const workerData: UdpLoopData = { socketFd: fd, recursion: this.options.recursion, port: channel.port2, control: this.control.buffer as SharedArrayBuffer };
    const worker = new Worker(loopScript(), { workerData, transferList: [channel.port2] });
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('error', (err) => log.error({ err: String(err) }, 'DNS UDP loop failed'));
    worker.once('exit', () => {
      channel.port1.close();
      if (Atomics.load(this.control, 0) === 1 || this.fd !== fd) return;
      log.error('DNS UDP loop ended unasked; starting it again');
      setTimeout(() => {
        if (this.fd === fd) this.startWorker(fd);
      }, RESTART_DELAY_MS).unref();
    });
    worker.unref();
    answers.follow((changes) => channel.port1.postMessage(mirrored(changes)));
    channel.port1.on('message', (report: LoopReport) => {
      if (report.kind === 'query') {
        const sender = Buffer.from(report.sender);
        this.options.slowPath(Buffer.from(report.message), (answer) => this.sendTo(answer, sender));
      } else if (report.kind === 'metrics') {
        for (const [qtype, n] of report.requests) metrics.requests('udp', qtype, n);
        for (const [rcode, n] of report.responses) metrics.responses(rcode, n);
        for (const [qtype, seconds] of report.durations) metrics.durationsOf(qtype, seconds);
        answers.hits += report.requests.reduce((sum, [, n]) => sum + n, 0);
      } else {
        log.error({ errno: report.errno }, 'DNS UDP loop: recvmmsg failed');
      }
    });
    channel.port1.unref();
  }

  private sendTo(answer: Buffer, sender: Buffer): void {
    if (this.fd === undefined) return;
    if (this.io.sendto(this.fd, answer, answer.length, sender) < 0) this.options.log.debug({ errno: this.io.errno() }, 'UDP answer not sent');
  }

  /** Stops the loop (shutdown wakes its recvmmsg) and closes the socket. */
  async close(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return;
    Atomics.store(this.control, 0, 1);
    try {
      libc.shutdown(fd);
    } catch (err) {
      if (!hasErrno(err, 'ENOTCONN')) throw err;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
    const outcome = await Promise.race([this.exited.then(() => 'exited' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') await this.worker?.terminate();
    this.fd = undefined;
    libc.close(fd);
  }
}
