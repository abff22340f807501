/**
 * Answers as wire bytes, built once per record-set change and copied per query.
 *
 * Node spends most of a query in the per-packet work it cannot avoid (the recv and send
 * syscalls, a Buffer and an rinfo object per datagram), so nothing else may cost much: a
 * query is scanned (wire.ts), its key (lower-cased wire name + qtype; class is always IN,
 * other classes are refused before the lookup) finds a prepared answer, and the reply is that
 * buffer copied with the query's id, RD/CD bits and the question's original spelling patched
 * in (RFC 4343: case is preserved in the answer's question). Owner names equal to the question
 * are compressed to a pointer at the question (RFC 1035 §4.1.4) — `dns-packet` does not
 * compress — which makes them echo the question's case too and packs about twice as many
 * A records under 512 bytes before truncation.
 *
 * Each answer is sent in one of four forms: with and without an OPT record (RFC 6891: only
 * answer OPT with OPT), each also truncated (TC, question only, RFC 2181 §9) for when it does
 * not fit the client's UDP size. Only the plain form is stored; the others are cut from it as
 * it is copied out (renderInto), because at 10k Services four Buffers per answer were a
 * third of the heap, and a major GC of that heap took the CPU the UDP loop answers on
 * (docs/dns.md, "Latency"). Names with records are prebuilt for their types when they change;
 * everything else (NODATA, NXDOMAIN, pod records) is built on first use and kept in a bounded
 * cache that any change clears, since one new name can turn a cached NXDOMAIN into NODATA.
 */
import * as dnsPacket from 'dns-packet';
import type { DnsRecord } from './records.js';
import type { Resolution, Resolver } from './resolver.js';
import { CLASS_IN, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, HEADER_BYTES, OPT_BYTES, TYPE, wireKey, writeOpt } from './wire.js';

export interface PreparedAnswer {
  rcode: number;
  /** The whole answer without OPT. */
  wire: Buffer;
  /** Where the question ends in `wire`: a truncated form is everything before it. */
  questionEnd: number;
  /**
   * Set when the answer ends in a CNAME (ExternalName) to a name outside the cluster: the
   * server asks the upstream for it and appends the result, as CoreDNS does, because stub
   * resolvers (glibc, musl) do not chase a CNAME themselves.
   */
  externalTarget: string | undefined;
}

const DYNAMIC_LIMIT = 50_000;

function toPacketAnswer(record: DnsRecord, ttl: number): dnsPacket.Answer {
  const base = { name: record.name, ttl, class: 'IN' as const };
  switch (record.type) {
    case TYPE.A:
      return { ...base, type: 'A', data: record.ip };
    case TYPE.AAAA:
      return { ...base, type: 'AAAA', data: record.ip };
    case TYPE.PTR:
      return { ...base, type: 'PTR', data: record.target };
    case TYPE.CNAME:
      return { ...base, type: 'CNAME', data: record.target };
    case TYPE.NS:
      return { ...base, type: 'NS', data: record.target };
    case TYPE.TXT:
      return { ...base, type: 'TXT', data: record.text };
    case TYPE.SRV:
      return { ...base, type: 'SRV', data: { priority: record.priority, weight: record.weight, port: record.port, target: record.target } };
    case TYPE.SOA:
      // RFC 2308 §3: a negative answer's SOA TTL is the SOA's minimum field.
      return { ...base, ttl: record.minimum, type: 'SOA', data: { mname: record.mname, rname: record.rname, serial: record.serial, refresh: 7200, retry: 1800, expire: 86400, minimum: record.minimum } };
  }
}

/** dns-packet maps `UNKNOWN_<n>` to type n for every n, known or not; the question's type is echoed as sent. */
function typeName(qtype: number): dnsPacket.RecordType {
  return `UNKNOWN_${qtype}` as dnsPacket.RecordType;
}

