/**
 * `GET pods/<name>/log`: proxied to the kubelet of the pod's node, over TLS to its InternalIP
 * (port 10250) or over the unix socket a single-host kubelet advertises; kubelet-client.ts
 * decides which and dials. The kubelet's answer streams through unchanged, so `follow=true`
 * stays open until either side closes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RESOURCE } from '../api/resources.js';
import type { Pod } from '../api/types.js';
import { describeError } from '../lib/errors.js';
import { describeEndpoint, type KubeletClient } from './kubelet-client.js';
import type { Registry } from './registry.js';
import { badRequest, failure, serviceUnavailable } from './status.js';
import { sendStatus } from './http.js';

export { KUBELET_SOCKET_ANNOTATION } from './kubelet-client.js';

/** Query parameters the kubelet's containerLogs endpoint understands. */
const FORWARDED = ['follow', 'tailLines', 'previous', 'timestamps', 'sinceSeconds', 'limitBytes'];

function containerNames(pod: Pod): string[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
}

export async function servePodLog(
  res: ServerResponse,
  registry: Registry,
  kubelets: KubeletClient,
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
  const endpoint = await kubelets.endpointOf(registry, pod);

  const params = new URLSearchParams();
  for (const key of FORWARDED) {
    const value = query.get(key);
    if (value !== undefined) params.set(key, value);
  }
  const path = `/containerLogs/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${encodeURIComponent(container)}${params.size ? `?${params}` : ''}`;

  await new Promise<void>((resolve) => {
    const upstream = kubelets.get(endpoint, path, (answer: IncomingMessage) => {
      const code = answer.statusCode ?? 502;
      if (code >= 300) {
        let text = '';
        answer.setEncoding('utf8');
        answer.on('data', (chunk: string) => {
          if (text.length < 64 * 1024) text += chunk;
        });
        answer.on('end', () => {
          const reason = code === 404 ? 'NotFound' : code === 400 ? 'BadRequest' : code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : 'InternalError';
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
        sendStatus(res, serviceUnavailable(`failed to reach the kubelet of node ${endpoint.nodeName} at ${describeEndpoint(endpoint)}: ${describeError(err)}`).status);
      } else {
        res.destroy();
      }
      resolve();
    });
    upstream.end();
  });
}
