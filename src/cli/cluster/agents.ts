/**
 * The node agents as DaemonSets (`cluster up --agents daemonset`, the default): the lab fills
 * the placeholders of deploy/pontoon.yaml (and deploy/dns.yaml), applies them with kubectl as a
 * user would, and waits for `kubectl rollout status`. The agents' health, restarts and
 * status then come from their pods, not from pids in state.json.
 *
 * Each lab node has its own "host filesystem", `<state dir>/<node>/root`: the kubelet resolves
 * hostPath volumes under it (--host-path-root) and reads its CNI conf and bin dirs from it, so
 * the agents' /run/flannel, /etc/cni/net.d and /opt/cni/bin are per node, as on real machines.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { RESOURCE } from '../../api/resources.js';
import type { Pod } from '../../api/types.js';
import type { KubeApi } from '../../client/api.js';
import { PontoonError } from '../../lib/errors.js';
import { packageRoot } from '../paths.js';

export class AgentsError extends PontoonError {}

export const AGENTS_MODES = ['daemonset', 'process'] as const;
export type AgentsMode = (typeof AGENTS_MODES)[number];
export const AGENT_NAMESPACE = 'kube-system';
export const AGENT_APP_LABEL = 'app';
export const AGENT_COMPONENT_LABEL = 'pontoon.dev/component';

export type AgentComponent = 'flanneld' | 'proxy' | 'bgp';
/** Each agent's DaemonSet and container in deploy/pontoon.yaml. */
export const AGENT_DAEMONSETS: Record<AgentComponent, { daemonSet: string; container: string }> = {
  flanneld: { daemonSet: 'pontoon-agent', container: 'flanneld' },
  proxy: { daemonSet: 'pontoon-proxy', container: 'proxy' },
  bgp: { daemonSet: 'pontoon-bgp', container: 'bgp' },
};

export function deployFile(name: string): string {
  return join(packageRoot(), 'deploy', name);
}

/** A lab node's filesystem root (its kubelet's --host-path-root). */
export function nodeHostRoot(nodeDir: string): string {
  return join(nodeDir, 'root');
}

/** Where the node sees a path of its host filesystem from the root namespace. */
export function onNode(hostRoot: string, path: string): string {
  return join(hostRoot, path);
}

/**
 * Fills `{{KEY}}` placeholders and drops the documents `keep` rejects (e.g. the proxy's
 * DaemonSet with --proxy none). A placeholder left in any kept object is an error naming it,
 * so a template change cannot silently apply a literal `{{X}}`.
 */
export function renderManifest(template: string, values: Readonly<Record<string, string>>, keep: (object: Record<string, unknown>) => boolean = () => true): string {
  const filled = template.replace(/\{\{([A-Z_]+)\}\}/g, (whole, key: string) => values[key] ?? whole);
  const objects = parseAllDocuments(filled)
    .map((doc) => {
      if (doc.errors.length > 0) throw new AgentsError(`failed to parse manifest: ${doc.errors[0]?.message ?? ''}`);
      return doc.toJSON() as Record<string, unknown> | null;
    })
    .filter((object): object is Record<string, unknown> => object !== null && keep(object));
  const text = objects.map((object) => toYaml(object)).join('---\n');
  const left = /\{\{([A-Z_]+)\}\}/.exec(text);
  if (left) throw new AgentsError(`manifest placeholder {{${left[1] ?? ''}}} has no value`);
  return text;
}

export function componentOf(object: Record<string, unknown>): string | undefined {
  const metadata = object['metadata'] as { labels?: Record<string, string> } | undefined;
  return metadata?.labels?.[AGENT_COMPONENT_LABEL];
}

export function readDeployTemplate(name: string): string {
  return readFileSync(deployFile(name), 'utf8');
}

/** Runs kubectl against the lab (its own discovery cache: ports change between labs). */
export function kubectl(kubeconfig: string, cacheDir: string, args: readonly string[], input?: string, timeoutMs = 180_000): string {
  const result = spawnSync('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args], { input, encoding: 'utf8', timeout: timeoutMs });
  if (result.error) throw new AgentsError(`failed to run kubectl ${args.join(' ')}: ${result.error.message}`, { cause: result.error });
  if (result.status !== 0) throw new AgentsError(`kubectl ${args.join(' ')} failed: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** The agent pods (all components) in kube-system, optionally only those on one node. */
export async function agentPods(api: KubeApi, nodeName?: string): Promise<Pod[]> {
  const pods = await api.list<Pod>(RESOURCE.pods, AGENT_NAMESPACE, { labelSelector: `${AGENT_APP_LABEL}=pontoon` });
  return pods.items.filter((pod) => nodeName === undefined || pod.spec.nodeName === nodeName);
}

export function isPodReady(pod: Pod): boolean {
  return pod.metadata.deletionTimestamp === undefined && pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** `running`, `ready 2 restarts`, `Pending`, ... for `cluster status`. */
export function describeAgentPod(pod: Pod | undefined): string {
  if (!pod) return 'no pod';
  const restarts = (pod.status?.containerStatuses ?? []).reduce((sum, c) => sum + (c.restartCount ?? 0), 0);
  const state = isPodReady(pod) ? 'ready' : pod.metadata.deletionTimestamp ? 'terminating' : (pod.status?.phase ?? 'Pending');
  return `${state}${restarts > 0 ? ` (${restarts} restarts)` : ''}`;
}
