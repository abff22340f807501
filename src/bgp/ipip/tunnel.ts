/**
 * IpipTunnel: Calico's IPIP mode without the kernel's ipip module. Pod traffic for another
 * node's block is routed into a TUN device; the tunnel wraps each packet in an outer IPv4
 * header (protocol 4, this node's underlay address → the owning node's) and sends it on a raw
 * socket; IPIP packets from known nodes are unwrapped and written back into the TUN, from
 * where the node forwards them to its pods. On the wire it is exactly what a kernel `tunl0`
 * sends and accepts (RFC 2003; field choices in packet.ts), so a kernel node interoperates.
 *
 * Design notes:
 * - One tunnel per node, living in the node's network namespace. The device (`pipip0` by
 *   default, tunl0-like) gets MTU = underlay MTU − 20 and, like Calico's tunl0, an address
 *   from the node's block: its first address (`10.244.1.0` for `10.244.1.0/24`) as a /32, so
 *   packets the node itself sends to remote pods (and the ICMP errors below) have a source
 *   that routes back here. The node needs `net.ipv4.ip_forward=1`; start() sets it.
 * - Next hops: a kernel tunl0 takes the outer destination from the route's gateway
 *   (`10.244.2.0/26 via 198.18.0.12 dev tunl0 onlink`). A TUN never sees the gateway, so the
 *   BGP speaker hands the tunnel the same facts directly: `setPeers(block → node address)`.
 *   The kernel routes only have to point the blocks at the device (a gateway is harmless).
 * - A packet for a block no peer holds is dropped and answered with ICMP host unreachable
 *   (rate limited), as the kernel's ipip does when it has no next hop (dst_link_failure):
 *   senders fail fast instead of timing out. The ICMP is written into the TUN with the
 *   tunnel's own address as source, which needs accept_local on the device (set in start()).
 * - Receive side: only packets whose outer source is a node in the peer table are accepted
 *   (Calico's felix drops IPIP from non-nodes with an ipset rule); the inner packet is written
 *   unmodified — the node decrements its TTL when it forwards it, as with tunl0.
 * - Throughput: see loop.ts (worker threads, userspace TSO + sendmmsg, recvmmsg + userspace GRO).
 * - Transmit uses an IPPROTO_RAW socket (header included) rather than an IPPROTO_IPIP one with
 *   kernel-built headers: per-packet TTL and DF inheritance need per-packet header fields, and
 *   an IPPROTO_RAW socket receives nothing, so the transmit side is not handed a copy of every
 *   arriving IPIP packet as a second IPPROTO_IPIP socket would be.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { hasErrno, PontoonError } from '../../lib/errors.js';
import { formatIp, formatIpNet, type Ip, type IpNet, networkOf } from '../../lib/ip.js';
import { ensureAddress } from '../../lib/link.js';
import type { Rtnl } from '../../lib/netlink/rtnl.js';
import { netnsPath, openRtnl, withNetns } from '../../lib/netns.js';
import * as libc from '../../lib/sys/libc.js';
import { ensureSysctl } from '../../lib/sysctl.js';
import { openTun, type TunDevice } from '../../lib/tun.js';
import type { LoopData } from './loop.js';
import { COUNTER_NAMES, type CounterName, maskOf, type PeerEntry, PeerTableWriter } from './peers.js';
import { workerScript } from '../../lib/worker-script.js';

/** Outer IPv4 header without options (RFC 2003 §3.1). */
export const IPIP_OVERHEAD = 20;
export const DEFAULT_IPIP_DEVICE = 'pipip0';
/** Link alias marking the device as Pontoon's (ARCHITECTURE.md: owned objects carry a mark). */
export const IPIP_DEVICE_ALIAS = 'pontoon-ipip';
const SOCKET_BUFFER_BYTES = 16 * 1024 * 1024;
const STOP_TIMEOUT_MS = 5000;

export class IpipTunnelError extends PontoonError {}

export interface IpipTunnelOptions {
  /** Network namespace (name under /run/netns or a path) the node lives in; the current one when absent. */
  netns?: string;
  /** This node's underlay address: the outer source. Must be on one of the node's links. */
  underlayAddress: Ip;
  /** This node's pod block; the tunnel address defaults to its first address. */
  block: IpNet;
  /** Address for the device (a /32); default: the block's network address, as Calico's tunl0. */
  tunnelAddress?: Ip;
  /** Default: the MTU of the link holding `underlayAddress`. */
  underlayMtu?: number;
  /** Default `pipip0`. */
  deviceName?: string;
}

export interface IpipPeer {
  block: IpNet;
  underlay: Ip;
}

function ipv4Number(ip: Ip, what: string): number {
  if (ip.family !== 4) throw new IpipTunnelError(`failed to use ${what} ${formatIp(ip)}: IPIP carries IPv4 only`);
  return Number(ip.value);
}

