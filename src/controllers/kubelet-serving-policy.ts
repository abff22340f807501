/**
 * Kubelet serving certificates (signer kubernetes.io/kubelet-serving): what a kubelet's TLS
 * port presents to the apiserver for logs, exec and port-forward. Upstream's controller-manager
 * signs them but never approves them by itself — a node could claim any address — and leaves
 * that to a human or to an external approver (kubelet-csr-approver checks the SAN IPs
 * against the provider's prefixes). Here csrapproving does the latter when given
 * --kubelet-serving-approve-cidrs: the request must be exactly a kubelet's (O=system:nodes,
 * CN=system:node:<name>, usages within digital signature / key encipherment / server auth),
 * come from a bootstrap token or that node itself, and name only IPs inside those ranges and
 * DNS names equal to the node's name. Without the flag nothing is approved automatically.
 */
import { type CertificateSigningRequest, NODE_USER_PREFIX, NODES_GROUP, SIGNER_KUBELET_SERVING } from '../api/certificates.js';
import { BOOTSTRAPPERS_GROUP } from '../api/bootstrap-token.js';
import { type IpNet, netContains, tryParseIp } from '../lib/ip.js';
import type { CsrInfo } from '../lib/x509.js';

const ALLOWED_USAGES = new Set(['digital signature', 'key encipherment', 'server auth']);

/** Why a request is not the shape of a kubelet serving request (undefined: it is); the signer's check. */
export function notKubeletServingRequest(csr: CertificateSigningRequest, info: CsrInfo): string | undefined {
  if (csr.spec.signerName !== SIGNER_KUBELET_SERVING) return `signer ${csr.spec.signerName}`;
  const { organizations, commonName } = info.subject;
  if (organizations.length !== 1 || organizations[0] !== NODES_GROUP) return `organizations ${JSON.stringify(organizations)}, want ["${NODES_GROUP}"]`;
  if (!commonName.startsWith(NODE_USER_PREFIX) || commonName.length === NODE_USER_PREFIX.length) return `common name "${commonName}", want ${NODE_USER_PREFIX}<node>`;
  if (info.subjectAltNames.length === 0) return 'no subject alternative names';
  if (info.subjectAltNames.some((san) => !san.startsWith('IP Address:') && !san.startsWith('DNS:'))) return `subject alternative names ${JSON.stringify(info.subjectAltNames)}: only IP and DNS`;
  const usages = csr.spec.usages ?? [];
  if (!usages.includes('server auth') || usages.some((u) => !ALLOWED_USAGES.has(u))) return `usages ${JSON.stringify(usages)}`;
  return undefined;
}

/** Why the approver will not approve it (undefined: approve). */
export function notApprovableKubeletServing(csr: CertificateSigningRequest, info: CsrInfo, allowedNets: readonly IpNet[]): string | undefined {
  const shape = notKubeletServingRequest(csr, info);
  if (shape) return shape;
  const node = info.subject.commonName.slice(NODE_USER_PREFIX.length);
  const groups = csr.spec.groups ?? [];
  const fromNode = groups.includes(NODES_GROUP) && csr.spec.username === info.subject.commonName;
  if (!groups.includes(BOOTSTRAPPERS_GROUP) && !fromNode) return `requester ${csr.spec.username ?? '?'} is neither a bootstrap token nor ${info.subject.commonName}`;
  for (const san of info.subjectAltNames) {
    if (san.startsWith('DNS:')) {
      if (san.slice(4) !== node) return `DNS name ${san.slice(4)} is not the node's name`;
      continue;
    }
    const ip = tryParseIp(san.slice('IP Address:'.length));
    if (!ip || !allowedNets.some((net) => netContains(net, ip))) return `address ${san.slice('IP Address:'.length)} outside --kubelet-serving-approve-cidrs`;
  }
  return undefined;
}

/** `IP Address:1.2.3.4` / `DNS:x` (openssl's text) → the `IP:`/`DNS:` form its config takes. */
export function subjectAltNameConfig(info: CsrInfo): string[] {
  return info.subjectAltNames.map((san) => (san.startsWith('IP Address:') ? `IP:${san.slice('IP Address:'.length)}` : san));
}
