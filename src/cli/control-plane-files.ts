/**
 * The files a control plane runs on, shared by the lab (`cluster up`, control-plane.ts) and a
 * real control-plane host (`pontoon init`): the cluster CA and the apiserver's serving
 * certificate, the service-account key, the apiserver's kubelet-client certificate, the
 * static tokens file with one identity per daemon, and kubeconfigs. Writing them is all this
 * module does; starting the daemons is the caller's business (processes in the lab, systemd
 * units on a host).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { stringify as toYaml } from 'yaml';
import { SERVERS_EXTENSION } from '../client/client.js';
import { ensurePki, ensureServiceAccountKey, issueCertificate, type IssuedCertificate, type Pki, type ServiceAccountKey } from '../apiserver/pki.js';

/** The identity the apiserver presents to kubelets (kubeadm's apiserver-kubelet-client). */
export const KUBELET_CLIENT_IDENTITY = { commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'] };

/** The identities that get a token: kubectl's admin, the control-plane daemons, one per node. */
export interface Identity {
  user: string;
  groups: string[];
}

export function identities(nodeNames: readonly string[]): Identity[] {
  return [
    { user: 'admin', groups: ['system:masters'] },
    { user: 'system:kube-controller-manager', groups: [] },
    { user: 'system:kube-scheduler', groups: [] },
    // Cluster DNS's pods read Services, EndpointSlices and Namespaces over the fabric with it.
    { user: 'system:kube-dns', groups: [] },
    // Every node's service proxy, as upstream's kube-proxy (bound to system:node-proxier).
    { user: 'system:kube-proxy', groups: [] },
    ...nodeNames.map((node) => ({ user: `system:node:${node}`, groups: ['system:nodes'] })),
  ];
}

/** Writes the tokens CSV (Kubernetes' static token file format); returns user → token. */
export function writeTokensFile(path: string, users: readonly Identity[]): Map<string, string> {
  const tokens = new Map<string, string>();
  const lines = users.map((identity, index) => {
    const token = randomBytes(24).toString('hex');
    tokens.set(identity.user, token);
    return `${token},${identity.user},uid-${index},"${identity.groups.join(',')}"`;
  });
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  return tokens;
}

export function readTokens(path: string): Map<string, string> {
  const tokens = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const [token, user] = line.split(',');
    if (token && user) tokens.set(user, token);
  }
  return tokens;
}

/** A kubeconfig as kubectl reads it (YAML), for one server and one token. */
export function kubeconfigText(options: { cluster: string; server: string; token: string; caPem?: string; failoverServers?: readonly string[] }): string {
  const cluster: Record<string, unknown> = { server: options.server };
  // Only Pontoon's client reads it; kubectl ignores extensions and uses `server`.
  if (options.failoverServers && options.failoverServers.length > 0) cluster['extensions'] = [{ name: SERVERS_EXTENSION, extension: { servers: options.failoverServers } }];
  if (options.caPem) cluster['certificate-authority-data'] = Buffer.from(options.caPem).toString('base64');
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': options.cluster,
    clusters: [{ name: options.cluster, cluster }],
    users: [{ name: `${options.cluster}-user`, user: { token: options.token } }],
    contexts: [{ name: options.cluster, context: { cluster: options.cluster, user: `${options.cluster}-user`, namespace: 'default' } }],
  });
}

/** The addresses the apiserver certificate covers besides 127.0.0.1 (upstream's SANs). */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
const KUBERNETES_SERVICE_HOSTS = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

export interface ControlPlanePki {
  pki: Pki;
  saKey: ServiceAccountKey;
  kubeletClient: IssuedCertificate;
}

/**
 * The CA (made once, reused), the apiserver certificate for 127.0.0.1, the `kubernetes`
 * Service's IP and names and `addresses` (where nodes reach it), the service-account key and
 * the certificate the apiserver presents to kubelets — all under `dir`.
 */
export function ensureControlPlanePki(dir: string, addresses: readonly string[]): ControlPlanePki {
  const pki = ensurePki(dir, { ips: ['127.0.0.1', KUBERNETES_SERVICE_IP, ...addresses], hosts: ['localhost', ...KUBERNETES_SERVICE_HOSTS] });
  const saKey = ensureServiceAccountKey(dir);
  const kubeletClient = issueCertificate(pki, dir, { name: 'apiserver-kubelet-client', ...KUBELET_CLIENT_IDENTITY, usage: 'clientAuth' });
  return { pki, saKey, kubeletClient };
}
