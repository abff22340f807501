/**
 * The apiserver's etcd as a cluster (`cluster up --store etcd --etcd-members N`), the way
 * kubeadm's stacked or external etcd runs: N members of Debian's etcd, each in its own network
 * namespace on rack 0 of the fabric (`<cluster>-etcd<i>`, 198.18.0.<4+i>), peering over the
 * fabric on :2380 with a static `--initial-cluster`.
 *
 * Design notes:
 * - Clients: each member serves its client API on the fabric (:2379, for anything running in
 *   a namespace) and on a unix socket in its data directory. The apiserver runs in the root
 *   namespace, which has no route into the fabric and must not get one, so it is given the
 *   members' sockets (`etcd://unix:...,unix:...`): an AF_UNIX path is not bound to a network
 *   namespace, as with the apiserver's own socket. etcd names a unix listener `host:port`
 *   relative to its working directory, hence `env -C <dir>` and `unix://client.sock:2379`.
 * - A member restarted with its data directory rejoins from its WAL: etcd ignores the
 *   `--initial-*` flags when the data directory exists, so the same command line serves
 *   both the first start and every restart.
 * - One member (the default) is the same shape, so the single-member and 3-member runs of
 *   bench/etcd-cluster.ts differ in the member count only.
 * - Heartbeat and election timeouts are etcd's defaults (100 ms / 1000 ms); a lost leader is
 *   replaced in about 1-2 s, which the store's retries cover.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PontoonError } from '../../lib/errors.js';
import { startDetached } from '../../lib/exec.js';
import { parseIpNet } from '../../lib/ip.js';
import { logTail } from './control-plane.js';
import { makeNamespace, plug } from './topology.js';

export class EtcdClusterError extends PontoonError {}

export const MAX_ETCD_MEMBERS = 5;
const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
/** The unix listener's name inside the member's directory (etcd wants `host:port`). */
const CLIENT_SOCKET = `client.sock:${CLIENT_PORT}`;

export interface EtcdMemberState {
  /** `etcd1` ...: etcd's --name and the fabric-side link name */
  name: string;
  netns: string;
  ip: string;
  /** Its data directory lives under it (`data/`), with its socket and log. */
  dir: string;
  pid: number;
}

export interface EtcdClusterState {
  members: EtcdMemberState[];
}

/** Member i (1-based) sits at 198.18.0.<4+i>: after the rack gateway (.1) and ctl (.2), before the nodes (.11+). */
export function etcdMemberIp(index: number): string {
  return `198.18.0.${4 + index}`;
}

export function planEtcdCluster(clusterName: string, stateDir: string, members: number): EtcdClusterState {
  if (!Number.isInteger(members) || members < 1 || members > MAX_ETCD_MEMBERS) {
    throw new EtcdClusterError(`--etcd-members must be between 1 and ${MAX_ETCD_MEMBERS}, got ${members}`);
  }
  return {
    members: Array.from({ length: members }, (_, i) => ({
      name: `etcd${i + 1}`,
      netns: `${clusterName}-etcd${i + 1}`,
      ip: etcdMemberIp(i + 1),
      dir: join(stateDir, `etcd${i + 1}`),
      pid: 0,
    })),
  };
}

export const memberSocket = (member: EtcdMemberState): string => join(member.dir, CLIENT_SOCKET);
export const memberLog = (member: EtcdMemberState): string => join(member.dir, 'etcd.log');

/** The apiserver's `--store`: every member's unix socket. */
export function etcdStoreUrl(cluster: EtcdClusterState): string {
  return `etcd://${cluster.members.map((m) => `unix:${memberSocket(m)}`).join(',')}`;
}

/** `http://198.18.0.5:2379,...`: the client URLs on the fabric, for daemons in namespaces. */
export function etcdFabricEndpoints(cluster: EtcdClusterState): string[] {
  return cluster.members.map((m) => `http://${m.ip}:${CLIENT_PORT}`);
}

