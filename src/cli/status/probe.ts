/**
 * One HTTP GET to a daemon's /healthz or /metrics, wherever it listens: a TCP address seen
 * from a network namespace (the lab: each node's daemons in its own namespace, reached on
 * their loopback), a TCP address seen from here (real hosts: the node's InternalIP), or a
 * unix socket (the lab's control-plane components). The socket is made in the target
 * namespace (tcpSocketIn) and connected from here, so nothing ever enters a namespace for
 * longer than a socket(2) call and all probes run in parallel.
 */
import { request } from 'node:http';
import { isIPv6 } from 'node:net';
import { tcpSocketIn } from '../../lib/netns.js';

export type ProbeTarget = { readonly netns?: string; readonly host: string; readonly port: number } | { readonly socket: string };

export interface ProbeAnswer {
  readonly status: number;
  readonly body: string;
}

export function describeTarget(target: ProbeTarget): string {
  if ('socket' in target) return `unix:${target.socket}`;
  const host = isIPv6(target.host) ? `[${target.host}]` : target.host;
  return target.netns ? `${host}:${target.port} in netns ${target.netns}` : `${host}:${target.port}`;
}

/** GETs `path`; rejects on connection errors and after `timeoutMs`. */
export function httpGet(target: ProbeTarget, path: string, timeoutMs: number): Promise<ProbeAnswer> {
  return new Promise((resolve, reject) => {
    const options =
      'socket' in target
        ? { socketPath: target.socket, path, agent: false as const }
        : {
            host: target.host,
            port: target.port,
            path,
            // No agent: with one (even `agent: false`, a fresh one) Node ignores createConnection.
            // The socket must be born in the node's namespace; connecting it may happen from here.
            createConnection: () => tcpSocketIn(target.netns, isIPv6(target.host)).connect(target.port, target.host),
          };
    // A deadline of our own for the whole exchange: the `timeout` option never fires on a
    // socket handed over by createConnection, and a stopped daemon (SIGSTOP, a hung loop)
    // still completes the TCP handshake from its listen backlog, then never answers.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const req = request({ ...options, method: 'GET', headers: { Accept: 'text/plain' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
