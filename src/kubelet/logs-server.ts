/**
 * The kubelet's log endpoint on a unix socket (`<root>/kubelet.sock`) and, through `serve`,
 * on its TLS port (api-server.ts), which the apiserver's `pods/<name>/log` proxies to: `GET /containerLogs/<ns>/<pod>/<container>` with `follow`,
 * `tailLines`, `limitBytes` and `previous`, answered as text/plain. Errors are plain text
 * with the kubelet's wording and code (404 unknown pod, 400 for a container that has no log
 * yet or no previous run), which the apiserver wraps in a Status.
 *
 * Following polls the file (a container writes it directly, so there is no stream to tap)
 * and ends when that run of the container is over and everything it wrote was sent.
 */
import { open, stat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { hasErrno } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { parseGoBool } from '../lib/parse-bool.js';

export type LogLookup = { path: string; active: () => boolean } | { code: number; message: string };

/** Finds a container's log file; the runtime answers this. */
export type LogLocator = (namespace: string, pod: string, container: string, previous: boolean) => LogLookup;

const FOLLOW_POLL_MS = 100;
const CHUNK_BYTES = 64 * 1024;

/** The byte offset where the last `lines` lines of the file begin. */
export async function tailOffset(path: string, lines: number): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (lines <= 0) return size;
    let position = size;
    let newlines = 0;
    // A final newline ends the last line rather than starting an empty one.
    let skipFinal = true;
    const buffer = Buffer.alloc(CHUNK_BYTES);
    while (position > 0) {
      const length = Math.min(CHUNK_BYTES, position);
      position -= length;
      await handle.read(buffer, 0, length, position);
      for (let i = length - 1; i >= 0; i--) {
        if (buffer[i] !== 0x0a) {
          skipFinal = false;
          continue;
        }
        if (skipFinal) {
          skipFinal = false;
          continue;
        }
        if (++newlines === lines) return position + i + 1;
      }
    }
    return 0;
  } finally {
    await handle.close();
  }
}

function parseQuery(url: URL): { follow: boolean; previous: boolean; tailLines?: number; limitBytes?: number } | string {
  const bool = (name: string): boolean => parseGoBool(url.searchParams.get(name) ?? '') === true;
  const int = (name: string): number | undefined | string => {
    const raw = url.searchParams.get(name);
    if (raw === null) return undefined;
    if (!/^\d+$/.test(raw)) return `${name} must be a non-negative integer, got "${raw}"`;
    return Number(raw);
  };
  const tailLines = int('tailLines');
  const limitBytes = int('limitBytes');
  if (typeof tailLines === 'string') return tailLines;
  if (typeof limitBytes === 'string') return limitBytes;
  return { follow: bool('follow'), previous: bool('previous'), ...(tailLines !== undefined ? { tailLines } : {}), ...(limitBytes !== undefined ? { limitBytes } : {}) };
}

/** Where a request arrived: the unix socket or the TLS port (metrics label them). */
export type KubeletServerType = 'unix' | 'https';

/** Routes the kubelet serves besides logs (/pods, /metrics); true when it answered. */
export type FrontRoutes = (req: IncomingMessage, res: ServerResponse, serverType: KubeletServerType) => boolean;

export class LogsServer {
  private server: Server | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly locate: LogLocator,
    private readonly log: Logger,
    /** Upgrade requests (exec, attach, port-forward) on the same socket go here. */
    private readonly onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
    private readonly front?: FrontRoutes,
  ) {}

  /** Answers one request (socket or TLS port; the caller has authorized it). */
  serve(req: IncomingMessage, res: ServerResponse, serverType: KubeletServerType): void {
    if (this.front?.(req, res, serverType)) return;
    this.handle(req, res).catch((err: unknown) => {
      this.log.error({ err: String(err), url: req.url }, 'log request failed');
      if (!res.headersSent) this.fail(res, 500, String(err));
      else res.destroy();
    });
  }

  async start(): Promise<void> {
    await unlink(this.socketPath).catch((err: unknown) => {
      if (!hasErrno(err, 'ENOENT')) throw err;
    });
    const server = createServer((req, res) => this.serve(req, res, 'unix'));
    const onUpgrade = this.onUpgrade;
    if (onUpgrade) server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.socketPath).catch(() => undefined);
  }

  private fail(res: ServerResponse, code: number, message: string): void {
    res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`${message}\n`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kubelet');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return void res.end('ok');
    }
    const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!match) return this.fail(res, 404, `no handler for ${url.pathname}: use /containerLogs/<namespace>/<pod>/<container>`);
    if (req.method !== 'GET') return this.fail(res, 405, `method ${req.method ?? ''} not allowed`);
    const [namespace, pod, container] = match.slice(1).map((part) => decodeURIComponent(part)) as [string, string, string];
    const query = parseQuery(url);
    if (typeof query === 'string') return this.fail(res, 400, query);
    const found = this.locate(namespace, pod, container, query.previous);
    if ('code' in found) return this.fail(res, found.code, found.message);

    let offset = query.tailLines !== undefined ? await tailOffset(found.path, query.tailLines).catch(() => 0) : 0;
    let remaining = query.limitBytes ?? Number.POSITIVE_INFINITY;
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
    let closed = false;
    res.on('close', () => (closed = true));

    const pump = async (): Promise<void> => {
      let handle;
      try {
        handle = await open(found.path, 'r');
      } catch (err) {
        if (hasErrno(err, 'ENOENT')) return;
        throw err;
      }
      try {
        const buffer = Buffer.alloc(CHUNK_BYTES);
        while (!closed && remaining > 0) {
          const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK_BYTES, remaining), offset);
          if (bytesRead === 0) return;
          offset += bytesRead;
          remaining -= bytesRead;
          if (!res.write(buffer.subarray(0, bytesRead))) await new Promise((resolve) => res.once('drain', resolve));
        }
      } finally {
        await handle.close();
      }
    };

    await pump();
    while (query.follow && !closed && remaining > 0) {
      // Read the state before the last read: whatever the run wrote before it ended is sent.
      const active = found.active();
      await pump();
      if (!active) break;
      const size = await stat(found.path).then((s) => s.size, () => 0);
      if (size <= offset) await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    }
    if (!closed) res.end();
  }
}
