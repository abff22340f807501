/**
 * udp: flannel's userspace overlay. Pod traffic for other nodes is routed into the TUN
 * device `flannel0`; this process reads each packet, looks its destination up in the lease
 * table and sends it inside a UDP datagram (port 8285) to the owning node, which writes it
 * back into its own TUN.
 *
 * Speed: a userspace path is bound by packets per second (Node reads a TUN at ~72 k packets/s),
 * so we open the TUN with IFF_VNET_HDR and TSO offloads. The kernel then hands us TCP
 * super-packets of up to 64 KB plus a 10-byte virtio_net_hdr, we ship each in one UDP
 * datagram (the kernel IP-fragments it on the underlay), and the receiver writes it into its
 * TUN with the header so its kernel segments it again. One read, one send, one write per
 * 64 KB instead of per 1.4 KB.
 *
 * Wire format: a datagram whose first byte has IP version 4 or 6 in its high nibble is a plain
 * IP packet, exactly what flannel sends; anything else starts with a virtio_net_hdr (its
 * first byte is a flags field below 0x10). Plain packets go out whenever the header says
 * "nothing to do", so small traffic stays flannel-compatible; headers go only to peers whose
 * lease advertises `"Offload": true`.
 *
 * The packet path runs in two worker threads (udp-loop.ts) making blocking system calls on
 * preallocated buffers; this class owns the devices, the socket and the lease table they share.
 */
import { Worker } from 'node:worker_threads';
import { formatIp, type IpNet, networkOf, parseIp } from '../../lib/ip.js';
import * as libc from '../../lib/sys/libc.js';
import { openTun, type TunDevice } from '../../lib/tun.js';
import { backendNumber } from '../config.js';
import type { Lease } from '../subnet/lease.js';
import { type Backend, type BackendContext, BackendError, type LocalSetup, type ReconcileReport, registerBackend } from './backend.js';
import type { LoopData } from './udp-loop.js';
import { COUNTER_NAMES, type CounterName, PEER_OFFLOAD, PeerTable, peerTableLayout } from './udp-peers.js';
import { workerScript } from '../../lib/worker-script.js';

export const UDP_OVERHEAD = 28;
export const DEFAULT_UDP_PORT = 8285;
const TUN_NAME = 'flannel0';
const SOCKET_BUFFER_BYTES = 16 * 1024 * 1024;

const loopScript = (): string => workerScript(import.meta.url, 'udp-loop', 'udp-loop', 'udp packet loop');

function ipv4Number(ip: { value: bigint }): number {
  return Number(ip.value);
}

export class UdpBackend implements Backend {
  readonly type = 'udp';
  private readonly port: number;
  private readonly mtu: number;
  private readonly peers: PeerTable;
  private readonly counters = new Uint32Array(new SharedArrayBuffer(COUNTER_NAMES.length * 4));
  private tun: TunDevice | undefined;
  private socketFd: number | undefined;
  private workers: Worker[] = [];
  private known = new Map<number, string>();

  constructor(private readonly context: BackendContext) {
    const { network } = context;
    this.port = backendNumber(network.backend, 'Port', DEFAULT_UDP_PORT);
    this.mtu = context.ext.link.mtu - UDP_OVERHEAD;
    if (network.network.family !== 4) throw new BackendError('the udp backend carries IPv4 only');
    this.peers = new PeerTable(peerTableLayout(ipv4Number(network.network), network.network.prefixLength, network.subnetLength));
  }

  async prepare(): Promise<LocalSetup> {
    try {
      this.tun = openTun(TUN_NAME, { offload: true });
    } catch (err) {
      this.context.log.warn({ err: (err as Error).message }, 'TUN offloads unavailable; falling back to one packet per read');
      this.tun = openTun(TUN_NAME);
    }
    return { backendData: { Offload: this.tun.offload }, mtu: this.mtu };
  }

  configureLocal(lease: Lease): void {
    const { rtnl, network } = this.context;
    const tun = this.requireTun();
    const link = rtnl.linkByName(tun.name);
    if (!link) throw new BackendError(`TUN ${tun.name} vanished`);
    // flannel's layout: the TUN holds our subnet's network address with the whole Network's
    // prefix, so the kernel's connected route sends all of the pod network into it while the
    // more specific cni0 route keeps local pods local.
    const address: IpNet = { ...networkOf(lease.subnet), prefixLength: network.network.prefixLength };
    if (link.mtu !== this.mtu) rtnl.setMtu(link.index, this.mtu);
    // A changed lease (a re-registered Node with a new podCIDR) leaves the old address behind.
    for (const existing of rtnl.addresses(4, link.index)) {
      if (existing.address.value !== address.value) rtnl.deleteAddress(link.index, existing.address);
    }
    if (!rtnl.addresses(4, link.index).some((a) => a.address.value === address.value)) rtnl.addAddress(link.index, address);
    rtnl.setUp(link.index);
    this.start(tun);
  }

