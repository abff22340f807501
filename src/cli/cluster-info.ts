/**
 * kube-public/cluster-info, the discovery document of a join (kubeadm's bootstrap-token
 * phase): a kubeconfig with the address nodes reach the apiserver at and its CA, readable
 * without credentials and signed per token by the bootstrapsigner controller.
 */
import { RESOURCE } from '../api/resources.js';
import { CLUSTER_INFO_KUBECONFIG_KEY, CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE } from '../api/bootstrap-token.js';
import type { ConfigMap } from '../api/types.js';
import { RBAC_GROUP, type Role, type RoleBinding } from '../api/rbac.js';
import { isAlreadyExists, type KubeApi } from '../client/api.js';
import { stringify as toYaml, parse as parseYaml } from 'yaml';

/** The kubeconfig upstream puts there: one cluster named "" with server and CA, no users. */
export function clusterInfoKubeconfig(server: string, caPem: string): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: '', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    contexts: [],
    'current-context': '',
    preferences: {},
    users: [],
  });
}

export function parseClusterInfoKubeconfig(text: string): { server: string; caPem: string } | undefined {
  try {
    const parsed = parseYaml(text) as { clusters?: { cluster?: { server?: unknown; 'certificate-authority-data'?: unknown } }[] };
    const cluster = parsed.clusters?.[0]?.cluster;
    if (typeof cluster?.server !== 'string' || typeof cluster['certificate-authority-data'] !== 'string') return undefined;
    return { server: cluster.server, caPem: Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8') };
  } catch {
    return undefined;
  }
}

/**
 * Creates cluster-info, or points it at `server` with `caPem` when it says otherwise (the
 * signatures of the old content are then stale; the signer redoes them).
 */
export async function ensureClusterInfo(api: KubeApi, server: string, caPem: string): Promise<void> {
  await ensureClusterInfoReadable(api);
  const kubeconfig = clusterInfoKubeconfig(server, caPem);
  const current = await api.get<ConfigMap>(RESOURCE.configmaps, CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE);
  if (current) {
    const said = parseClusterInfoKubeconfig(current.data?.[CLUSTER_INFO_KUBECONFIG_KEY] ?? '');
    if (said?.server === server && said.caPem === caPem) return;
    await api.update<ConfigMap>(RESOURCE.configmaps, { ...current, data: { [CLUSTER_INFO_KUBECONFIG_KEY]: kubeconfig } });
    return;
  }
  try {
    await api.create<ConfigMap>(RESOURCE.configmaps, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CLUSTER_INFO_NAME, namespace: CLUSTER_INFO_NAMESPACE },
      data: { [CLUSTER_INFO_KUBECONFIG_KEY]: kubeconfig },
    });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/** kubeadm's names for the Role and RoleBinding that let anyone read cluster-info. */
export const CLUSTER_INFO_READER = 'kubeadm:bootstrap-signer-clusterinfo';

/**
 * What kubeadm's bootstrap-token phase creates: anonymous clients (a joining host has no
 * credentials yet) may get that one ConfigMap in kube-public, nothing else. Created when
 * missing; an existing one is left as the administrator has it.
 */
async function ensureClusterInfoReadable(api: KubeApi): Promise<void> {
  const metadata = { name: CLUSTER_INFO_READER, namespace: CLUSTER_INFO_NAMESPACE };
  const role: Role = {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'Role',
    metadata,
    rules: [{ verbs: ['get'], apiGroups: [''], resources: ['configmaps'], resourceNames: [CLUSTER_INFO_NAME] }],
  };
  const binding: RoleBinding = {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'RoleBinding',
    metadata,
    roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name: CLUSTER_INFO_READER },
    subjects: [{ kind: 'User', apiGroup: RBAC_GROUP, name: 'system:anonymous' }],
  };
  for (const [descriptor, object] of [[RESOURCE.roles, role], [RESOURCE.rolebindings, binding]] as const) {
    if (await api.get(descriptor, CLUSTER_INFO_READER, CLUSTER_INFO_NAMESPACE)) continue;
    try {
      await api.create(descriptor, object);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
}