/** Encodes with dns-packet, then compresses owner names equal to the question's. */
export function encodeAnswer(name: string, qtype: number, resolution: Resolution, ttl: number): PreparedAnswer {
  const flags = FLAG_AA | resolution.rcode;
  const packet: dnsPacket.Packet = {
    id: 0,
    type: 'response',
    flags,
    questions: [{ name, type: typeName(qtype), class: 'IN' }],
    answers: resolution.answers.map((r) => toPacketAnswer(r, ttl)),
    authorities: resolution.authorities.map((r) => toPacketAnswer(r, ttl)),
    additionals: resolution.additionals.map((r) => toPacketAnswer(r, ttl)),
  };
  const wire = compressOwners(dnsPacket.encode(packet));
  const last = resolution.answers.at(-1);
  const externalTarget = last?.type === TYPE.CNAME && (qtype === TYPE.A || qtype === TYPE.AAAA) ? last.target : undefined;
  return { rcode: resolution.rcode, wire, questionEnd: skipQuestion(wire), externalTarget };
}

function skipQuestion(message: Buffer): number {
  let offset = HEADER_BYTES;
  while ((message[offset] ?? 0) !== 0) offset += (message[offset] ?? 0) + 1;
  return offset + 5;
}

/** Rewrites an uncompressed message so owner names equal to the question name point at it. */
function compressOwners(message: Buffer): Buffer {
  const questionEnd = skipQuestion(message);
  const qname = message.subarray(HEADER_BYTES, questionEnd - 4);
  const records = message.readUInt16BE(6) + message.readUInt16BE(8) + message.readUInt16BE(10);
  const parts: Buffer[] = [message.subarray(0, questionEnd)];
  const pointer = Buffer.from([0xc0, HEADER_BYTES]);
  let offset = questionEnd;
  for (let i = 0; i < records; i++) {
    let end = offset;
    while ((message[end] ?? 0) !== 0) end += (message[end] ?? 0) + 1;
    end += 1;
    const owner = message.subarray(offset, end);
    parts.push(owner.equals(qname) ? pointer : owner);
    const rdlength = message.readUInt16BE(end + 8);
    parts.push(message.subarray(end, end + 10 + rdlength));
    offset = end + 10 + rdlength;
  }
  // One allocation of its own: a slice of Node's shared pool would keep the whole 8 KiB slab alive.
  const out = Buffer.alloc(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) at += part.copy(out, at);
  return out;
}

/** What a transport needs of an answer to send it in the form that fits. */
export type AnswerWire = Pick<PreparedAnswer, 'wire' | 'questionEnd'>;

/** Room for any form of `answer`: the whole of it plus an OPT record. */
export const renderedBound = (answer: AnswerWire): number => answer.wire.length + OPT_BYTES;

/**
 * Writes `answer` at `out[offset]` in the form a query gets — with OPT only for a query with
 * OPT, truncated when the whole exceeds `limit` — with the query's id, RD and CD and the
 * question's original case. Returns the bytes written. The UDP fast path writes straight
 * into its send arena; everything else goes through `renderFor`.
 */
export function renderInto(out: Buffer, offset: number, answer: AnswerWire, edns: boolean, limit: number, query: Buffer, nameStart: number, nameEnd: number, recursionAvailable: boolean): number {
  const { wire, questionEnd } = answer;
  const truncate = wire.length + (edns ? OPT_BYTES : 0) > limit;
  const body = truncate ? questionEnd : wire.length;
  wire.copy(out, offset, 0, body);
  out[offset] = query[0] ?? 0;
  out[offset + 1] = query[1] ?? 0;
  const queryFlags = query.readUInt16BE(2);
  const flags = (wire.readUInt16BE(2) & ~(FLAG_RD | FLAG_CD | FLAG_RA)) | FLAG_QR | (queryFlags & (FLAG_RD | FLAG_CD)) | (recursionAvailable ? FLAG_RA : 0) | (truncate ? FLAG_TC : 0);
  out.writeUInt16BE(flags, offset + 2);
  if (truncate) {
    out.writeUInt32BE(0, offset + 6);
    out.writeUInt16BE(0, offset + 10);
  }
  query.copy(out, offset + nameStart, nameStart, nameEnd);
  if (!edns) return body;
  out.writeUInt16BE(out.readUInt16BE(offset + 10) + 1, offset + 10);
  writeOpt(out, offset + body, 0);
  return body + OPT_BYTES;
}

/** `renderInto` a Buffer of its own. */
export function renderFor(answer: AnswerWire, edns: boolean, limit: number, query: Buffer, nameStart: number, nameEnd: number, recursionAvailable: boolean): Buffer {
  const out = Buffer.allocUnsafe(renderedBound(answer));
  return out.subarray(0, renderInto(out, 0, answer, edns, limit, query, nameStart, nameEnd, recursionAvailable));
}

