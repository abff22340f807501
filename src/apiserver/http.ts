/**
 * HTTP plumbing shared by the handlers: bounded body reads, JSON decoding with upstream's
 * error wording, content negotiation for Table output, and writing answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Status } from '../api/meta.js';
import { parseGoBool } from '../lib/parse-bool.js';
import { badRequest, tooLarge, unsupportedMediaType } from './status.js';

/** Upstream's limit for a request body (etcd's own value limit is about 1.5 MiB). */
export const MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024;

export function readBody(req: IncomingMessage, limitBytes = MAX_REQUEST_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    return Promise.reject(tooLarge(limitBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limitBytes) {
        failed = true;
        // Keep draining (not destroying) so the 413 can still be written on this connection.
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
    });
  });
}

/** What is read and thrown away of a refused request's body before the connection is closed. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;
/** How long a connection being closed keeps reading (and discarding) after its FIN. */
const LINGER_MS = 1000;

/**
 * Before an error answer to a request whose body is still arriving: a body that fits in
 * DISCARD_LIMIT_BYTES is read and thrown away, so the client keeps its keep-alive
 * connection. A larger one (declared, or found while discarding a body of unknown length)
 * closes the connection so the client cannot keep the server reading; when the length was
 * declared the answer says `Connection: close`, so no client reuses the connection for its
 * next request. Closing is Go's lingering close: FIN first, keep discarding what still comes
 * for a moment, then destroy — closing with unread input at once makes the kernel send a
 * reset, and a reset makes the client's kernel drop the answer unread.
 */
export function refuseRemainingBody(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  const declared = Number(req.headers['content-length']);
  let closing = false;
  const close = (): void => {
    if (closing) return;
    closing = true;
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
  if (Number.isFinite(declared) && declared > DISCARD_LIMIT_BYTES) {
    res.setHeader('Connection', 'close');
    // With that header Node's server ends the socket with destroySoon() once the answer is
    // written, which destroys it (a reset) while the body still arrives; linger instead.
    socket.destroySoon = close;
  }
  let discarded = 0;
  // The listener stays through the linger: a paused reader would stall the client's send.
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_LIMIT_BYTES) close();
  });
  req.resume();
}

/** The media type without parameters, lower case: `application/json`. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

const JSON_TYPES = ['application/json', '*/*', ''];

/** Bodies of create/update/binding: JSON only (kubectl never sends anything else). */
export function requireJsonBody(req: IncomingMessage): void {
  const type = mediaType(req.headers['content-type']);
  if (!JSON_TYPES.includes(type)) throw unsupportedMediaType(type, ['application/json']);
}

/** Parses a JSON object body; anything else is a 400 in upstream's words. */
export function decodeJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('couldn\'t get version/kind; json parse error: the body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

interface MediaRange {
  type: string;
  params: Map<string, string>;
}

function parseAccept(header: string | undefined): MediaRange[] {
  if (!header) return [];
  return header.split(',').map((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    return {
      type: (type ?? '').toLowerCase(),
      params: new Map(
        params.map((p) => {
          const eq = p.indexOf('=');
          return eq < 0 ? [p.toLowerCase(), ''] : [p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim()];
        }),
      ),
    };
  });
}

export type ResponseShape = 'object' | 'table' | 'partialMetadata';

/**
 * What the client asked the object (or list) to be rendered as. kubectl asks for a
 * meta.k8s.io Table first and falls back to plain JSON; metadata-only clients ask for
 * PartialObjectMetadata. The first range we can serve wins, in the client's order.
 */
export function negotiateShape(accept: string | undefined): ResponseShape {
  for (const range of parseAccept(accept)) {
    const as = range.params.get('as');
    const group = range.params.get('g');
    if (!as) {
      if (range.type === 'application/json' || range.type === '*/*' || range.type === 'application/*') return 'object';
      continue;
    }
    if (group !== 'meta.k8s.io') continue;
    if (as === 'Table' && ['v1', 'v1beta1'].includes(range.params.get('v') ?? '')) return 'table';
    if (as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') return 'partialMetadata';
  }
  return 'object';
}

/** True when the Accept header names aggregated discovery (apidiscovery.k8s.io/v2). */
export function wantsAggregatedDiscovery(accept: string | undefined): boolean {
  for (const range of parseAccept(accept)) {
    if (range.params.get('g') === 'apidiscovery.k8s.io' && range.params.get('v') === 'v2' && range.params.get('as') === 'APIGroupDiscoveryList') {
      return true;
    }
    if (range.type === 'application/json' && !range.params.has('as')) return false;
  }
  return false;
}

export function sendJson(res: ServerResponse, code: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
  res.end(text);
}

export function sendStatus(res: ServerResponse, status: Status): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status.code, status);
}

export function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Query parameters, with repeated keys keeping the last value as upstream's decoder does. */
export function queryOf(url: URL): Map<string, string> {
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) params.set(key, value);
  return params;
}

/**
 * A boolean query parameter read as upstream's decoder does (Go's strconv.ParseBool): the
 * official Python client sends `watch=True`, Go clients `true`. Absent or empty is false; any
 * other word is a 400 naming the parameter rather than a silent false (which turned a watch
 * into a plain list).
 */
export function booleanParam(name: string, value: string | undefined): boolean {
  if (value === undefined || value === '') return false;
  const parsed = parseGoBool(value);
  if (parsed !== undefined) return parsed;
  throw badRequest(`invalid value for ${name}: strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`);
}

/** A non-negative integer query parameter, or a 400 naming it. */
export function integerParam(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^-?\d+$/.test(value)) throw badRequest(`invalid value for ${name}: "${value}" is not an integer`);
  return Number(value);
}
