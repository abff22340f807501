/**
 * More than one apiserver on the same etcd (`cluster up --store etcd --apiservers 2`), as an
 * HA control plane runs them.
 *
 * Design notes:
 * - Replica i (2, 3, ...) runs the first apiserver's command line with its own listeners:
 *   loopback port (any free one), unix socket `apiserver-<i>.sock`, and in the ctl namespace
 *   `198.18.0.2:<6442+i>` (6444 for the second). They share the ctl address rather than each
 *   getting a namespace: the apiserver runs in the root namespace and only binds a socket in
 *   ctl, so a second address would buy nothing but a second veth.
 * - Consistency comes from etcd: every apiserver's resourceVersion is etcd's revision, lists
 *   are reads at one revision and watches start from a revision, so a list from A followed by
 *   a watch on B from its resourceVersion misses nothing and repeats nothing.
 * - No load balancer: the clients fail over themselves. Every kubeconfig the lab writes names
 *   the first apiserver in `server` and all of them in the `pontoon.io/servers` extension
 *   (src/client/client.ts), so kubectl keeps using the first and the lab's daemons move on
 *   when the one they use dies.
 * - Only the first apiserver advertises itself as the `kubernetes` Service's endpoint: the
 *   endpoints are written once at start (kubernetes-endpoints.ts), and two apiservers
 *   writing different ports would overwrite each other (upstream solves that with its
 *   lease-based endpoint reconciler). Pods reach the first apiserver only.
 * - The controller-manager and scheduler run once, not per apiserver, and fail over like the
 *   other clients; with one instance there is no duplicate work to elect away.
 */
import { join } from 'node:path';
import { startDetached } from '../../lib/exec.js';
import { PontoonError } from '../../lib/errors.js';

export class ApiserverReplicaError extends PontoonError {}

export const MAX_APISERVERS = 3;

export interface ApiserverReplica {
  /** 2, 3, ... (the first apiserver is the control plane's own). */
  index: number;
  pid: number;
  /** `https://127.0.0.1:<port>` in the root namespace. */
  url: string;
  socket: string;
  /** `https://198.18.0.2:<port>` in ctl, when the first one listens there. */
  fabricUrl?: string;
  argv: string[];
  logFile: string;
}

/** The flag's value in argv (after `name`), or undefined. */
function flagValue(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
}

/** argv with `name`'s value replaced (or the flag and its value removed when `value` is undefined). */
function withFlag(argv: readonly string[], name: string, value: string | undefined): string[] {
  const at = argv.indexOf(name);
  if (at < 0) return value === undefined ? [...argv] : [...argv, name, value];
  const out = [...argv];
  if (value === undefined) out.splice(at, 2);
  else out[at + 1] = value;
  return out;
}

/** Replica `index`'s command line, from the first apiserver's. */
export function replicaArgv(firstArgv: readonly string[], options: { index: number; port: number; socket: string }): { argv: string[]; fabricPort?: number } {
  let argv = withFlag(firstArgv, '--listen', `127.0.0.1:${options.port}`);
  argv = withFlag(argv, '--socket', options.socket);
  argv = withFlag(argv, '--advertise-address', undefined);
  const netnsListen = flagValue(firstArgv, '--listen-netns');
  if (netnsListen === undefined) return { argv };
  const [netnsPath, port] = [netnsListen.slice(0, netnsListen.lastIndexOf(':')), Number(netnsListen.slice(netnsListen.lastIndexOf(':') + 1))];
  const fabricPort = port + options.index - 1;
  return { argv: withFlag(argv, '--listen-netns', `${netnsPath}:${fabricPort}`), fabricPort };
}

export function planReplica(stateDir: string, firstArgv: readonly string[], index: number, port: number, fabricAddress?: string): ApiserverReplica {
  const socket = join(stateDir, `apiserver-${index}.sock`);
  const { argv, fabricPort } = replicaArgv(firstArgv, { index, port, socket });
  return {
    index,
    pid: 0,
    url: `https://127.0.0.1:${port}`,
    socket,
    ...(fabricPort !== undefined && fabricAddress ? { fabricUrl: `https://${fabricAddress}:${fabricPort}` } : {}),
    argv,
    logFile: join(stateDir, `apiserver-${index}.log`),
  };
}

export function startReplica(replica: ApiserverReplica): number {
  replica.pid = startDetached(replica.argv, replica.logFile);
  return replica.pid;
}

/** Unix sockets of every apiserver, first the first: what the lab's daemons' kubeconfigs list. */
export function socketServers(firstSocket: string, replicas: readonly ApiserverReplica[] | undefined): string[] {
  return [`unix:${firstSocket}`, ...(replicas ?? []).map((r) => `unix:${r.socket}`)];
}

export function checkApiserverCount(count: number, store: string): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_APISERVERS) throw new ApiserverReplicaError(`--apiservers must be between 1 and ${MAX_APISERVERS}, got ${count}`);
  // SQLite is a file one process owns; two apiservers need a store they can share.
  if (count > 1 && !store.startsWith('etcd://')) throw new ApiserverReplicaError(`--apiservers ${count} needs a shared store: add --store etcd`);
}
