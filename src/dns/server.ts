/**
 * The DNS listeners: UDP and TCP on the same address (RFC 7766: TCP is not optional).
 *
 * One handler for both transports. Order of checks, each with the rcode its RFC names:
 *   short header, or QR set           → dropped (nothing trustworthy to answer to)
 *   opcode other than QUERY           → REFUSED
 *   qdcount ≠ 1, bad name, cut short  → FORMERR (RFC 1035 §4.1.1)
 *   EDNS version > 0                  → BADVERS (RFC 6891 §6.1.3)
 *   class other than IN               → REFUSED (we serve IN only)
 *   AXFR, IXFR, MAILA, MAILB          → NOTIMP (no zone transfers)
 *   in the cluster domain / our PTRs  → the prepared answer (answers.ts)
 *   elsewhere                         → forwarded, or SERVFAIL at once without an upstream
 * UDP answers larger than the client's size (512 without EDNS, else its OPT size capped at
 * 1232) go out truncated with TC, and the client asks again over TCP, where messages are
 * length-prefixed (RFC 1035 §4.2.2) and a connection may carry many queries, pipelined.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { hasErrno } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import * as dnsPacket from 'dns-packet';
import { renderFor, type AnswerCache, type PreparedAnswer } from './answers.js';
import type { Forwarder } from './forward.js';
import { UdpFastPath } from './udp-fast.js';
import type { DnsMetrics } from './metrics.js';
import {
  CLASS_IN,
  DnsQueryError,
  dottedFromWire,
  errorResponse,
  EXTENDED_RCODE_BADVERS,
  OPCODE_QUERY,
  RCODE,
  scanQuery,
  TYPE,
  writeOpt,
  type ScannedQuery,
  udpLimit,
} from './wire.js';

export interface DnsServerOptions {
  host: string;
  port: number;
  answers: AnswerCache;
  forwarder: Forwarder;
  metrics: DnsMetrics;
  log: Logger;
  /** Idle TCP connections are closed after this (RFC 7766 §6.2.3 suggests seconds). */
  tcpIdleMs?: number;
  /**
   * UDP through the batched worker loop (udp-fast.ts; default) or Node's dgram socket. The
   * loop falls back to dgram by itself when it cannot start.
   */
  udp?: 'batched' | 'dgram';
}

const MAX_TCP_MESSAGE = 65535;
/** Connections past this are closed at once, so idle clients cannot exhaust file descriptors. */
const MAX_TCP_CONNECTIONS = 1000;
const UNSUPPORTED_TYPES = new Set<number>([TYPE.AXFR, TYPE.IXFR, TYPE.MAILA, TYPE.MAILB]);

type Reply = (answer: Buffer) => void;

export class DnsServer {
  private udp: UdpSocket | undefined;
  private fast: UdpFastPath | undefined;
  private tcp: Server | undefined;
  private readonly connections = new Set<Socket>();

  constructor(private readonly options: DnsServerOptions) {}

  async listen(): Promise<{ udpPort: number; tcpPort: number }> {
    const { host, port } = this.options;
    const udpPort = (this.options.udp ?? 'batched') === 'batched' ? this.listenBatched() : undefined;
    const boundUdp = udpPort ?? (await this.listenDgram());
    const tcp = createServer((socket) => this.serveTcp(socket));
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      // Port 0 (tests): TCP on the port UDP got, so one port serves both.
      tcp.listen(port === 0 ? boundUdp : port, host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    const address = tcp.address();
    return { udpPort: boundUdp, tcpPort: typeof address === 'object' && address ? address.port : 0 };
  }

  /** How UDP is served, once listening. */
  get udpMode(): 'batched' | 'dgram' | undefined {
    return this.fast ? 'batched' : this.udp ? 'dgram' : undefined;
  }

  /** The worker loop; undefined (and a warning) when it cannot start, e.g. without koffi. */
  private listenBatched(): number | undefined {
    const { host, port, answers, metrics, forwarder, log } = this.options;
    const fast = new UdpFastPath({ host, port, answers, metrics, recursion: forwarder.enabled, log, slowPath: (message, reply) => this.handle(message, 'udp', reply) });
    try {
      const bound = fast.start();
      this.fast = fast;
      return bound;
    } catch (err) {
      // A port in use is the user's to fix, not a reason to try another socket type.
      if (hasErrno(err, 'EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL')) throw err;
      log.warn({ err: String(err) }, 'batched UDP unavailable; serving UDP through dgram');
      return undefined;
    }
  }

  private async listenDgram(): Promise<number> {
    const { host, port } = this.options;
    const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    this.udp = udp;
    udp.on('message', (message: Buffer, rinfo: RemoteInfo) => {
      this.handle(message, 'udp', (answer) => udp.send(answer, rinfo.port, rinfo.address));
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (err) => this.options.log.warn({ err: String(err) }, 'udp socket error'));
    return udp.address().port;
  }

  close(): void {
    void this.fast?.close();
    this.fast = undefined;
    this.udp?.close();
    this.tcp?.close();
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
  }

  private serveTcp(socket: Socket): void {
    if (this.connections.size >= MAX_TCP_CONNECTIONS) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.options.tcpIdleMs ?? 10_000, () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    const reply: Reply = (answer) => {
      if (socket.destroyed) return;
      const framed = Buffer.allocUnsafe(answer.length + 2);
      framed.writeUInt16BE(answer.length, 0);
      answer.copy(framed, 2);
      socket.write(framed);
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        this.handle(message, 'tcp', reply);
      }
    });
  }

