/**
 * Forwarding of names outside the cluster domain to `--upstream` servers, like CoreDNS's
 * `forward` plugin in its simplest policy: the query goes out as received (so the upstream
 * sees the client's EDNS size and flags) under an id of ours, to the next upstream in turn;
 * an upstream that does not answer within the timeout is skipped for the next; when all fail
 * the client gets SERVFAIL. A reply must match our id and the question's bytes, or it is
 * ignored (RFC 5452 §9.1). A TCP client's query goes over TCP, one connection per query.
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import { PontoonError } from '../lib/errors.js';
import { HEADER_BYTES } from './wire.js';

export class UpstreamError extends PontoonError {}

export interface Upstream {
  host: string;
  port: number;
  /** `host:port` for logs and metric labels. */
  label: string;
}

/** `IP[:port]`, `[v6]:port` or a bare IPv6 address; port 53 by default. */
export function parseUpstream(text: string): Upstream {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([^:]+)(?::(\d+))?$/.exec(text);
  const [host, portText] = bracketed ? [bracketed[1], bracketed[2]] : plain ? [plain[1], plain[2]] : isIPv6(text) ? [text, undefined] : [undefined, undefined];
  const port = portText === undefined ? 53 : Number(portText);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new UpstreamError(`--upstream must be IP[:port], got "${text}"`);
  return { host, port, label: isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}` };
}

interface Pending {
  resolve: (reply: Buffer | undefined) => void;
  question: Buffer;
  timer: NodeJS.Timeout;
}

export interface ForwardObserver {
  (upstream: string, outcome: 'answered' | 'timeout'): void;
}

export class Forwarder {
  private readonly udp4: UdpSocket;
  private readonly udp6: UdpSocket;
  private readonly pending = new Map<number, Pending>();
  private nextUpstream = 0;

  constructor(
    private readonly upstreams: readonly Upstream[],
    private readonly timeoutMs: number,
    private readonly observe: ForwardObserver = () => undefined,
  ) {
    this.udp4 = createSocket('udp4');
    this.udp6 = createSocket('udp6');
    for (const socket of [this.udp4, this.udp6]) {
      socket.on('message', (message: Buffer) => this.onReply(message));
      socket.on('error', () => undefined);
      socket.unref();
    }
  }

  get enabled(): boolean {
    return this.upstreams.length > 0;
  }

  /** The upstream's reply with the client's id restored, or undefined when none answered. */
  async forward(query: Buffer, questionEnd: number, overTcp: boolean): Promise<Buffer | undefined> {
    const start = this.nextUpstream++ % Math.max(1, this.upstreams.length);
    for (let i = 0; i < this.upstreams.length; i++) {
      const upstream = this.upstreams[(start + i) % this.upstreams.length];
      if (!upstream) continue;
      // A UDP reply with TC is relayed as it is: the client retries over TCP, and that is forwarded over TCP.
      const reply = overTcp ? await this.viaTcp(upstream, query) : await this.viaUdp(upstream, query, questionEnd);
      if (reply) {
        this.observe(upstream.label, 'answered');
        return restoreId(reply, query);
      }
      this.observe(upstream.label, 'timeout');
    }
    return undefined;
  }

  private viaUdp(upstream: Upstream, query: Buffer, questionEnd: number): Promise<Buffer | undefined> {
    // RFC 5452 §4.3: unpredictable ids, so an off-path sender cannot guess one.
    let id = randomInt(0x10000);
    for (let tries = 0; this.pending.has(id) && tries < 64; tries++) id = randomInt(0x10000);
    if (this.pending.has(id)) return Promise.resolve(undefined);
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, this.timeoutMs);
      this.pending.set(id, { resolve, question: query.subarray(HEADER_BYTES, questionEnd), timer });
      (isIPv6(upstream.host) ? this.udp6 : this.udp4).send(out, upstream.port, upstream.host, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(undefined);
      });
    });
  }

  private onReply(message: Buffer): void {
    if (message.length < HEADER_BYTES) return;
    const pending = this.pending.get(message.readUInt16BE(0));
    if (!pending) return;
    const question = message.subarray(HEADER_BYTES, HEADER_BYTES + pending.question.length);
    // Upstreams may change the question's case (0x20 randomization); compare case-insensitively.
    if (question.toString('latin1').toLowerCase() !== pending.question.toString('latin1').toLowerCase()) return;
    clearTimeout(pending.timer);
    this.pending.delete(message.readUInt16BE(0));
    pending.resolve(message);
  }

  private viaTcp(upstream: Upstream, query: Buffer): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket = new Socket();
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (reply: Buffer | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(reply);
      };
      const timer = setTimeout(() => finish(undefined), this.timeoutMs);
      socket.on('error', () => finish(undefined));
      socket.on('close', () => finish(undefined));
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) finish(all.subarray(2, 2 + all.readUInt16BE(0)));
      });
      socket.connect(upstream.port, upstream.host, () => {
        const framed = Buffer.alloc(query.length + 2);
        framed.writeUInt16BE(query.length, 0);
        query.copy(framed, 2);
        socket.write(framed);
      });
    });
  }

  close(): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.resolve(undefined);
    }
    this.pending.clear();
    this.udp4.close();
    this.udp6.close();
  }
}

function restoreId(reply: Buffer, query: Buffer): Buffer {
  const out = Buffer.from(reply);
  out[0] = query[0] ?? 0;
  out[1] = query[1] ?? 0;
  return out;
}
