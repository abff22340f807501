/**
 * `--agents daemonset`: what `cluster up`, `restart`, `status` and `add-node` do when the node
 * agents are DaemonSet pods. Kept apart from cluster.ts (the process mode) so the two read
 * separately: here everything goes through the apiserver and kubectl, as a user's would.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { kubeconfigText, readTokens } from './control-plane.js';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { RESOURCE } from '../../api/resources.js';
import type { Node, Pod } from '../../api/types.js';
import {
  AGENT_DAEMONSETS,
  AGENT_NAMESPACE,
  type AgentComponent,
  agentPods,
  AgentsError,
  componentOf,
  describeAgentPod,
  isPodReady,
  kubectl,
  readDeployTemplate,
  renderManifest,
} from './agents.js';
import { APISERVER_FABRIC_PORT, adminClient, type ClusterState, CTL_IP, cliPath, type NodeState, nodeSubnetFile, SERVICE_NETWORK } from './state.js';
import { cniDistDir } from '../paths.js';
import { networkConfigJson } from './state.js';
import { podNetworks } from './addressing.js';

/** The Service range's 10th address, where kube-dns lives (upstream's convention). */
export const CLUSTER_DNS_IP = '10.96.0.10';
export const CLUSTER_DOMAIN = 'cluster.local';
const ROLLOUT_TIMEOUT = '180s';

function kubectlFor(state: ClusterState, args: readonly string[], input?: string): string {
  const cp = state.controlPlane;
  if (!cp) throw new AgentsError(`cluster ${state.name} runs no control plane: the agents need an apiserver`);
  const cache = join(state.stateDir, 'kube-cache');
  mkdirSync(cache, { recursive: true });
  return kubectl(cp.kubeconfig, cache, args, input);
}

/** The agents enabled in this cluster, in deploy/pontoon.yaml's component names. */
export function enabledAgents(state: ClusterState): AgentComponent[] {
  const proxy = state.proxy !== undefined && state.proxy !== 'none';
  return ['flanneld', ...(proxy ? (['proxy'] as const) : []), ...(state.bgp ? (['bgp'] as const) : [])];
}

export function agentsManifest(state: ClusterState): string {
  const enabled = new Set<string>(enabledAgents(state));
  const values: Record<string, string> = {
    NODE: process.execPath,
    PONTOON: cliPath(),
    CNI_SOURCE: cniDistDir(),
    NET_CONF: networkConfigJson(state.backend, state.directRouting, state.bgp?.ipip, state.ipFamily ?? 'ipv4'),
    APISERVER_HOST: CTL_IP,
    APISERVER_PORT: String(APISERVER_FABRIC_PORT),
    // $(NODE_NAME) is expanded by the kubelet from the container's env.
    HOST_ROOT: join(state.stateDir, '$(NODE_NAME)', 'root'),
    PROXY_MODE: state.proxy ?? 'nftables',
    CLUSTER_CIDR: podNetworks(state.ipFamily ?? 'ipv4').join(','),
    IPIP_MODE: state.bgp?.ipip ?? 'cross-subnet',
  };
  // A DaemonSet of an agent this cluster does not run is left out; everything else stays.
  return renderManifest(readDeployTemplate('pontoon.yaml'), values, (object) => object['kind'] !== 'DaemonSet' || enabled.has(componentOf(object) ?? ''));
}

/** Applies deploy/pontoon.yaml and waits for every agent DaemonSet's rollout; returns their names. */
export async function deployAgents(state: ClusterState): Promise<string[]> {
  kubectlFor(state, ['apply', '-f', '-'], agentsManifest(state));
  const names = enabledAgents(state).map((c) => AGENT_DAEMONSETS[c].daemonSet);
  for (const name of names) kubectlFor(state, ['rollout', 'status', `daemonset/${name}`, '-n', AGENT_NAMESPACE, `--timeout=${ROLLOUT_TIMEOUT}`]);
  // Ready means started (the agents have no readiness probe, like kube-flannel's): the
  // first sync is the subnet.env flanneld writes after its masquerade rules went in.
  for (const node of state.nodes) await waitSubnetEnv(state, node);
  await waitNodesReady(state, state.nodes.map((n) => n.name));
  return names;
}

/** Waits for the Nodes' Ready condition (the kubelet posts it once the conflist exists). */
export async function waitNodesReady(state: ClusterState, names: readonly string[], timeoutMs = 60_000): Promise<void> {
  const api = adminClient(state);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = await api.list<Node>(RESOURCE.nodes);
    const notReady = names.filter((name) => nodes.items.find((n) => n.metadata.name === name)?.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True');
    if (notReady.length === 0) return;
    if (Date.now() > deadline) {
      const why = notReady.map((name) => `${name}: ${nodes.items.find((n) => n.metadata.name === name)?.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? 'not registered'}`);
      throw new AgentsError(`node(s) not Ready after ${timeoutMs} ms: ${why.join('; ')}`);
    }
    await sleep(200);
  }
}

/** Waits for the node's flanneld pod to write subnet.env; fails with that pod's log. */
export async function waitSubnetEnv(state: ClusterState, node: NodeState, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(nodeSubnetFile(node))) {
    if (Date.now() > deadline) {
      const pod = componentPod(await agentPods(adminClient(state), node.name), 'flanneld');
      let log = '(no pod)';
      if (pod?.metadata.name) {
        try {
          log = kubectlFor(state, ['logs', '-n', AGENT_NAMESPACE, pod.metadata.name, '-c', AGENT_DAEMONSETS.flanneld.container, '--tail=15']);
        } catch (err) {
          log = (err as Error).message;
        }
      }
      throw new AgentsError(`flanneld on ${node.name} (pod ${pod?.metadata.name ?? '-'}, ${describeAgentPod(pod)}) wrote no ${nodeSubnetFile(node)} in ${timeoutMs} ms; its log:\n${log}`);
    }
    await sleep(200);
  }
}

