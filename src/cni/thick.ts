/**
 * The thick-plugin wire format: how an invocation of one of our CNI plugins travels to a
 * long-running `pontoon cni-server` instead of starting Node per call. Two clients speak it:
 * `pontoon-*-shim` (a shell script a runtime execs like any plugin) and the kubelet's CNI
 * helper (src/kubelet/cni-helper.ts); the server is src/cni-plugin/server.ts.
 *
 * One invocation per connection. The server speaks first, `pontoon-cni 1\n`, so a client
 * that sees nothing knows nothing ran and may run the plugin itself. The client sends
 * `NAME=value` lines (PONTOON_PLUGIN, then the CNI_* variables), an empty line, the network
 * config, and closes its side. The server answers with the exit code on a line, then what
 * the plugin printed (its result or its CNI error JSON), and closes.
 */
import { connect } from 'node:net';
import { PontoonError } from '../lib/errors.js';

export const CNI_SERVER_GREETING = 'pontoon-cni 1\n';
export const DEFAULT_CNI_SOCKET = '/run/pontoon/cni.sock';
/** Names the plugin to run; a shim from before it existed ran only pontoon-bridge. */
export const PLUGIN_VARIABLE = 'PONTOON_PLUGIN';
export const DEFAULT_SERVED_PLUGIN = 'pontoon-bridge';
/** What a server runs: our plugins that do their work in-process (pontoon-ipam is called by them). */
export const THICK_PLUGINS = ['pontoon-bridge', 'pontoon-flannel'] as const;
export type ThickPlugin = (typeof THICK_PLUGINS)[number];

export function isThickPlugin(type: string): type is ThickPlugin {
  return (THICK_PLUGINS as readonly string[]).includes(type);
}
/** A network config is a few KiB; anything near this is not one. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** Only these reach the plugin: the server's own environment is not the runtime's. */
export const CNI_VARIABLES: ReadonlySet<string> = new Set(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']);

/** One invocation as a client sent it. */
export interface CniRequest {
  plugin: string;
  env: Record<string, string>;
  stdin: Buffer;
}

export interface CniReply {
  code: number;
  stdout: string;
}

/** The server took the request and went away before answering: whether it ran is unknown. */
export class CniServerVanishedError extends PontoonError {}

export function encodeCniRequest(request: CniRequest): Buffer {
  const lines = [`${PLUGIN_VARIABLE}=${request.plugin}`];
  for (const [name, value] of Object.entries(request.env)) {
    if (!CNI_VARIABLES.has(name)) continue;
    if (value.includes('\n')) throw new PontoonError(`${name} contains a newline; it cannot be sent to the CNI server`);
    lines.push(`${name}=${value}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\n')}\n\n`), request.stdin]);
}

/** Splits a request into plugin, variables and config; undefined when it is not one. */
export function parseCniRequest(data: Buffer): CniRequest | undefined {
  const end = data.indexOf('\n\n');
  if (end < 0) return undefined;
  const env: Record<string, string> = {};
  let plugin = DEFAULT_SERVED_PLUGIN;
  for (const line of data.subarray(0, end).toString('utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at <= 0) return undefined;
    const name = line.slice(0, at);
    const value = line.slice(at + 1);
    if (name === PLUGIN_VARIABLE) plugin = value;
    // The shim prints every variable it knows; one the runtime did not set arrives empty.
    else if (CNI_VARIABLES.has(name) && value !== '') env[name] = value;
  }
  return { plugin, env, stdin: data.subarray(end + 2) };
}

/**
 * Runs one invocation on the server at `socketPath`. Resolves undefined when no server
 * greeted (nothing ran: the caller may exec the plugin instead); throws
 * CniServerVanishedError when one greeted and then closed without an answer.
 */
export function callCniServer(socketPath: string, request: CniRequest, timeoutMs: number): Promise<CniReply | undefined> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      outcome();
    };
    const timer = setTimeout(() => finish(() => reject(new CniServerVanishedError(`CNI server at ${socketPath} did not answer within ${timeoutMs} ms`))), timeoutMs);
    socket.on('connect', () => socket.end(encodeCniRequest(request)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {
      const greeted = Buffer.concat(chunks).toString('utf8').startsWith(CNI_SERVER_GREETING);
      finish(() => (greeted ? reject(new CniServerVanishedError(`CNI server at ${socketPath} failed mid-call`)) : resolve(undefined)));
    });
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      finish(() => {
        if (!text.startsWith(CNI_SERVER_GREETING)) return resolve(undefined);
        const rest = text.slice(CNI_SERVER_GREETING.length);
        const newline = rest.indexOf('\n');
        const code = newline < 0 ? NaN : Number(rest.slice(0, newline));
        if (!Number.isInteger(code) || rest.slice(0, newline) === '') return reject(new CniServerVanishedError(`CNI server at ${socketPath} closed the connection before answering`));
        resolve({ code, stdout: rest.slice(newline + 1) });
      });
    });
  });
}
