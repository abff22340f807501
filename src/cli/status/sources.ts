/**
 * Where `pontoon status` finds each daemon.
 *
 * - The namespace lab (`--cluster NAME`, or a kubeconfig under /run/pontoon/NAME/): every
 *   node's daemons run in the node's namespace on their default ports, reached on that
 *   namespace's loopback; the lab's controller-manager and scheduler on their unix sockets.
 * - A real cluster (any other kubeconfig): each node at its InternalIP on the default ports
 *   (daemons must then bind a reachable address: see docs/metrics.md), the controller-manager
 *   and scheduler on the apiserver's host unless `--control-plane-host` says otherwise.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Node } from '../../api/types.js';
import { clientFromFlags } from '../../client/client.js';
import { adminClient, ClusterError, loadState, STATE_ROOT, type ClusterState } from '../cluster/state.js';
import { telemetrySocket } from '../cluster/control-plane.js';
import { NODE_DAEMON_PORTS, type NodeDaemon, type StatusSource } from './snapshot.js';

export const CONTROL_PLANE_PORTS = { 'controller-manager': 10257, scheduler: 10259 } as const;

function internalIp(node: Node): string {
  return node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '';
}

export function labSource(state: ClusterState, timeoutMs: number): StatusSource {
  const cp = state.controlPlane;
  if (!cp) throw new ClusterError(`cluster ${state.name} runs no control plane: use "pontoon cluster status"`);
  const byName = new Map(state.nodes.map((n) => [n.name, n]));
  const runsProxy = state.proxy !== undefined && state.proxy !== 'none';
  return {
    cluster: state.name,
    api: adminClient(state),
    apiUrl: cp.url,
    nodeTargets(node: Node, daemon: NodeDaemon) {
      const lab = byName.get(node.metadata.name ?? '');
      const ports = NODE_DAEMON_PORTS[daemon];
      // A node the lab did not make (joined by hand) is reached like a real host, from ctl.
      const at = lab ? { netns: lab.netns, host: '127.0.0.1' } : { netns: state.etcd.netns, host: internalIp(node) };
      return { metrics: { ...at, port: ports.metrics }, health: { ...at, port: ports.health } };
    },
    expects(_node: Node, daemon: NodeDaemon) {
      if (daemon === 'proxy') return runsProxy;
      if (daemon === 'bgp') return state.backend === 'bgp';
      return true;
    },
    controlPlane: (['controller-manager', 'scheduler'] as const).map((component) => ({ component, target: { socket: telemetrySocket(state.stateDir, component) } })),
    ...(state.bgp ? { ipipMode: state.bgp.ipip } : {}),
    directRouting: state.directRouting,
    timeoutMs,
  };
}

/** The lab a kubeconfig belongs to: /run/pontoon/<name>/kubeconfig. */
export function labOfKubeconfig(path: string): string | undefined {
  const full = resolve(path);
  const match = new RegExp(`^${STATE_ROOT}/([^/]+)/kubeconfig$`).exec(full);
  return match && existsSync(join(STATE_ROOT, match[1] ?? '', 'state.json')) ? match[1] : undefined;
}

export function networkSource(options: { kubeconfig?: string; controlPlaneHost?: string; timeoutMs: number }): StatusSource {
  const api = clientFromFlags({ kubeconfig: options.kubeconfig ?? process.env['KUBECONFIG'] }, 'pontoon-status');
  const server = api.config.server;
  const apiHost = server.startsWith('unix:') ? '127.0.0.1' : new URL(server).hostname.replace(/^\[|\]$/g, '');
  const cpHost = options.controlPlaneHost ?? apiHost;
  return {
    cluster: server,
    api,
    apiUrl: server,
    nodeTargets(node: Node, daemon: NodeDaemon) {
      const host = internalIp(node);
      return { metrics: { host, port: NODE_DAEMON_PORTS[daemon].metrics }, health: { host, port: NODE_DAEMON_PORTS[daemon].health } };
    },
    controlPlane: (['controller-manager', 'scheduler'] as const).map((component) => ({ component, target: { host: cpHost, port: CONTROL_PLANE_PORTS[component] } })),
    timeoutMs: options.timeoutMs,
  };
}

/** The lab named by `--cluster`, the lab the kubeconfig belongs to, or a real cluster. */
export function sourceFor(flags: { cluster?: string; kubeconfig?: string; controlPlaneHost?: string; timeout: number }): StatusSource {
  const lab = flags.cluster ?? (flags.kubeconfig ? labOfKubeconfig(flags.kubeconfig) : process.env['KUBECONFIG'] ? labOfKubeconfig(process.env['KUBECONFIG']) : undefined);
  if (lab) return labSource(loadState(lab), flags.timeout);
  return networkSource({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}), ...(flags.controlPlaneHost ? { controlPlaneHost: flags.controlPlaneHost } : {}), timeoutMs: flags.timeout });
}
