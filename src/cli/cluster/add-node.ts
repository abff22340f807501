/**
 * `pontoon cluster add-node`: a node joins a running cluster, as a machine running kubeadm
 * join would — a namespace on its rack, `pontoon join` with a bootstrap token (join-node.ts)
 * for the node's own certificate, the kubelet registering its Node. `--no-token` keeps the
 * older path (a static token for the node, the apiserver restarted to read it) as the
 * reference bench/join.ts compares against. In daemonset mode nothing else is done for it: the DaemonSets see the new Node
 * and start its agents (install-cni, flanneld, proxy, bgp), and DNS works there once they
 * are Ready. In process mode the lab starts the same daemons as `cluster up` does.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { agentPods, describeAgentPod, isPodReady } from './agents.js';
import {
  adminClient,
  ClusterError,
  type ClusterState,
  createNode,
  createNodeNamespace,
  startNodeDaemons,
  type NodeState,
  nodeDaemonWatches,
  readNodeSubnets,
  removeNode,
  restartComponent,
  saveState,
  startBgp,
} from './cluster.js';
import { addNodeToken } from './control-plane.js';
import { createJoinToken, joinFromNode } from './join-node.js';
import { enabledAgents, waitNodesReady, waitSubnetEnv } from './daemonset-mode.js';
import { waitHealthy } from './health.js';
import { unplug } from './unplug.js';
import { deleteNetns } from '../../lib/netns.js';

export interface AddNodeOptions {
  name?: string;
  rack?: number;
  /** A bootstrap token to join with; absent: add-node creates one. */
  token?: string;
  /** The reference path: a static token and an apiserver restart instead of a join. */
  noToken?: boolean;
  progress: (line: string) => void;
}

/** The host part of a node's underlay address, 10 + index: the next free index. */
function nextIndex(state: ClusterState): number {
  const used = state.nodes.map((n) => Number(n.underlayIp.split('.')[3] ?? '10') - 10);
  return Math.max(0, ...used) + 1;
}

export async function addNode(state: ClusterState, options: AddNodeOptions): Promise<NodeState> {
  const index = nextIndex(state);
  const name = options.name ?? `n${index}`;
  if (!/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(name)) throw new ClusterError(`node name "${name}" must be a DNS label of at most 32 characters`);
  if (state.nodes.some((n) => n.name === name)) throw new ClusterError(`cluster ${state.name} already has a node "${name}"`);
  const rack = options.rack ?? (index - 1) % state.racks;
  if (!Number.isInteger(rack) || rack < 0 || rack >= state.racks) throw new ClusterError(`--rack must be between 0 and ${state.racks - 1}, got ${rack}`);
  if (index > 240) throw new ClusterError('no underlay address left on the racks (at most 240 nodes)');
  if (state.bgp?.topology === 'tor') throw new ClusterError('add-node with --bgp-topology tor would need the router speaker reconfigured: not supported');

  if (options.token !== undefined && (options.noToken || !state.controlPlane)) throw new ClusterError('--token joins through the control plane: not with --no-token or without a control plane');
  const joins = !!state.controlPlane && !options.noToken;
  let started = Date.now();
  if (state.controlPlane && !joins) {
    addNodeToken(state.controlPlane, name);
    await restartComponent(state, 'apiserver');
    options.progress(`✔ token for system:node:${name}; apiserver restarted to read it (${Date.now() - started} ms)`);
  }
  let token = options.token;
  if (joins && token === undefined) {
    started = Date.now();
    token = await createJoinToken(state, name);
    options.progress(`✔ bootstrap token ${token.split('.')[0]} created (${Date.now() - started} ms)`);
  }
  started = Date.now();
  let node: NodeState | undefined;
  try {
    if (joins) {
      node = createNodeNamespace(state, name, rack, index);
      const joinStarted = Date.now();
      await joinFromNode(state, node, token!);
      options.progress(`✔ ${name} joined with its bootstrap token: certificate for system:node:${name} issued (${Date.now() - joinStarted} ms)`);
      startNodeDaemons(state, node);
    } else {
      node = createNode(state, name, rack, index);
    }
    await waitHealthy(nodeDaemonWatches(node));
    if (state.agents === 'daemonset') {
      await waitAgentsReady(state, node);
      await waitSubnetEnv(state, node);
      await waitNodesReady(state, [node.name]);
    } else if (state.bgp) {
      node.bgpPid = startBgp(state, node);
      await waitHealthy(nodeDaemonWatches(node));
    }
    readNodeSubnets(node);
    saveState(state);
  } catch (err) {
    // Nothing half-joined stays behind: the node goes as remove-node would take it.
    const partial = state.nodes.find((n) => n.name === name);
    if (partial) await removeNode(state, partial).catch(() => undefined);
    else {
      deleteNetns(`${state.name}-${name}`);
      unplug(state.fabric, name);
    }
    throw err;
  }
  const how = state.agents === 'daemonset' ? `its agents (${enabledAgents(state).join(', ')}) from the DaemonSets` : 'its daemons started';
  options.progress(`✔ node ${name} on rack ${rack} at ${node.underlayIp}, subnet ${node.subnet}, ${how} (${Date.now() - started} ms)`);
  return node;
}

async function waitAgentsReady(state: ClusterState, node: NodeState, timeoutMs = 180_000): Promise<void> {
  const api = adminClient(state);
  const deadline = Date.now() + timeoutMs;
  const components = enabledAgents(state);
  for (;;) {
    const pods = await agentPods(api, node.name);
    const missing = components.filter((c) => !pods.some((p) => p.metadata.labels?.['pontoon.dev/component'] === c && isPodReady(p)));
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      const shown = missing.map((c) => `${c}: ${describeAgentPod(pods.find((p) => p.metadata.labels?.['pontoon.dev/component'] === c))}`).join(', ');
      throw new ClusterError(`agents on ${node.name} not Ready after ${timeoutMs} ms (${shown})`);
    }
    await sleep(250);
  }
}
