/**
 * The hot path's view of a DNS query: header, the one question and the EDNS0 OPT record,
 * scanned in place with a bounds check before every read (RFC 1035 §4.1, RFC 6891 §6).
 *
 * Why not `dns-packet`'s decode here: it builds an object graph per packet (every RR of every
 * section, names as joined strings) and throws plain RangeErrors on short input. The server
 * needs only the question (as a cache key) and the OPT record, and must tell "drop" from
 * FORMERR; measured on this machine, decode of a typical query costs ~2.5 µs against ~0.3 µs
 * for this scan (bench/dns.ts prints both). Answers are still encoded with `dns-packet`
 * (answers.ts), once per record-set change, not per query.
 */
import { PontoonError } from '../lib/errors.js';

// RFC 1035 §4.1.1 header flags and codes, by their RFC names.
export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
export const OPCODE_QUERY = 0;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];
/** RFC 6891 §9: extended RCODE 16, carried as 1 in the OPT's upper 8 bits. */
export const EXTENDED_RCODE_BADVERS = 1;

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, MAILB: 253, MAILA: 254, ANY: 255 } as const;
export const CLASS_IN = 1;

export const HEADER_BYTES = 12;
/** RFC 1035 §4.2.1: without EDNS0 a UDP message is at most 512 bytes. */
export const CLASSIC_UDP_BYTES = 512;
/** What we advertise and the most we send over UDP: the DNS flag day 2020 figure, below common path MTUs. */
export const ADVERTISED_UDP_BYTES = 1232;
const MAX_NAME_BYTES = 255;
const MAX_LABEL_BYTES = 63;

/** A query the server must answer with an error rcode (it had a header we can echo). */
export class DnsQueryError extends PontoonError {
  constructor(
    readonly rcode: Rcode,
    message: string,
  ) {
    super(message);
  }
}

export interface ScannedQuery {
  id: number;
  /** Header flags word (bytes 2-3) as received. */
  flags: number;
  opcode: number;
  qdcount: number;
  /** The question's name on the wire, from offset 12, original case. */
  nameStart: number;
  nameEnd: number;
  /**
   * The cache key: the wire-format name lower-cased (A-Z only, RFC 4343) as a latin1 string,
   * plus the qtype. Wire format avoids joining labels with dots on the hot path.
   */
  key: string;
  qtype: number;
  qclass: number;
  /** End of the question section. */
  questionEnd: number;
  /** Present when the query carries an OPT record. */
  edns: { udpBytes: number; version: number } | undefined;
}

const scratch = Buffer.alloc(MAX_NAME_BYTES + 8);

/**
 * Scans `message`. Returns undefined for what must be dropped without an answer (RFC 1035
 * §4.1.1 gives no way to answer a message whose header is cut short, and answering a
 * response invites loops); throws DnsQueryError for what gets FORMERR or NOTIMP.
 */
export function scanQuery(message: Buffer): ScannedQuery | undefined {
  if (message.length < HEADER_BYTES) return undefined;
  const flags = message.readUInt16BE(2);
  if (flags & FLAG_QR) return undefined;
  const id = message.readUInt16BE(0);
  const opcode = (flags >> 11) & 0xf;
  const qdcount = message.readUInt16BE(4);
  if (opcode !== OPCODE_QUERY) return { id, flags, opcode, qdcount, nameStart: HEADER_BYTES, nameEnd: HEADER_BYTES, key: '', qtype: 0, qclass: 0, questionEnd: HEADER_BYTES, edns: undefined };
  if (qdcount !== 1) throw new DnsQueryError(RCODE.FORMERR, `a query carries exactly one question, got ${qdcount}`);
  let offset = HEADER_BYTES;
  let length = 0;
  for (;;) {
    if (offset >= message.length) throw new DnsQueryError(RCODE.FORMERR, 'question name runs past the message');
    const labelBytes = message[offset] ?? 0;
    if (labelBytes === 0) break;
    // A compression pointer in the first name could only point backwards into the header.
    if (labelBytes > MAX_LABEL_BYTES) throw new DnsQueryError(RCODE.FORMERR, `bad label length byte 0x${labelBytes.toString(16)} in the question`);
    if (offset + 1 + labelBytes > message.length) throw new DnsQueryError(RCODE.FORMERR, 'question label runs past the message');
    scratch[length] = labelBytes;
    for (let i = 1; i <= labelBytes; i++) {
      const byte = message[offset + i] ?? 0;
      scratch[length + i] = byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
    }
    length += labelBytes + 1;
    offset += labelBytes + 1;
    if (length + 1 > MAX_NAME_BYTES) throw new DnsQueryError(RCODE.FORMERR, 'question name is longer than 255 bytes');
  }
  const nameEnd = offset + 1;
  if (nameEnd + 4 > message.length) throw new DnsQueryError(RCODE.FORMERR, 'question type and class run past the message');
  const qtype = message.readUInt16BE(nameEnd);
  const qclass = message.readUInt16BE(nameEnd + 2);
  const questionEnd = nameEnd + 4;
  scratch[length] = 0;
  const key = `${scratch.toString('latin1', 0, length + 1)}${qtype}`;
  // One object shape for every query (edns always present as a field) keeps the hot path monomorphic.
  const query: ScannedQuery = { id, flags, opcode, qdcount, nameStart: HEADER_BYTES, nameEnd, key, qtype, qclass, questionEnd, edns: undefined };
  const rrCount = message.readUInt16BE(6) + message.readUInt16BE(8);
  const arcount = message.readUInt16BE(10);
  if (arcount > 0) query.edns = scanOpt(message, questionEnd, rrCount, arcount);
  return query;
}