/**
 * What changed in the cache, for a mirror of it (the UDP fast path's worker): answers set
 * under a key (prepared or built on use), keys dropped, and every built-on-use one dropped.
 */
export interface AnswerChanges {
  set: [key: string, answer: PreparedAnswer, dynamic: boolean][];
  deleted: string[];
  dynamicCleared: boolean;
}

export interface CacheStats {
  prepared: number;
  dynamic: number;
  hits: number;
  misses: number;
}

export class AnswerCache {
  private readonly prepared = new Map<string, PreparedAnswer>();
  private readonly dynamic = new Map<string, PreparedAnswer | 'forward'>();
  /** Keys prebuilt per name, to drop them when the name changes. */
  private readonly keysOfName = new Map<string, string[]>();
  hits = 0;
  misses = 0;
  private mirror: ((changes: AnswerChanges) => void) | undefined;

  constructor(
    private readonly resolver: Resolver,
    private readonly ttlSeconds: number,
  ) {}

  /** After the zone changed at `names`: rebuilds their answers, forgets every built-on-use one. */
  invalidate(names: Iterable<string>, recordsAt: (name: string) => readonly DnsRecord[] | undefined): void {
    this.dynamic.clear();
    const changes: AnswerChanges = { set: [], deleted: [], dynamicCleared: true };
    for (const name of names) {
      for (const key of this.keysOfName.get(name) ?? []) {
        this.prepared.delete(key);
        changes.deleted.push(key);
      }
      this.keysOfName.delete(name);
      const types = new Set((recordsAt(name) ?? []).map((r) => r.type));
      // A CNAME answers A and AAAA queries too; prebuild those, the common ones.
      if (types.has(TYPE.CNAME)) types.add(TYPE.A).add(TYPE.AAAA);
      const keys: string[] = [];
      for (const qtype of types) {
        const resolution = this.resolver.resolve(name, qtype);
        if (resolution === 'forward') continue;
        const key = wireKey(name, qtype);
        const answer = encodeAnswer(name, qtype, resolution, this.ttlSeconds);
        this.prepared.set(key, answer);
        changes.set.push([key, answer, false]);
        keys.push(key);
      }
      if (keys.length) this.keysOfName.set(name, keys);
    }
    this.mirror?.(changes);
  }

  /**
   * Follows every change from now on, starting with everything held (a full `set`). One
   * follower; it gets the same objects, so it must not modify them.
   */
  follow(mirror: (changes: AnswerChanges) => void): void {
    this.mirror = mirror;
    const set: AnswerChanges['set'] = [];
    for (const [key, answer] of this.prepared) set.push([key, answer, false]);
    for (const [key, answer] of this.dynamic) if (answer !== 'forward') set.push([key, answer, true]);
    mirror({ set, deleted: [], dynamicCleared: false });
  }

  /** The prepared answer for a key, building it from `name`/`qtype` on a miss. */
  lookup(key: string, name: () => string | undefined, qtype: number, qclass = CLASS_IN): PreparedAnswer | 'forward' | undefined {
    const prepared = this.prepared.get(key) ?? this.dynamic.get(key);
    if (prepared !== undefined) {
      this.hits++;
      return prepared;
    }
    this.misses++;
    if (qclass !== CLASS_IN) return undefined;
    const dotted = name();
    // A label holding a dot is no name of ours.
    if (dotted === undefined) return 'forward';
    const resolution = this.resolver.resolve(dotted, qtype);
    const built = resolution === 'forward' ? 'forward' : encodeAnswer(dotted, qtype, resolution, this.ttlSeconds);
    const cleared = this.dynamic.size >= DYNAMIC_LIMIT;
    if (cleared) this.dynamic.clear();
    this.dynamic.set(key, built);
    if (this.mirror && (cleared || built !== 'forward')) this.mirror({ set: built === 'forward' ? [] : [[key, built, true]], deleted: [], dynamicCleared: cleared });
    return built;
  }

  stats(): CacheStats {
    return { prepared: this.prepared.size, dynamic: this.dynamic.size, hits: this.hits, misses: this.misses };
  }
}
