/**
 * Pod sandboxes. A sandbox is only a named network namespace (`<prefix><uid-short>`): there
 * is no pause container, the namespace's bind mount under /run/netns keeps it alive, and
 * every container of the pod joins it through `ip netns exec`. Creating one that exists is
 * success (a restarted kubelet finds its own), deleting a missing one is success too.
 */
import { existsSync } from 'node:fs';
import { createNetns, deleteNetns, listNetns, netnsPath } from '../lib/netns.js';

export const DEFAULT_NETNS_PREFIX = 'pontoon-pod-';

/**
 * The namespace name of a pod's sandbox: the prefix plus the first 12 hex digits of its uid
 * (48 bits: a collision among the pods of one node is out of reach, and the name stays short).
 */
export function sandboxName(prefix: string, podUid: string): string {
  const hex = podUid.replace(/[^0-9a-zA-Z]/g, '').toLowerCase();
  return `${prefix}${hex.slice(0, 12)}`;
}

/** Creates the sandbox namespace (lo up) unless it is there; returns its path. */
export function ensureSandbox(name: string): string {
  const path = netnsPath(name);
  if (existsSync(path)) return path;
  return createNetns(name);
}

export function sandboxExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

export function deleteSandbox(name: string): void {
  deleteNetns(name);
}

/** Sandboxes carrying `prefix`: what a kubelet sweeps after a restart. */
export function listSandboxes(prefix: string): string[] {
  return listNetns().filter((name) => name.startsWith(prefix));
}
