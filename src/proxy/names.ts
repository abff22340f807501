/**
 * Chain names, as kube-proxy spells them, so what people know (and their scripts grep for)
 * applies: iptables `KUBE-SVC-` + the first 16 characters of base32(sha256(service port
 * name + protocol)), `KUBE-SEP-` hashing the endpoint in too; nftables mode
 * `svc-<8 chars>-<ns>/<name>/<proto>/<port>` so a listing says which Service a chain is for.
 */
import { createHash } from 'node:crypto';
import type { Endpoint, ServicePort } from './model.js';
import { endpointText } from './model.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding, as Go's base32.StdEncoding before the padding. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

function hash(text: string, length: number): string {
  return base32(createHash('sha256').update(text).digest()).slice(0, length);
}

const protocolOf = (port: ServicePort): string => port.protocol.toLowerCase();

/** kube-proxy's portProtoHash: the 16-character suffix of KUBE-SVC/EXT/SVL/FW chains. */
export function portProtoHash(port: ServicePort): string {
  return hashesOf(port).iptables;
}

export const iptablesChains = {
  svc: (port: ServicePort): string => `KUBE-SVC-${portProtoHash(port)}`,
  ext: (port: ServicePort): string => `KUBE-EXT-${portProtoHash(port)}`,
  svl: (port: ServicePort): string => `KUBE-SVL-${portProtoHash(port)}`,
  /** kube-proxy's servicePortEndpointChainName: the endpoint's `ip:port` hashed in. */
  sep: (port: ServicePort, endpoint: Endpoint): string => `KUBE-SEP-${hash(port.name + protocolOf(port) + endpointText(endpoint), 16)}`,
};

/** `<ns>/<name>/<proto>/<port name or number>`: what nftables chain names end in. */
function readableBase(port: ServicePort): string {
  return `${port.namespace}/${port.service}/${protocolOf(port)}/${port.portName || port.port}`;
}

/**
 * Hashes per port object, computed once: a full sync of 10k Services spent a quarter of
 * its JavaScript time hashing the same names again for every chain of a port.
 */
const hashed = new WeakMap<ServicePort, { iptables: string; nft: string }>();

function hashesOf(port: ServicePort): { iptables: string; nft: string } {
  let hashes = hashed.get(port);
  if (!hashes) hashed.set(port, (hashes = { iptables: hash(port.name + protocolOf(port), 16), nft: `${hash(readableBase(port), 8)}-${readableBase(port)}` }));
  return hashes;
}

export const nftChains = {
  svc: (port: ServicePort): string => `svc-${hashesOf(port).nft}`,
  ext: (port: ServicePort): string => `ext-${hashesOf(port).nft}`,
  local: (port: ServicePort): string => `local-${hashesOf(port).nft}`,
  /** Affinity sets are per endpoint and timeout (a new timeout is a new set, not an edit). */
  affinity: (port: ServicePort, endpoint: Endpoint, seconds: number): string => `affinity-${hash(`${readableBase(port)} ${endpointText(endpoint)} ${seconds}`, 16)}`,
};
