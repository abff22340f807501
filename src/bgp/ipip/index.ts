/** IPIP for the BGP backend: kernel detection and the userspace tunnel (see tunnel.ts). */
export { type IpipProbe, kernelIpipAvailable, probeKernelIpip } from './detect.js';
export { DEFAULT_IPIP_DEVICE, IPIP_DEVICE_ALIAS, IPIP_OVERHEAD, type IpipPeer, IpipTunnel, IpipTunnelError, type IpipTunnelOptions } from './tunnel.js';
export { COUNTER_NAMES as IPIP_COUNTER_NAMES, type CounterName as IpipCounterName } from './peers.js';
