/**
 * How a lab node joins: exactly as a host would. The lab (holding the admin kubeconfig,
 * like a control-plane host) creates a bootstrap token unless given one, then runs
 * `pontoon join --no-start` inside the node's namespace — over the fabric to the apiserver's
 * TCP address, verifying the CA by hash — which leaves the node's kubeconfig (its own
 * certificate) in the node's dir. The lab then starts the kubelet itself with that
 * kubeconfig and its per-node flags (root dir, pod netns prefix, host filesystem), so
 * `cluster restart kubelet` can start it again with the same command line.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { netnsFile } from './topology.js';
import { createBootstrapToken, joinCommand } from '../bootstrap-tokens.js';
import { ensureClusterInfo } from '../cluster-info.js';
import { adminClient, ClusterError, cliPath, type ClusterState, type NodeState } from './state.js';

const execFileAsync = promisify(execFile);

/** add-node's own tokens live this long: long enough for one join. */
const ADD_NODE_TOKEN_TTL_SECONDS = 15 * 60;

export function joinServer(state: ClusterState): string {
  const url = state.controlPlane?.fabricUrl;
  if (!url) throw new ClusterError(`cluster ${state.name} has no apiserver address on the fabric to join over`);
  return url;
}

export async function createJoinToken(state: ClusterState, nodeName: string): Promise<string> {
  const caPem = readFileSync(state.controlPlane!.caFile, 'utf8');
  const created = await createBootstrapToken(adminClient(state), {
    ttlSeconds: ADD_NODE_TOKEN_TTL_SECONDS,
    description: `pontoon cluster add-node ${nodeName}`,
    clusterInfo: { server: joinServer(state), caPem },
  });
  return created.token;
}

/** Runs the join in the node's namespace; a refusal becomes a one-line ClusterError. */
export async function joinFromNode(state: ClusterState, node: NodeState, token: string, timeoutSeconds = 60): Promise<void> {
  const caPem = readFileSync(state.controlPlane!.caFile, 'utf8');
  // A token made elsewhere (`pontoon token create` did this too) still finds its discovery document.
  await ensureClusterInfo(adminClient(state), joinServer(state), caPem);
  // The same line `pontoon token create --print-join-command` prints, plus the lab's bits.
  const command = joinCommand(joinServer(state), token, caPem).split(' ').slice(1);
  const argv = ['--net=' + netnsFile(node.netns), '--', process.execPath, cliPath(), ...command, '--node-name', node.name, '--dir', node.dir, '--timeout', String(timeoutSeconds), '--no-start'];
  try {
    await execFileAsync('nsenter', argv, { timeout: (timeoutSeconds + 30) * 1000 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    const line = stderr.split('\n').filter(Boolean).at(-1)?.replace(/^pontoon: /, '') ?? (err as Error).message;
    throw new ClusterError(`node ${node.name} could not join: ${line}`, { cause: err });
  }
}