function memberArgv(cluster: EtcdClusterState, member: EtcdMemberState): string[] {
  const initialCluster = cluster.members.map((m) => `${m.name}=http://${m.ip}:${PEER_PORT}`).join(',');
  return [
    'ip', 'netns', 'exec', member.netns,
    'env', '-C', member.dir,
    'etcd',
    '--name', member.name,
    '--data-dir', join(member.dir, 'data'),
    '--listen-client-urls', `http://${member.ip}:${CLIENT_PORT},unix://${CLIENT_SOCKET}`,
    '--advertise-client-urls', `http://${member.ip}:${CLIENT_PORT}`,
    '--listen-peer-urls', `http://${member.ip}:${PEER_PORT}`,
    '--initial-advertise-peer-urls', `http://${member.ip}:${PEER_PORT}`,
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', `pontoon-${cluster.members[0]?.netns ?? ''}`,
    '--log-level', 'warn',
  ];
}

/** Starts (or restarts) one member, which must not be running; returns its pid. */
export function startEtcdMember(cluster: EtcdClusterState, member: EtcdMemberState): number {
  mkdirSync(member.dir, { recursive: true });
  // A killed member leaves its socket file behind, and etcd will not bind over it.
  rmSync(memberSocket(member), { force: true });
  member.pid = startDetached(memberArgv(cluster, member), memberLog(member));
  return member.pid;
}

/**
 * Namespaces, links and processes for every member, then waits until each answers `/health`
 * (which needs a leader, so the cluster has formed).
 */
export async function startEtcdCluster(cluster: EtcdClusterState, fabric: string, gateway: string | undefined): Promise<void> {
  for (const member of cluster.members) {
    makeNamespace(member.netns);
    plug(fabric, 0, member.name, member.netns, 'eth0', parseIpNet(`${member.ip}/24`), gateway);
  }
  // All at once: each member waits for a quorum of its peers before it serves.
  for (const member of cluster.members) startEtcdMember(cluster, member);
  await Promise.all(cluster.members.map((m) => waitMemberHealthy(m)));
}

/** One HTTP request to a member's client API (etcd's JSON gateway) over its unix socket; undefined when it does not answer. */
function memberRequest(member: EtcdMemberState, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<{ code: number; body: string } | undefined> {
  return new Promise((resolve) => {
    if (!existsSync(memberSocket(member))) {
      resolve(undefined);
      return;
    }
    const req = request({ socketPath: memberSocket(member), method, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

/** GET /health: `{"health":"true"}` once the member has a leader. */
export async function memberHealth(member: EtcdMemberState, timeoutMs = 2000): Promise<boolean> {
  const answer = await memberRequest(member, 'GET', '/health', timeoutMs);
  return answer !== undefined && answer.code === 200 && answer.body.includes('"true"');
}

export interface EtcdMemberStatus {
  memberId: string;
  /** The leader's member id, as this member sees it ("0": none). */
  leader: string;
  revision: number;
}

/** The member's Maintenance/Status (`etcdctl endpoint status`); undefined when it does not answer. */
export async function memberStatus(member: EtcdMemberState, timeoutMs = 2000): Promise<EtcdMemberStatus | undefined> {
  const answer = await memberRequest(member, 'POST', '/v3/maintenance/status', timeoutMs);
  if (!answer || answer.code !== 200) return undefined;
  const status = JSON.parse(answer.body) as { header?: { member_id?: string; revision?: string }; leader?: string };
  return { memberId: status.header?.member_id ?? '', leader: status.leader ?? '0', revision: Number(status.header?.revision ?? 0) };
}

/** The member that leads now, found by asking the members themselves; undefined during an election. */
export async function leaderMember(cluster: EtcdClusterState): Promise<EtcdMemberState | undefined> {
  const statuses = await Promise.all(cluster.members.map(async (m) => ({ member: m, status: await memberStatus(m) })));
  const leaderId = statuses.find((s) => s.status && s.status.leader !== '0')?.status?.leader;
  return statuses.find((s) => s.status?.memberId === leaderId)?.member;
}

export async function waitMemberHealthy(member: EtcdMemberState, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await memberHealth(member)) return;
    await sleep(100);
  }
  throw new EtcdClusterError(`etcd member ${member.name} (${member.ip}) did not become healthy in ${timeoutMs} ms\n${logTail(memberLog(member))}`);
}

export function findMember(cluster: EtcdClusterState, name: string): EtcdMemberState {
  const member = cluster.members.find((m) => m.name === name);
  if (!member) throw new EtcdClusterError(`no etcd member "${name}": the cluster has ${cluster.members.map((m) => m.name).join(', ')}`);
  return member;
}
