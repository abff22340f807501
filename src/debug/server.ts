/**
 * The agents' read-only debug endpoint: `GET /debug/netstate` answers the node namespace's
 * NetState as JSON. Nothing here changes state; requests that arrive while a snapshot is being
 * gathered share it (a trace of 20 nodes asks each node once, but several users may trace
 * at the same time).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { gatherNetState, type GatherOptions } from './gather.js';
import { NETSTATE_PATH, type NetState } from './netstate.js';

export class DebugServer {
  private server: Server | undefined;
  private inFlight: Promise<NetState> | undefined;

  constructor(
    private readonly options: GatherOptions,
    private readonly log: Logger,
  ) {}

  async listen(host: string, port: number): Promise<number> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const bound = (server.address() as AddressInfo).port;
    this.log.info({ host, port: bound, path: NETSTATE_PATH }, 'debug endpoint listening');
    return bound;
  }

  close(): void {
    this.server?.close();
  }

  private snapshot(): Promise<NetState> {
    this.inFlight ??= gatherNetState(this.options).finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== NETSTATE_PATH) return reply(res, 404, { error: `no ${path ?? ''} here; try ${NETSTATE_PATH}` });
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, { error: 'read-only endpoint: GET only' }, { allow: 'GET, HEAD' });
    try {
      reply(res, 200, await this.snapshot());
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'netstate snapshot failed');
      reply(res, 500, { error: describeError(err) });
    }
  }
}

function reply(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
