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
 * The hot path allocates nothing in steady state: receive buffers come from a free list and
 * return to it when the send completes; the lease table is a Map keyed by the subnet number.
 */
import dgram from 'node:dgram';
import { read, writeSync, writevSync } from 'node:fs';
import { hasErrno } from '../../lib/errors.js';
import { bitsOf, formatIp, type Ip, type IpNet, networkOf, parseIp } from '../../lib/ip.js';
import { openTun, type TunDevice, VNET_HDR_LEN } from '../../lib/tun.js';
import { backendNumber } from '../config.js';
import type { Lease } from '../subnet/lease.js';
import { type Backend, type BackendContext, type LocalSetup, type ReconcileReport, registerBackend } from './backend.js';

export const UDP_OVERHEAD = 28;
export const DEFAULT_UDP_PORT = 8285;
const TUN_NAME = 'flannel0';
const MAX_PACKET = 65535 + VNET_HDR_LEN;
const SOCKET_BUFFER_BYTES = 16 * 1024 * 1024;
const ZERO_VNET_HDR = Buffer.alloc(VNET_HDR_LEN);

interface Peer {
  address: string;
  offload: boolean;
}

export interface UdpCounters {
  tunPackets: number;
  sentDatagrams: number;
  receivedDatagrams: number;
  droppedNoRoute: number;
  droppedIncompatible: number;
}

export class UdpBackend implements Backend {
  readonly type = 'udp';
  readonly counters: UdpCounters = { tunPackets: 0, sentDatagrams: 0, receivedDatagrams: 0, droppedNoRoute: 0, droppedIncompatible: 0 };
  private readonly port: number;
  private readonly mtu: number;
  private tun: TunDevice | undefined;
  private socket: dgram.Socket | undefined;
  /** Remote subnet number (address >> host bits) → peer. */
  private peers = new Map<number, Peer>();
  private readonly hostBits: number;
  private readonly freeBuffers: Buffer[] = [];
  private closed = false;

  constructor(private readonly context: BackendContext) {
    this.port = backendNumber(context.network.backend, 'Port', DEFAULT_UDP_PORT);
    this.mtu = context.ext.link.mtu - UDP_OVERHEAD;
    if (context.network.network.family !== 4) throw new Error('the udp backend carries IPv4 only');
    this.hostBits = bitsOf(4) - context.network.subnetLength;
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
    if (!link) throw new Error(`TUN ${tun.name} vanished`);
    // flannel's layout: the TUN holds our subnet's network address with the whole Network's
    // prefix, so the kernel's connected route sends all of the pod network into it while the
    // more specific cni0 route keeps local pods local.
    const address: IpNet = { ...networkOf(lease.subnet), prefixLength: network.network.prefixLength };
    if (link.mtu !== this.mtu) rtnl.setMtu(link.index, this.mtu);
    try {
      rtnl.addAddress(link.index, address);
    } catch (err) {
      if (!hasErrno(err, 'EEXIST')) throw err;
    }
    rtnl.setUp(link.index);
    this.start();
  }

  reconcile(remotes: readonly Lease[]): ReconcileReport {
    const next = new Map<number, Peer>();
    const rejected: ReconcileReport['rejected'] = [];
    for (const lease of remotes) {
      if (lease.attrs.backendType !== 'udp') {
        rejected.push({ lease, reason: `lease has backend "${lease.attrs.backendType}", not udp` });
        continue;
      }
      next.set(this.subnetNumber(lease.subnet), { address: formatIp(parseIp(lease.attrs.publicIp)), offload: lease.attrs.backendData['Offload'] === true });
    }
    let added = 0;
    for (const [key, peer] of next) {
      const old = this.peers.get(key);
      if (!old || old.address !== peer.address || old.offload !== peer.offload) added++;
    }
    const removed = [...this.peers.keys()].filter((key) => !next.has(key)).length;
    this.peers = next;
    return { added, removed, rejected };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.socket?.close();
    this.tun?.close();
  }

  private subnetNumber(ip: Ip): number {
    return Number(ip.value) >>> this.hostBits;
  }

  private requireTun(): TunDevice {
    if (!this.tun) throw new Error('udp backend used before prepare()');
    return this.tun;
  }

  private start(): void {
    if (this.socket) return;
    const tun = this.requireTun();
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
    this.socket = socket;
    socket.on('message', (datagram) => this.fromUnderlay(tun, datagram));
    socket.on('error', (err) => this.context.log.error({ err: err.message }, 'udp socket error'));
    socket.bind(this.port, formatIp(this.context.ext.address), () => this.readTun(tun));
  }

  /** One outstanding read at a time keeps packets in order (TCP dislikes reordering). */
  private readTun(tun: TunDevice): void {
    if (this.closed) return;
    const buffer = this.freeBuffers.pop() ?? Buffer.allocUnsafe(MAX_PACKET);
    read(tun.fd, buffer, 0, MAX_PACKET, null, (err, length) => {
      if (err) {
        this.freeBuffers.push(buffer);
        if (!this.closed) this.context.log.error({ err: err.message }, 'TUN read failed');
        if (!this.closed && !hasErrno(err, 'EBADF')) setImmediate(() => this.readTun(tun));
        return;
      }
      this.toUnderlay(tun, buffer, length);
      this.readTun(tun);
    });
  }

  private toUnderlay(tun: TunDevice, buffer: Buffer, length: number): void {
    this.counters.tunPackets++;
    const ipStart = tun.offload ? VNET_HDR_LEN : 0;
    if (length < ipStart + 20 || buffer[ipStart]! >> 4 !== 4) {
      this.freeBuffers.push(buffer);
      return;
    }
    const peer = this.peers.get(buffer.readUInt32BE(ipStart + 16) >>> this.hostBits);
    if (!peer) {
      this.counters.droppedNoRoute++;
      this.freeBuffers.push(buffer);
      return;
    }
    // A header of zeros means "plain packet": send it the way flannel does.
    const plain = !tun.offload || buffer.compare(ZERO_VNET_HDR, 0, VNET_HDR_LEN, 0, VNET_HDR_LEN) === 0;
    if (!plain && !peer.offload) {
      this.counters.droppedIncompatible++;
      this.freeBuffers.push(buffer);
      return;
    }
    const payload = buffer.subarray(plain ? ipStart : 0, length);
    this.counters.sentDatagrams++;
    this.socket?.send(payload, this.port, peer.address, () => this.freeBuffers.push(buffer));
  }

  private fromUnderlay(tun: TunDevice, datagram: Buffer): void {
    this.counters.receivedDatagrams++;
    const version = datagram[0]! >> 4;
    const isPlainIp = version === 4 || version === 6;
    try {
      if (isPlainIp && tun.offload) writevSync(tun.fd, [ZERO_VNET_HDR, datagram]);
      else if (isPlainIp || tun.offload) writeSync(tun.fd, datagram);
      else this.counters.droppedIncompatible++;
    } catch (err) {
      // The kernel refuses malformed packets (EINVAL): drop them, never stop the loop.
      if (!hasErrno(err, 'EINVAL', 'EIO', 'ENOBUFS')) throw err;
    }
  }
}

registerBackend('udp', (context) => new UdpBackend(context));
