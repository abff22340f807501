/**
 * `GET pods/<name>/log`: proxied to the kubelet of the pod's node over the unix socket that
 * kubelet advertises in its Node's `pontoon.dev/kubelet-socket` annotation (the apiserver
 * and every simulated node share one filesystem, and AF_UNIX paths work across network
 * namespaces). The kubelet's answer streams through unchanged, so `follow=true` stays open
 * until either side closes.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { KubeObject } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Pod } from '../api/types.js';
import { describeError } from '../lib/errors.js';
import type { Registry } from './registry.js';
import { badRequest, failure, notFound, serviceUnavailable } from './status.js';
import { sendStatus } from './http.js';

export const KUBELET_SOCKET_ANNOTATION = 'pontoon.dev/kubelet-socket';

/** Query parameters the kubelet's containerLogs endpoint understands. */
const FORWARDED = ['follow', 'tailLines', 'previous', 'timestamps', 'sinceSeconds', 'limitBytes'];

function containerNames(pod: Pod): string[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
}

export async function servePodLog(
  res: ServerResponse,
  registry: Registry,
  namespace: string,
  name: string,
  query: Map<string, string>,
): Promise<void> {
  const pod = (await registry.get(RESOURCE.pods, namespace, name)) as Pod;
  const names = containerNames(pod);
  let container = query.get('container');
  if (!container) {
    const regular = (pod.spec?.containers ?? []).map((c) => c.name);
    if (regular.length !== 1) {
      throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${regular.join(' ')}]`);
    }
    container = regular[0]!;
  } else if (!names.includes(container)) {
    throw badRequest(`container ${container} is not valid for pod ${name}`);
  }
  const nodeName = pod.spec?.nodeName;
  if (!nodeName) throw badRequest(`pod ${name} does not have a host assigned`);
  let node: KubeObject;
  try {
    node = await registry.get(RESOURCE.nodes, undefined, nodeName);
  } catch {
    throw notFound(RESOURCE.nodes, nodeName);
  }
  const socketPath = node.metadata.annotations?.[KUBELET_SOCKET_ANNOTATION];
  if (!socketPath) throw serviceUnavailable(`node ${nodeName} does not advertise a kubelet log endpoint (annotation ${KUBELET_SOCKET_ANNOTATION})`);

  const params = new URLSearchParams();
  for (const key of FORWARDED) {
    const value = query.get(key);
    if (value !== undefined) params.set(key, value);
  }
  const path = `/containerLogs/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${encodeURIComponent(container)}${params.size ? `?${params}` : ''}`;

  await new Promise<void>((resolve) => {
    const upstream = request({ socketPath, path, method: 'GET' }, (answer: IncomingMessage) => {
      const code = answer.statusCode ?? 502;
      if (code >= 300) {
        let text = '';
        answer.setEncoding('utf8');
        answer.on('data', (chunk: string) => {
          if (text.length < 64 * 1024) text += chunk;
        });
        answer.on('end', () => {
          const reason = code === 404 ? 'NotFound' : code === 400 ? 'BadRequest' : 'InternalError';
          sendStatus(res, failure(code, reason, text.trim() || `kubelet answered ${code}`));
          resolve();
        });
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private' });
      res.flushHeaders();
      answer.pipe(res);
      answer.on('end', resolve);
      answer.on('error', () => {
        res.destroy();
        resolve();
      });
    });
    // The client going away ends the kubelet stream too (follow=true would otherwise leak).
    res.on('close', () => {
      upstream.destroy();
      resolve();
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) {
        sendStatus(res, serviceUnavailable(`failed to reach the kubelet of node ${nodeName} at ${socketPath}: ${describeError(err)}`).status);
      } else {
        res.destroy();
      }
      resolve();
    });
    upstream.end();
  });
}