function blockKey(block: IpNet): string {
  return formatIpNet(networkOf(block));
}

const loopScript = (): string => workerScript(import.meta.url, 'ipip-loop', 'loop', 'IPIP packet loop');

export class IpipTunnel {
  readonly deviceName: string;
  readonly tunnelAddress: Ip;
  private readonly netns: string | undefined;
  private readonly peerTable = new PeerTableWriter();
  private readonly peerMap = new Map<string, IpipPeer>();
  private readonly counters = new Uint32Array(new SharedArrayBuffer(COUNTER_NAMES.length * 4));
  private mtuValue: number | undefined;
  private tun: TunDevice | undefined;
  private txSocket: number | undefined;
  private rxSocket: number | undefined;
  private workers: Worker[] = [];
  private exited: Promise<void>[] = [];
  private failure: Error | undefined;

  constructor(private readonly options: IpipTunnelOptions) {
    this.deviceName = options.deviceName ?? DEFAULT_IPIP_DEVICE;
    if (this.deviceName.length > 15) throw new IpipTunnelError(`failed to name the IPIP device "${this.deviceName}": at most 15 characters`);
    this.netns = options.netns === undefined ? undefined : netnsPath(options.netns);
    this.tunnelAddress = options.tunnelAddress ?? networkOf(options.block);
    ipv4Number(options.underlayAddress, 'underlay address');
    ipv4Number(this.tunnelAddress, 'tunnel address');
  }

  /** The device MTU (underlay − 20); known after start(). */
  get mtu(): number {
    if (this.mtuValue === undefined) throw new IpipTunnelError('IPIP tunnel MTU asked before start()');
    return this.mtuValue;
  }

  get running(): boolean {
    return this.workers.length > 0;
  }

  /** A loop thread that died (it should not): the reason, for health checks. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Creates the device and sockets in the node's namespace and starts the packet loops. */
  async start(): Promise<void> {
    if (this.running) return;
    try {
      this.open();
      this.configureDevice();
      this.startLoops();
    } catch (err) {
      await this.stop();
      throw new IpipTunnelError(`failed to start IPIP tunnel "${this.deviceName}": ${(err as Error).message}`, { cause: err });
    }
  }

  /** Replaces the whole peer table (what the BGP speaker's RIB says now). */
  setPeers(peers: ReadonlyMap<IpNet, Ip> | readonly IpipPeer[]): void {
    const list: IpipPeer[] = Array.isArray(peers) ? [...(peers as readonly IpipPeer[])] : [...(peers as ReadonlyMap<IpNet, Ip>)].map(([block, underlay]) => ({ block, underlay }));
    this.peerMap.clear();
    for (const peer of list) this.peerMap.set(blockKey(peer.block), this.checkedPeer(peer));
    this.publish();
  }

  /** Adds or moves one block (a BGP UPDATE). */
  setPeer(block: IpNet, underlay: Ip): void {
    this.peerMap.set(blockKey(block), this.checkedPeer({ block, underlay }));
    this.publish();
  }

  /** Removes one block (a BGP withdraw); returns whether it was there. */
  removePeer(block: IpNet): boolean {
    const removed = this.peerMap.delete(blockKey(block));
    if (removed) this.publish();
    return removed;
  }

  peers(): IpipPeer[] {
    return [...this.peerMap.values()];
  }

  /** Packet counters of both loops since start. */
  stats(): Record<Exclude<CounterName, 'stopping'>, number> {
    const entries = COUNTER_NAMES.filter((name) => name !== 'stopping').map((name) => [name, Atomics.load(this.counters, COUNTER_NAMES.indexOf(name))]);
    return Object.fromEntries(entries) as Record<Exclude<CounterName, 'stopping'>, number>;
  }

