/**
 * The connect subresources `pods/<name>/exec`, `pods/<name>/attach` and
 * `pods/<name>/portforward`: an HTTP upgrade (WebSocket, or SPDY for older clients) that the
 * apiserver checks and then proxies, byte for byte, to the kubelet of the pod's node over
 * TLS to its InternalIP:10250 (or the unix socket a single-host Node advertises) — the way upstream's UpgradeAwareHandler proxies to
 * the kubelet's streaming server. Whatever the kubelet answers (101 and the stream, or an
 * error Status) reaches the client unchanged, so the protocol lives in one place (the
 * kubelet's src/kubelet/streaming/).
 *
 * Everything the apiserver can refuse is refused before the upgrade, as a Status on the
 * raw socket: kubectl falls back from WebSocket to SPDY on any failed upgrade and prints
 * the Status of the second attempt (`Error from server (BadRequest): container x is not
 * valid for pod y`), so both attempts get the same answer.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Status } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Pod } from '../api/types.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { KubeletClient, KubeletEndpoint } from './kubelet-client.js';
import type { Registry } from './registry.js';
import { badRequest, failure } from './status.js';

export type StreamSubresource = 'exec' | 'attach' | 'portforward';

export function isStreamSubresource(subresource: string | undefined): subresource is StreamSubresource {
  return subresource === 'exec' || subresource === 'attach' || subresource === 'portforward';
}

/** Headers of the client's request that the kubelet needs to finish the handshake. */
const FORWARDED_HEADERS = ['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions', 'x-stream-protocol-version'];

function containerNames(pod: Pod): string[] {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
}

/** Writes a Status as a complete HTTP/1.1 response on a socket that was never upgraded. */
export function writeRawStatus(socket: Duplex, status: Status): void {
  const body = JSON.stringify(status);
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 503: 'Service Unavailable' }[status.code] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status.code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-cache, private\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The kubelet path for a stream request, after the checks upstream's apiserver makes. */
async function kubeletPath(registry: Registry, kubelets: KubeletClient, subresource: StreamSubresource, namespace: string, name: string, url: URL): Promise<{ endpoint: KubeletEndpoint; path: string }> {
  const pod = (await registry.get(RESOURCE.pods, namespace, name)) as Pod;
  const query = new URLSearchParams(url.search);
  const ns = encodeURIComponent(namespace);
  const podName = encodeURIComponent(name);
  if (subresource === 'portforward') {
    const endpoint = await kubelets.endpointOf(registry, pod);
    return { endpoint, path: `/portForward/${ns}/${podName}${query.size ? `?${query}` : ''}` };
  }
  let container = query.get('container') ?? '';
  if (container === '') {
    const regular = (pod.spec?.containers ?? []).map((c) => c.name);
    if (regular.length !== 1) throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${regular.join(' ')}]`);
    container = regular[0]!;
  } else if (!containerNames(pod).includes(container)) {
    throw badRequest(`container ${container} is not valid for pod ${name}`);
  }
  query.delete('container');
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') {
    throw badRequest(`cannot ${subresource === 'exec' ? 'exec into' : 'attach to'} a container in a completed pod; current phase is ${phase}`);
  }
  if (subresource === 'exec' && query.getAll('command').length === 0) throw badRequest('you must specify at least 1 command');
  const endpoint = await kubelets.endpointOf(registry, pod);
  return { endpoint, path: `/${subresource}/${ns}/${podName}/${encodeURIComponent(container)}${query.size ? `?${query}` : ''}` };
}

/**
 * Serves one upgrade request for a stream subresource. Errors before the upgrade become a
 * Status on the socket; after it, a broken side closes the other.
 */
export async function proxyPodStream(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: { registry: Registry; kubelets: KubeletClient; subresource: StreamSubresource; namespace: string; name: string; url: URL; log: Logger },
): Promise<void> {
  const { endpoint, path } = await kubeletPath(target.registry, target.kubelets, target.subresource, target.namespace, target.name, target.url);
  const upstream = await target.kubelets.dial(endpoint);
  const lines = [`${req.method ?? 'GET'} ${path} HTTP/1.1`, 'Host: kubelet'];
  for (const header of FORWARDED_HEADERS) {
    const value = req.headers[header];
    if (value !== undefined) lines.push(`${header}: ${Array.isArray(value) ? value.join(', ') : value}`);
  }
  upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  // Both directions flow untouched; either side ending or failing ends the other, so a
  // client that goes away closes the kubelet's stream, which kills what it runs.
  const done = (): void => {
    upstream.destroy();
    socket.destroy();
  };
  upstream.on('error', (err) => {
    target.log.debug({ path, err: describeError(err) }, 'kubelet stream failed');
    done();
  });
  socket.on('error', done);
  upstream.on('close', done);
  socket.on('close', done);
  socket.pipe(upstream);
  upstream.pipe(socket);
}

/** A stream subresource asked for without an upgrade: upstream's answer. */
export function upgradeRequired(): Status {
  return failure(400, 'BadRequest', 'Upgrade request required');
}