  reconcile(remotes: readonly Lease[]): ReconcileReport {
    const next = new Map<number, string>();
    const rejected: ReconcileReport['rejected'] = [];
    let added = 0;
    for (const lease of remotes) {
      if (lease.attrs.backendType !== 'udp') {
        rejected.push({ lease, reason: `lease has backend "${lease.attrs.backendType}", not udp` });
        continue;
      }
      const slot = this.peers.slotOf(ipv4Number(lease.subnet));
      if (slot < 0) continue;
      const underlay = parseIp(lease.attrs.publicIp);
      const offload = lease.attrs.backendData['Offload'] === true;
      const description = `${formatIp(underlay)}|${offload}`;
      next.set(slot, description);
      if (this.known.get(slot) === description) continue;
      this.peers.set(slot, ipv4Number(underlay), offload ? PEER_OFFLOAD : 0);
      added++;
    }
    let removed = 0;
    for (const slot of this.known.keys()) {
      if (next.has(slot)) continue;
      this.peers.clear(slot);
      removed++;
    }
    this.known = next;
    return { added, removed, rejected };
  }

  /** Packet counters of both loops since start. */
  stats(): Record<CounterName, number> {
    return Object.fromEntries(COUNTER_NAMES.map((name, i) => [name, Atomics.load(this.counters, i)])) as Record<CounterName, number>;
  }

  async close(): Promise<void> {
    Atomics.store(this.counters, COUNTER_NAMES.indexOf('stopping'), 1);
    // shutdown wakes the receive loop; the transmit loop sits in a TUN read that nothing
    // interrupts, and ends with the process, which is what follows a close.
    if (this.socketFd !== undefined) libc.shutdown(this.socketFd);
    for (const worker of this.workers) worker.unref();
    this.workers = [];
  }

  private requireTun(): TunDevice {
    if (!this.tun) throw new BackendError('udp backend used before prepare()');
    return this.tun;
  }

  private openSocket(): number {
    const fd = libc.socket(libc.AF_INET, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
    const size = Buffer.alloc(4);
    size.writeInt32LE(SOCKET_BUFFER_BYTES);
    // FORCE variants (root) exceed net.core.[rw]mem_max: a 64 KB datagram needs room.
    libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_RCVBUFFORCE, size);
    libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_SNDBUFFORCE, size);
    if (this.requireTun().offload) {
      // Let the kernel cut each super-packet into MTU-sized datagrams after the virtual path
      // (one skb through veth and bridge instead of ~45 IP fragments), and glue them back on
      // arrival. udp-records.ts keeps the stream parseable either way.
      const segment = Buffer.alloc(4);
      segment.writeInt32LE(this.context.ext.link.mtu - UDP_OVERHEAD);
      libc.setsockopt(fd, libc.SOL_UDP, libc.UDP_SEGMENT, segment);
      const on = Buffer.alloc(4);
      on.writeInt32LE(1);
      libc.setsockopt(fd, libc.SOL_UDP, libc.UDP_GRO, on);
    }
    libc.bind(fd, libc.sockaddrIn(ipv4Number(this.context.ext.address), this.port));
    return fd;
  }

  private start(tun: TunDevice): void {
    if (this.workers.length > 0) return;
    this.socketFd = this.openSocket();
    const script = loopScript();
    for (const direction of ['tx', 'rx'] as const) {
      const workerData: LoopData = {
        direction,
        tunFd: tun.fd,
        socketFd: this.socketFd,
        offload: tun.offload,
        port: this.port,
        segmentSize: this.context.ext.link.mtu - UDP_OVERHEAD,
        layout: this.peers.layout,
        peers: this.peers.buffer,
        counters: this.counters.buffer as SharedArrayBuffer,
      };
      const worker = new Worker(script, { workerData });
      worker.on('error', (err) => this.context.log.error({ err: err.message, direction }, 'udp packet loop failed'));
      worker.on('exit', (code) => this.context.log.warn({ code, direction }, 'udp packet loop exited'));
      this.workers.push(worker);
    }
    this.context.log.info({ port: this.port, offload: tun.offload, mtu: this.mtu}, 'udp packet loops started');
  }
}

registerBackend('udp', (context) => new UdpBackend(context));
