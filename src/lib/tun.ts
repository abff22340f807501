/**
 * TUN devices: open /dev/net/tun and attach it to a named layer-3 interface in the calling
 * thread's network namespace.
 *
 * With `offload`, the device is opened with IFF_VNET_HDR and TSO/checksum offloads enabled:
 * the kernel then hands us whole TCP super-packets (up to 64 KB) with a 10-byte
 * virtio_net_hdr describing how to segment them, instead of one read per 1400-byte segment.
 * Userspace packet paths are bound by packets per second, so this is the single biggest lever.
 */
import { closeSync, openSync } from 'node:fs';
import * as libc from './sys/libc.js';

const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_TSO_ECN = 0x08;

/** Size of `struct virtio_net_hdr` that prefixes every packet when offloads are on. */
export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;

export interface TunDevice {
  fd: number;
  name: string;
  /** True when reads and writes carry a virtio_net_hdr. */
  offload: boolean;
  close(): void;
}

export function openTun(name: string, options: { offload?: boolean } = {}): TunDevice {
  const fd = openSync('/dev/net/tun', 'r+');
  try {
    const ifreq = Buffer.alloc(40);
    ifreq.write(name, 0, 15, 'utf8');
    ifreq.writeUInt16LE(IFF_TUN | IFF_NO_PI | (options.offload ? IFF_VNET_HDR : 0), 16);
    libc.ioctl(fd, TUNSETIFF, ifreq, `TUNSETIFF ${name}`);
    if (options.offload) {
      libc.ioctlInt(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN, 'TUNSETOFFLOAD');
    }
    const actual = ifreq.toString('utf8', 0, 16).replace(/\0.*$/s, '');
    let closed = false;
    return {
      fd,
      name: actual,
      offload: options.offload ?? false,
      close() {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
