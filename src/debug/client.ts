/**
 * Fetching NetStates from node agents. How a node is reached is the caller's `NodeDialer`:
 * over the network (the Node's InternalIP and the agent's host port, for real hosts) or,
 * in the namespace lab, a TCP socket created inside the node's namespace (the fabric is not
 * reachable from the root namespace, on purpose).
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { PontoonError } from '../lib/errors.js';
import { isNetState, NETSTATE_PATH, type NetState } from './netstate.js';

export class NetStateFetchError extends PontoonError {}

/** host:port to ask, plus an optional socket factory (a socket that lives in another netns). */
export interface NodeEndpoint {
  host: string;
  port: number;
  createSocket?: () => Socket;
}

export function fetchNetState(endpoint: NodeEndpoint, node: string, timeoutMs = 5000): Promise<NetState> {
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown): void => reject(new NetStateFetchError(`failed to fetch netstate of node "${node}" from ${endpoint.host}:${endpoint.port}: ${why}`, { cause }));
    const req = request(
      {
        host: endpoint.host,
        port: endpoint.port,
        path: NETSTATE_PATH,
        timeout: timeoutMs,
        ...(endpoint.createSocket
          ? {
              createConnection: () => {
                const socket = endpoint.createSocket!();
                return socket.connect(endpoint.port, endpoint.host);
              },
            }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode ?? '?'}: ${text.slice(0, 200)}`);
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch (err) {
            return fail('the answer is not JSON', err);
          }
          if (!isNetState(body)) return fail(`unknown snapshot version ${JSON.stringify((body as { version?: unknown }).version)}`);
          resolve(body);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (err) => fail(err.message, err));
    req.end();
  });
}