/** Skips one (possibly compressed) name; returns the offset after it. */
function skipName(message: Buffer, start: number): number {
  let offset = start;
  for (;;) {
    if (offset >= message.length) throw new DnsQueryError(RCODE.FORMERR, 'record name runs past the message');
    const byte = message[offset] ?? 0;
    if (byte === 0) return offset + 1;
    if ((byte & 0xc0) === 0xc0) {
      if (offset + 2 > message.length) throw new DnsQueryError(RCODE.FORMERR, 'compression pointer runs past the message');
      return offset + 2;
    }
    if (byte > MAX_LABEL_BYTES) throw new DnsQueryError(RCODE.FORMERR, `bad label length byte 0x${byte.toString(16)}`);
    offset += byte + 1;
  }
}

/** Finds the OPT record in the additional section (RFC 6891 §6.1.1: at most one, owner root). */
function scanOpt(message: Buffer, start: number, skipRecords: number, additional: number): ScannedQuery['edns'] {
  let offset = start;
  let found: ScannedQuery['edns'];
  for (let i = 0; i < skipRecords + additional; i++) {
    const nameStart = offset;
    offset = skipName(message, offset);
    if (offset + 10 > message.length) throw new DnsQueryError(RCODE.FORMERR, 'record header runs past the message');
    const type = message.readUInt16BE(offset);
    const rdlength = message.readUInt16BE(offset + 8);
    if (type === TYPE.OPT && i >= skipRecords) {
      if (found) throw new DnsQueryError(RCODE.FORMERR, 'more than one OPT record');
      if (message[nameStart] !== 0) throw new DnsQueryError(RCODE.FORMERR, 'OPT record owner is not the root');
      // RFC 6891 §6.2.5: sizes below 512 are treated as 512.
      found = { udpBytes: Math.max(CLASSIC_UDP_BYTES, message.readUInt16BE(offset + 2)), version: message[offset + 5] ?? 0 };
    }
    offset += 10 + rdlength;
    if (offset > message.length) throw new DnsQueryError(RCODE.FORMERR, 'record data runs past the message');
  }
  return found;
}

/** The largest UDP answer a query may get: 512 without OPT, else its size capped at ours. */
export function udpLimit(query: Pick<ScannedQuery, 'edns'>): number {
  return query.edns ? Math.min(query.edns.udpBytes, ADVERTISED_UDP_BYTES) : CLASSIC_UDP_BYTES;
}

/** Wire-format key of a dotted name (lower case, no trailing dot needed) and a qtype. */
export function wireKey(name: string, qtype: number): string {
  return `${wireName(name).toString('latin1')}${qtype}`;
}

/** RFC 1035 §3.1 uncompressed wire form of a dotted name, lower-cased. */
export function wireName(name: string): Buffer {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  const out = Buffer.alloc(labels.reduce((n, l) => n + Buffer.byteLength(l, 'latin1') + 1, 1));
  let offset = 0;
  for (const label of labels) {
    out[offset] = label.length;
    out.write(label, offset + 1, 'latin1');
    offset += label.length + 1;
  }
  return out;
}

/** Dotted lower-case name from a wire-format key's name part; undefined when a label holds a dot. */
export function dottedFromWire(wire: Buffer, start: number, end: number): string | undefined {
  const labels: string[] = [];
  let offset = start;
  while (offset < end) {
    const len = wire[offset] ?? 0;
    if (len === 0) break;
    const label = wire.toString('latin1', offset + 1, offset + 1 + len).toLowerCase();
    if (label.includes('.')) return undefined;
    labels.push(label);
    offset += len + 1;
  }
  return labels.join('.');
}

/**
 * An answer with no records for a query that failed early (FORMERR, REFUSED, NOTIMP,
 * SERVFAIL): the header echoed with QR and the rcode, the question echoed when there is one
 * (RFC 1035 §4.1.1 lets FORMERR omit it; we keep it when it scanned), and an OPT when the
 * query had one (RFC 6891 §7).
 */
export function errorResponse(message: Buffer, query: Pick<ScannedQuery, 'flags' | 'questionEnd' | 'edns'> | undefined, rcode: Rcode, recursionAvailable: boolean): Buffer {
  const questionEnd = query && query.questionEnd > HEADER_BYTES ? query.questionEnd : HEADER_BYTES;
  const withOpt = query?.edns !== undefined;
  const out = Buffer.alloc(questionEnd + (withOpt ? OPT_BYTES : 0));
  message.copy(out, 0, 0, questionEnd);
  const flags = message.readUInt16BE(2);
  out.writeUInt16BE(FLAG_QR | (flags & (0x7800 | FLAG_RD | FLAG_CD)) | (recursionAvailable ? FLAG_RA : 0) | rcode, 2);
  out.writeUInt16BE(questionEnd > HEADER_BYTES ? 1 : 0, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(withOpt ? 1 : 0, 10);
  if (withOpt) writeOpt(out, questionEnd, 0);
  return out;
}

/** Root owner, type, class (our UDP size), TTL (ext rcode, version 0, flags), rdlength 0. */
export const OPT_BYTES = 11;

export function writeOpt(out: Buffer, offset: number, extendedRcode: number): void {
  out[offset] = 0;
  out.writeUInt16BE(TYPE.OPT, offset + 1);
  out.writeUInt16BE(ADVERTISED_UDP_BYTES, offset + 3);
  out[offset + 5] = extendedRcode;
  out[offset + 6] = 0;
  out.writeUInt16BE(0, offset + 7);
  out.writeUInt16BE(0, offset + 9);
}