/**
 * Applies deploy/dns.yaml (cluster DNS behind kube-system/kube-dns at 10.96.0.10) and waits
 * for its rollout. Undefined when this checkout has no DNS manifest.
 */
export async function deployDns(state: ClusterState): Promise<string | undefined> {
  let template: string;
  try {
    template = readDeployTemplate('dns.yaml');
  } catch {
    return undefined;
  }
  const values: Record<string, string> = {
    NODE: process.execPath,
    PONTOON: cliPath(),
    KUBECONFIG: writeDnsKubeconfig(state),
    CLUSTER_DNS_IP,
    CLUSTER_DOMAIN,
    SERVICE_CIDR: SERVICE_NETWORK,
    APISERVER_HOST: CTL_IP,
    APISERVER_PORT: String(APISERVER_FABRIC_PORT),
  };
  const text = renderManifest(template, values);
  kubectlFor(state, ['apply', '-f', '-'], text);
  for (const object of parseAllDocuments(text).map((d) => d.toJSON() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null)) {
    if (object?.kind !== 'Deployment' || !object.metadata?.name) continue;
    kubectlFor(state, ['rollout', 'status', `deployment/${object.metadata.name}`, '-n', object.metadata.namespace ?? AGENT_NAMESPACE, `--timeout=${ROLLOUT_TIMEOUT}`]);
  }
  return `cluster DNS: kube-system/kube-dns at ${CLUSTER_DNS_IP} (kubectl apply -f deploy/dns.yaml)`;
}

/**
 * The kubeconfig deploy/dns.yaml's pods read the API with: the apiserver's fabric address
 * (the pods are on the pod network, not the node's), the cluster CA, a token of its own.
 */
function writeDnsKubeconfig(state: ClusterState): string {
  const cp = state.controlPlane;
  if (!cp?.fabricUrl) throw new AgentsError(`cluster ${state.name} has no apiserver on the fabric for cluster DNS`);
  const path = join(state.stateDir, 'dns.kubeconfig');
  const token = readTokens(cp.tokensFile).get('system:kube-dns') ?? '';
  writeFileSync(path, kubeconfigText({ cluster: state.name, server: cp.fabricUrl, token, caPem: readFileSync(cp.caFile, 'utf8') }), { mode: 0o600 });
  return path;
}

function componentPod(pods: readonly Pod[], component: AgentComponent): Pod | undefined {
  // The newest first: during a restart the terminating pod and its replacement both exist.
  return pods
    .filter((p) => p.metadata.labels?.['pontoon.dev/component'] === component)
    .sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''))[0];
}

/** Per node, per enabled agent: the pod's health as `cluster status` shows it. */
export async function agentStatus(state: ClusterState): Promise<Map<string, Record<AgentComponent, string>>> {
  const pods = await agentPods(adminClient(state));
  const status = new Map<string, Record<AgentComponent, string>>();
  for (const node of state.nodes) {
    const onNode = pods.filter((p) => p.spec.nodeName === node.name);
    const row = { flanneld: '-', proxy: '-', bgp: '-' } as Record<AgentComponent, string>;
    for (const component of enabledAgents(state)) row[component] = describeAgentPod(componentPod(onNode, component));
    status.set(node.name, row);
  }
  return status;
}

/**
 * `cluster restart flanneld|proxy|bgp <node>` in daemonset mode: deletes the node's agent pod
 * and waits for the DaemonSet's replacement to be Ready; returns its name. The agents reconcile
 * on start and never flush, so the data plane keeps forwarding meanwhile.
 */
export async function restartAgentPod(state: ClusterState, component: AgentComponent, nodeName: string, timeoutMs = 120_000): Promise<string> {
  if (!enabledAgents(state).includes(component)) throw new AgentsError(`cluster ${state.name} runs no ${component} agent`);
  const api = adminClient(state);
  const old = componentPod(await agentPods(api, nodeName), component);
  if (!old?.metadata.name) throw new AgentsError(`no ${component} agent pod on node ${nodeName} (DaemonSet ${AGENT_DAEMONSETS[component].daemonSet})`);
  await api.delete(RESOURCE.pods, old.metadata.name, AGENT_NAMESPACE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pod = componentPod(await agentPods(api, nodeName), component);
    if (pod && pod.metadata.uid !== old.metadata.uid && isPodReady(pod)) return pod.metadata.name ?? '';
    if (Date.now() > deadline) throw new AgentsError(`the ${component} agent on ${nodeName} did not come back within ${timeoutMs} ms: ${describeAgentPod(pod)}`);
    await sleep(200);
  }
}

/**
 * The kubelet flags of a lab node beyond its paths: in daemonset mode hostPath volumes
 * resolved under the node's own host filesystem (so each node's /run/flannel, /etc/cni/net.d
 * and /opt/cni/bin are its own); with cluster DNS, resolv.conf pointing pods at it; and the
 * ServiceAccount token volume, which our apiserver's admission does not add (the kubelet does);
 * with `--cni helper`, our plugins run in the kubelet's cni-server child instead of an exec each.
 */
export function labKubeletFlags(options: { hostRoot?: string; clusterDns: boolean; cniHelper: boolean }): string[] {
  return [
    ...(options.cniHelper ? ['--cni-helper'] : []),
    ...(options.hostRoot ? ['--host-path-root', options.hostRoot] : []),
    ...(options.clusterDns ? ['--cluster-dns', CLUSTER_DNS_IP, '--cluster-domain', CLUSTER_DOMAIN] : []),
    '--add-service-account-volume',
  ];
}
