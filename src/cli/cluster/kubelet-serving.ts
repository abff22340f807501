/**
 * The kubelet API of a lab node: in network mode a serving certificate the cluster CA signs
 * for the node's InternalIP (CN system:node:<name>, O system:nodes, as upstream's serving
 * certificates), issued into the node's own directory together with a copy of the CA, and
 * the flags that make the kubelet serve on 10250 with no unix socket — the apiserver then
 * has no other way in than TLS over the fabric. Socket mode keeps the socket and no port.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate } from '../../apiserver/pki.js';
import { DEFAULT_KUBELET_PORT } from '../../kubelet/api-server.js';
import { ControlPlaneError, type ControlPlaneState } from './control-plane.js';

export interface KubeletNode {
  name: string;
  dir: string;
  underlayIp: string;
  underlayIpv6?: string;
}

export function kubeletServingFlags(controlPlane: ControlPlaneState, node: KubeletNode): string[] {
  if ((controlPlane.access ?? 'socket') !== 'network') return ['--port', '0'];
  if (!controlPlane.caKeyFile) throw new ControlPlaneError('the control plane records no CA key to sign kubelet serving certificates with');
  const dir = join(node.dir, 'pki');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const serving = issueCertificate({ caCertPath: controlPlane.caFile, caKeyPath: controlPlane.caKeyFile }, dir, {
    name: 'kubelet',
    commonName: `system:node:${node.name}`,
    organizations: ['system:nodes'],
    ips: [node.underlayIp, ...(node.underlayIpv6 ? [node.underlayIpv6] : [])],
    hosts: [node.name],
    usage: 'serverAuth',
  });
  const clientCa = join(dir, 'ca.crt');
  copyFileSync(controlPlane.caFile, clientCa);
  return ['--port', String(DEFAULT_KUBELET_PORT), '--tls-cert-file', serving.certPath, '--tls-private-key-file', serving.keyPath, '--client-ca-file', clientCa, '--socket', 'none'];
}
