/**
 * The kubelet's `/metrics`, named after upstream's: kubelet_http_requests_total (by method,
 * path and server_type — here `unix` for the socket, `https` for the TLS port),
 * kubelet_running_pods and kubelet_node_name.
 */
import type { IncomingMessage } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { KubeletServerType } from './logs-server.js';

/** The first path segment, so per-pod URLs do not make a label value each. */
export function pathLabel(url: string | undefined): string {
  const first = new URL(url ?? '/', 'http://kubelet').pathname.split('/').filter(Boolean)[0];
  return first === undefined ? '/' : `/${first}`;
}

export class KubeletMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'path' | 'server_type'>;

  constructor(nodeName: string, runningPods: () => number) {
    this.requests = new Counter({ name: 'kubelet_http_requests_total', help: 'Number of HTTP requests received since the server started', labelNames: ['method', 'path', 'server_type'], registers: [this.registry] });
    new Gauge({
      name: 'kubelet_running_pods',
      help: 'Number of pods that have a running pod sandbox',
      registers: [this.registry],
      collect() {
        this.set(runningPods());
      },
    });
    new Gauge({ name: 'kubelet_node_name', help: "The node's name. The count is always 1.", labelNames: ['node'], registers: [this.registry] }).set({ node: nodeName }, 1);
  }

  observe(req: IncomingMessage, serverType: KubeletServerType): void {
    this.requests.inc({ method: req.method ?? 'GET', path: pathLabel(req.url), server_type: serverType });
  }
}