  /**
   * Stops the loops and removes the device. Deleting the TUN's link wakes the transmit loop
   * out of its blocking read (EFAULT), shutdown(2) wakes the receive loop; then the
   * descriptors are closed. Safe to call twice or after a failed start.
   */
  async stop(): Promise<void> {
    Atomics.store(this.counters, COUNTER_NAMES.indexOf('stopping'), 1);
    if (this.tun) this.withRtnl((rtnl) => {
      const link = rtnl.linkByName(this.deviceName);
      if (!link) return;
      try {
        rtnl.deleteLink(link.index);
      } catch (err) {
        if (!hasErrno(err, 'ENODEV')) throw err;
      }
    });
    if (this.rxSocket !== undefined) {
      try {
        libc.shutdown(this.rxSocket);
      } catch (err) {
        // An unconnected socket answers ENOTCONN but is shut down and its readers woken.
        if (!hasErrno(err, 'ENOTCONN')) throw err;
      }
    }
    const exited = Promise.all(this.exited);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
    const outcome = await Promise.race([exited.then(() => 'exited' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') for (const worker of this.workers) await worker.terminate();
    this.workers = [];
    this.exited = [];
    for (const fd of [this.txSocket, this.rxSocket]) if (fd !== undefined) libc.close(fd);
    this.txSocket = undefined;
    this.rxSocket = undefined;
    this.tun?.close();
    this.tun = undefined;
    Atomics.store(this.counters, COUNTER_NAMES.indexOf('stopping'), 0);
  }

  private checkedPeer(peer: IpipPeer): IpipPeer {
    ipv4Number(peer.block, 'peer block');
    ipv4Number(peer.underlay, 'peer underlay address');
    return { block: networkOf(peer.block), underlay: peer.underlay };
  }

  private publish(): void {
    const entries: PeerEntry[] = [...this.peerMap.values()].map((peer) => ({
      network: (Number(peer.block.value) & maskOf(peer.block.prefixLength)) >>> 0,
      prefixLength: peer.block.prefixLength,
      underlay: Number(peer.underlay.value),
    }));
    this.peerTable.publish(entries);
  }

  private inNetns<T>(fn: () => T): T {
    return this.netns ? withNetns(this.netns, fn) : fn();
  }

  private withRtnl<T>(fn: (rtnl: Rtnl) => T): T {
    const rtnl = openRtnl(this.netns);
    try {
      return fn(rtnl);
    } finally {
      rtnl.close();
    }
  }

  /** Device and sockets are made inside the namespace: both keep it for life. */
  private open(): void {
    this.inNetns(() => {
      this.tun = openTun(this.deviceName, { offload: true });
      const size = Buffer.alloc(4);
      size.writeInt32LE(SOCKET_BUFFER_BYTES);
      this.txSocket = libc.socket(libc.AF_INET, libc.SOCK_RAW | libc.SOCK_CLOEXEC, libc.IPPROTO_RAW);
      libc.setsockopt(this.txSocket, libc.SOL_SOCKET, libc.SO_SNDBUFFORCE, size);
      this.rxSocket = libc.socket(libc.AF_INET, libc.SOCK_RAW | libc.SOCK_CLOEXEC, libc.IPPROTO_IPIP);
      libc.setsockopt(this.rxSocket, libc.SOL_SOCKET, libc.SO_RCVBUFFORCE, size);
      ensureSysctl('net.ipv4.ip_forward', '1');
      // Our ICMP errors come from the tunnel's own address (see the design note).
      ensureSysctl(`net.ipv4.conf.${this.deviceName}.accept_local`, '1');
      // IPIP is IPv4 in IPv4: no link-local address, no router solicitations into the TUN.
      const ipv6 = `/proc/sys/net/ipv6/conf/${this.deviceName}/disable_ipv6`;
      if (existsSync(ipv6)) ensureSysctl(`net.ipv6.conf.${this.deviceName}.disable_ipv6`, '1');
    });
  }

  private configureDevice(): void {
    this.withRtnl((rtnl) => {
      const underlay = rtnl.addresses(4).find((a) => a.address.value === this.options.underlayAddress.value);
      const underlayLink = underlay ? rtnl.linkByIndex(underlay.index) : undefined;
      const underlayMtu = this.options.underlayMtu ?? underlayLink?.mtu;
      if (!underlay || underlayMtu === undefined) {
        throw new IpipTunnelError(`underlay address ${formatIp(this.options.underlayAddress)} is not on any link of this node`);
      }
      this.mtuValue = underlayMtu - IPIP_OVERHEAD;
      const link = rtnl.linkByName(this.deviceName);
      if (!link) throw new IpipTunnelError(`TUN "${this.deviceName}" vanished`);
      if (link.mtu !== this.mtuValue) rtnl.setMtu(link.index, this.mtuValue);
      rtnl.setAlias(link.index, IPIP_DEVICE_ALIAS);
      ensureAddress(rtnl, link, { ...this.tunnelAddress, prefixLength: 32 });
      rtnl.setUp(link.index);
    });
  }

  private startLoops(): void {
    const tun = this.tun;
    if (!tun || this.txSocket === undefined || this.rxSocket === undefined) throw new IpipTunnelError('IPIP tunnel loops started before the device');
    this.publish();
    const script = loopScript();
    for (const direction of ['tx', 'rx'] as const) {
      const workerData: LoopData = {
        direction,
        tunFd: tun.fd,
        socketFd: direction === 'tx' ? this.txSocket : this.rxSocket,
        localUnderlay: Number(this.options.underlayAddress.value),
        tunnelAddress: Number(this.tunnelAddress.value),
        peers: this.peerTable.buffer,
        counters: this.counters.buffer as SharedArrayBuffer,
      };
      const worker = new Worker(script, { workerData });
      worker.on('error', (err) => (this.failure ??= err));
      this.exited.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      // The loops block in system calls; they must not keep the process alive on their own.
      worker.unref();
      this.workers.push(worker);
    }
  }
}