  /** One query from either transport; `reply` sends on the transport it came by. */
  private handle(message: Buffer, proto: 'udp' | 'tcp', reply: Reply): void {
    const started = process.hrtime.bigint();
    const { metrics, answers, forwarder } = this.options;
    const recursion = forwarder.enabled;
    let query: ScannedQuery | undefined;
    try {
      query = scanQuery(message);
    } catch (err) {
      if (!(err instanceof DnsQueryError)) throw err;
      metrics.request(proto, 0);
      this.finish(reply, errorResponse(message, undefined, err.rcode, recursion), err.rcode, 0, started);
      return;
    }
    if (!query) {
      metrics.dropped++;
      return;
    }
    metrics.request(proto, query.qtype);
    if (query.opcode !== OPCODE_QUERY) return this.finish(reply, errorResponse(message, undefined, RCODE.REFUSED, recursion), RCODE.REFUSED, 0, started);
    if (query.edns && query.edns.version > 0) return this.finish(reply, badVersion(message, query, recursion), RCODE.NOERROR, query.qtype, started);
    if (query.qclass !== CLASS_IN) return this.finish(reply, errorResponse(message, query, RCODE.REFUSED, recursion), RCODE.REFUSED, query.qtype, started);
    if (UNSUPPORTED_TYPES.has(query.qtype)) return this.finish(reply, errorResponse(message, query, RCODE.NOTIMP, recursion), RCODE.NOTIMP, query.qtype, started);
    const scanned = query;
    const answer = answers.lookup(scanned.key, () => dottedFromWire(message, scanned.nameStart, scanned.nameEnd), scanned.qtype);
    if (answer === undefined) return this.finish(reply, errorResponse(message, query, RCODE.REFUSED, recursion), RCODE.REFUSED, query.qtype, started);
    if (answer === 'forward') {
      this.forward(message, scanned, proto, reply, started);
      return;
    }
    if (answer.externalTarget !== undefined && forwarder.enabled) {
      this.chase(message, scanned, answer, answer.externalTarget, proto, reply, started);
      return;
    }
    const limit = proto === 'tcp' ? MAX_TCP_MESSAGE : udpLimit(scanned);
    this.finish(reply, renderFor(answer, scanned.edns !== undefined, limit, message, scanned.nameStart, scanned.nameEnd, recursion), answer.rcode, scanned.qtype, started);
  }

  private forward(message: Buffer, query: ScannedQuery, proto: 'udp' | 'tcp', reply: Reply, started: bigint): void {
    const { forwarder, log } = this.options;
    if (!forwarder.enabled) {
      this.finish(reply, errorResponse(message, query, RCODE.SERVFAIL, false), RCODE.SERVFAIL, query.qtype, started);
      return;
    }
    forwarder.forward(message, query.questionEnd, proto === 'tcp').then(
      (answer) => {
        if (answer) this.finish(reply, answer, (answer[3] ?? 0) & 0xf, query.qtype, started);
        else this.finish(reply, errorResponse(message, query, RCODE.SERVFAIL, true), RCODE.SERVFAIL, query.qtype, started);
      },
      (err: unknown) => {
        log.warn({ err: String(err) }, 'forwarding failed');
        this.finish(reply, errorResponse(message, query, RCODE.SERVFAIL, true), RCODE.SERVFAIL, query.qtype, started);
      },
    );
  }

  /** CNAME to outside the cluster: our answer plus the upstream's records for the target. */
  private chase(message: Buffer, query: ScannedQuery, answer: PreparedAnswer, target: string, proto: 'udp' | 'tcp', reply: Reply, started: bigint): void {
    const ask = dnsPacket.encode({ id: 0, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: target, type: `UNKNOWN_${query.qtype}` as dnsPacket.RecordType, class: 'IN' }] });
    const questionEnd = ask.length;
    const send = (records: dnsPacket.Answer[]): void => {
      const ours = dnsPacket.decode(answer.wire);
      // Same question, so the same questionEnd; renderFor adds the OPT and truncates as for any answer.
      const combined = { wire: dnsPacket.encode({ ...ours, answers: [...(ours.answers ?? []), ...records] }), questionEnd: answer.questionEnd };
      const limit = proto === 'tcp' ? MAX_TCP_MESSAGE : udpLimit(query);
      this.finish(reply, renderFor(combined, query.edns !== undefined, limit, message, query.nameStart, query.nameEnd, true), answer.rcode, query.qtype, started);
    };
    this.options.forwarder.forward(ask, questionEnd, proto === 'tcp').then(
      (upstreamReply) => {
        let records: dnsPacket.Answer[] = [];
        try {
          records = upstreamReply ? (dnsPacket.decode(upstreamReply).answers ?? []) : [];
        } catch {
          // An undecodable upstream reply adds nothing; the client still gets the CNAME.
        }
        send(records);
      },
      () => send([]),
    );
  }

  private finish(reply: Reply, answer: Buffer, rcode: number, qtype: number, started: bigint): void {
    reply(answer);
    this.options.metrics.response(rcode, qtype, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/** RFC 6891 §6.1.3: header rcode 0, the OPT carries the upper bits of BADVERS (16). */
function badVersion(message: Buffer, query: ScannedQuery, recursion: boolean): Buffer {
  const out = errorResponse(message, query, RCODE.NOERROR, recursion);
  writeOpt(out, query.questionEnd, EXTENDED_RCODE_BADVERS);
  return out;
}
