/**
 * SPDY/3 header blocks (§2.6.10): a count, then length-prefixed names and values (several
 * values of one name joined by NUL), compressed with zlib seeded with the spec's dictionary.
 * Each direction of a connection is ONE zlib stream across all frames, flushed at the end of
 * every block, so both contexts live as long as the session.
 *
 * Design note: the compressor writes stored (uncompressed) deflate blocks by hand. Every
 * inflater accepts them, the output is a pure function of the input (so encoding is
 * synchronous and frames leave in order without a queue), and our header blocks are a few
 * dozen bytes, where compression would save nothing. The decompressor must take whatever
 * the peer's zlib produced, so it is Node's inflate stream, fed one block at a time.
 */
import { constants as zlibConstants, createInflate, type Inflate } from 'node:zlib';
import { PontoonError } from '../errors.js';

export class SpdyHeaderError extends PontoonError {}

/** The length-prefixed words at the start of the SPDY/3 dictionary (§2.6.10.1). */
const DICTIONARY_WORDS = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language',
  'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding',
  'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'etag',
  'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
  'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
  'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive',
  'origin',
];
/** ...followed by this text without length prefixes. */
const DICTIONARY_TAIL =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
  '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
  '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
  'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

function buildDictionary(): Buffer {
  const parts: Buffer[] = [];
  for (const word of DICTIONARY_WORDS) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(word.length, 0);
    parts.push(length, Buffer.from(word, 'latin1'));
  }
  parts.push(Buffer.from(DICTIONARY_TAIL, 'latin1'));
  return Buffer.concat(parts);
}

export const SPDY_DICTIONARY = buildDictionary();

export function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Header names are lower case on the wire; values of one name are joined by NUL. */
export type SpdyHeaders = Map<string, string[]>;

export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(headers.size, 0);
  parts.push(count);
  for (const [name, values] of headers) {
    for (const text of [name.toLowerCase(), values.join('\0')]) {
      const bytes = Buffer.from(text, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length, 0);
      parts.push(length, bytes);
    }
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  const headers: SpdyHeaders = new Map();
  let offset = 0;
  const u32 = (): number => {
    if (offset + 4 > block.length) throw new SpdyHeaderError('header block truncated');
    const value = block.readUInt32BE(offset);
    offset += 4;
    return value;
  };
  const text = (): string => {
    const length = u32();
    if (offset + length > block.length) throw new SpdyHeaderError('header block truncated');
    const value = block.toString('utf8', offset, offset + length);
    offset += length;
    return value;
  };
  const count = u32();
  for (let i = 0; i < count; i++) {
    const name = text().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), ...text().split('\0')]);
  }
  return headers;
}

/** Compresses header blocks as one zlib stream of stored blocks (see the design note). */
export class HeaderCompressor {
  private started = false;

  compress(block: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.started) {
      // CMF 0x78 (deflate, 32 KiB window); FLG 0x20 sets FDICT and makes (CMF·256+FLG) % 31 == 0.
      const header = Buffer.alloc(6);
      header[0] = 0x78;
      header[1] = 0x20;
      header.writeUInt32BE(adler32(SPDY_DICTIONARY), 2);
      parts.push(header);
      this.started = true;
    }
    const stored = (piece: Buffer): void => {
      // A non-final stored block: BFINAL=0, BTYPE=00, byte-aligned; then LEN and ~LEN.
      const header = Buffer.alloc(5);
      header.writeUInt16LE(piece.length, 1);
      header.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(header, piece);
    };
    for (let offset = 0; offset < block.length; offset += 0xffff) stored(block.subarray(offset, offset + 0xffff));
    // End with an empty stored block, the Z_SYNC_FLUSH marker (00 00 00 ff ff). Go's inflater
    // moves on to the next block header right after a stored block's data, and without the
    // marker it would read past this frame's bytes and fail the next one.
    stored(Buffer.alloc(0));
    return Buffer.concat(parts);
  }
}

/** Inflates the peer's header blocks in order, one session-long zlib context. */
export class HeaderDecompressor {
  private readonly inflate: Inflate = createInflate({ dictionary: SPDY_DICTIONARY });
  private output: Buffer[] = [];
  private failure: Error | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor() {
    this.inflate.on('data', (chunk: Buffer) => this.output.push(chunk));
    this.inflate.on('error', (err: Error) => (this.failure = err));
  }

  decompress(block: Buffer): Promise<Buffer> {
    const run = async (): Promise<Buffer> => {
      this.throwIfFailed();
      // A corrupt block fails the stream with 'error' and the flush never completes.
      await new Promise<void>((resolve) => {
        const failed = (): void => resolve();
        this.inflate.once('error', failed);
        this.inflate.write(block);
        this.inflate.flush(zlibConstants.Z_SYNC_FLUSH, () => {
          this.inflate.off('error', failed);
          resolve();
        });
      });
      this.throwIfFailed();
      const out = Buffer.concat(this.output);
      this.output = [];
      return out;
    };
    const result = this.queue.then(run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private throwIfFailed(): void {
    if (this.failure) throw new SpdyHeaderError(`header decompression failed: ${this.failure.message}`);
  }

  close(): void {
    this.inflate.destroy();
  }
}
