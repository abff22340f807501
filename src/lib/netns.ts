/**
 * Network namespaces: create and delete named ones (the `ip netns` layout, so `ip netns exec`
 * and runtimes see ours), and run code or open sockets inside one.
 *
 * setns(2) moves only the calling thread. Node runs JavaScript on one thread, so `withNetns`
 * takes a synchronous function: nothing else can run on that thread until we switch back.
 * Work that must outlive the switch (a netlink socket) is opened inside and keeps its
 * namespace; async fs calls run on libuv's pool threads, which never move.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { hasErrno, PontoonError } from './errors.js';
import { Rtnl } from './netlink/rtnl.js';
import * as libc from './sys/libc.js';

export const NETNS_RUN_DIR = '/run/netns';

export class NetnsNotFoundError extends PontoonError {
  constructor(readonly path: string, options?: { cause?: unknown }) {
    super(`network namespace "${path}" does not exist`, options);
  }
}

export function netnsPath(name: string, dir = NETNS_RUN_DIR): string {
  return name.includes('/') ? name : join(dir, name);
}

/** Opens a namespace file read-only; the caller closes the fd. */
export function openNetns(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    if (hasErrno(err, 'ENOENT', 'ENOTDIR')) throw new NetnsNotFoundError(path, { cause: err });
    throw err;
  }
}

/** Runs `fn` with the current thread inside the namespace at `path`, then switches back. */
export function withNetns<T>(path: string, fn: () => T): T {
  const target = openNetns(path);
  const original = openSync('/proc/thread-self/ns/net', 'r');
  try {
    libc.setns(target, libc.CLONE_NEWNET, path);
    try {
      return fn();
    } finally {
      // If this fails the thread is stranded in the wrong namespace: nothing safe remains.
      libc.setns(original, libc.CLONE_NEWNET, 'the original namespace');
    }
  } finally {
    closeSync(original);
    closeSync(target);
  }
}

/**
 * Moves the current thread into the namespace at `path` until the returned function moves it
 * back: for a whole async sequence that only a harness runs (a benchmark's or a fuzzer's
 * in-process plugin calls), where `withNetns`'s synchronous callback cannot reach. Nothing
 * else may run on the thread meanwhile that expects the original namespace.
 */
export function enterNetns(path: string): () => void {
  const target = openNetns(path);
  const original = openSync('/proc/thread-self/ns/net', 'r');
  try {
    libc.setns(target, libc.CLONE_NEWNET, path);
  } catch (err) {
    closeSync(original);
    throw err;
  } finally {
    closeSync(target);
  }
  return () => {
    try {
      libc.setns(original, libc.CLONE_NEWNET, 'the original namespace');
    } finally {
      closeSync(original);
    }
  };
}

/** An rtnetlink handle on the namespace at `path` (the current one when omitted). */
export function openRtnl(path?: string): Rtnl {
  return path ? withNetns(path, () => new Rtnl()) : new Rtnl();
}

/** `ip netns` makes its directory a shared mount so mounts propagate to `ip netns exec`. */
function ensureRunDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  try {
    libc.mount('none', dir, null, libc.MS_SHARED | libc.MS_REC);
  } catch (err) {
    if (!hasErrno(err, 'EINVAL')) throw err;
    libc.mount(dir, dir, 'none', libc.MS_BIND | libc.MS_REC);
    libc.mount('none', dir, null, libc.MS_SHARED | libc.MS_REC);
  }
}

/** Creates a named namespace like `ip netns add NAME`; returns its path. */
export function createNetns(name: string, dir = NETNS_RUN_DIR): string {
  ensureRunDir(dir);
  const path = join(dir, name);
  closeSync(openSync(path, 'wx', 0o444));
  const original = openSync('/proc/thread-self/ns/net', 'r');
  try {
    libc.unshare(libc.CLONE_NEWNET);
    try {
      libc.mount('/proc/thread-self/ns/net', path, 'none', libc.MS_BIND);
    } finally {
      libc.setns(original, libc.CLONE_NEWNET, 'the original namespace');
    }
    // A fresh namespace has `lo` down; every user of ours wants it up.
    const rtnl = openRtnl(path);
    try {
      const lo = rtnl.linkByName('lo');
      if (lo) rtnl.setUp(lo.index);
    } finally {
      rtnl.close();
    }
  } catch (err) {
    try {
      libc.umount2(path, libc.MNT_DETACH);
    } catch {
      // not mounted yet
    }
    rmSync(path, { force: true });
    throw err;
  } finally {
    closeSync(original);
  }
  return path;
}

/** Deletes a named namespace; a missing one is not an error. */
export function deleteNetns(name: string, dir = NETNS_RUN_DIR): void {
  const path = netnsPath(name, dir);
  if (!existsSync(path)) return;
  try {
    libc.umount2(path, libc.MNT_DETACH);
  } catch (err) {
    if (!hasErrno(err, 'EINVAL', 'ENOENT')) throw err;
  }
  rmSync(path, { force: true });
}

/**
 * Deletes every named namespace starting with `prefix` (a lab's, a test's, a benchmark's).
 * Carries on past failures and returns them, so one stuck namespace does not keep the rest.
 */
export function deleteNetnsWithPrefix(
  prefix: string,
  options: { dir?: string; /** SIGKILL what still runs in each first (a lab's pod containers). */ killProcesses?: boolean } = {},
): { name: string; error: unknown }[] {
  const dir = options.dir ?? NETNS_RUN_DIR;
  const failures: { name: string; error: unknown }[] = [];
  for (const name of listNetns(dir)) {
    if (!name.startsWith(prefix)) continue;
    try {
      if (options.killProcesses) killProcessesInNetns(name, dir);
      deleteNetns(name, dir);
    } catch (error) {
      failures.push({ name, error });
    }
  }
  return failures;
}

/**
 * Pids of the processes whose network namespace is the named one (`ip netns pids`): a
 * namespace is identified by the device and inode of its nsfs file.
 */
function pidsInNetns(name: string, dir = NETNS_RUN_DIR): number[] {
  let target: { dev: number; ino: number };
  try {
    target = statSync(netnsPath(name, dir));
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ns = statSync(`/proc/${entry}/ns/net`);
      if (ns.ino === target.ino && ns.dev === target.dev) pids.push(Number(entry));
    } catch {
      // the process exited meanwhile
    }
  }
  return pids;
}

/** SIGKILLs every process in the named namespace (what is left of a lab's pods). */
function killProcessesInNetns(name: string, dir = NETNS_RUN_DIR): void {
  for (const pid of pidsInNetns(name, dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const SOCK_STREAM = 1;
const AF_INET6 = 10;

/**
 * An unconnected TCP socket that lives in the named namespace (or in ours when `netns` is
 * undefined): created there with socket(2), then handed to Node, which connects it from
 * whatever namespace its thread is in — a socket's namespace is fixed at creation.
 */
export function tcpSocketIn(netns: string | undefined, ipv6: boolean): Socket {
  if (!netns) return new Socket();
  const fd = withNetns(netnsPath(netns), () => libc.socket(ipv6 ? AF_INET6 : libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0));
  return new Socket({ fd, readable: true, writable: true });
}

export function listNetns(dir = NETNS_RUN_DIR): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return [];
    throw err;
  }
}
