/**
 * The roles and bindings a fresh cluster starts with, named and shaped as upstream's
 * bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), cut down to what
 * Pontoon serves. Reconciled on every apiserver start as upstream does: a missing object is
 * created; one annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` (the default
 * here) gets the bootstrap rules and subjects back; one annotated "false" is left alone, so
 * an administrator can take a default role over.
 *
 * Anonymous requests (group system:unauthenticated) may read discovery and health and
 * nothing else; every authenticated user also gets system:basic-user (access reviews of
 * itself, `kubectl auth can-i` and `whoami`).
 */
import type { KubeObject } from '../../api/meta.js';
import {
  RBAC_GROUP,
  SYSTEM_AUTHENTICATED,
  SYSTEM_BOOTSTRAPPERS,
  SYSTEM_MASTERS,
  SYSTEM_UNAUTHENTICATED,
  type ClusterRole,
  type PolicyRule,
  type RoleBinding,
  type Subject,
} from '../../api/rbac.js';
import { RESOURCE, type ResourceDescriptor } from '../../api/resources.js';
import type { Logger } from '../../lib/log.js';
import type { Registry, WriteOptions } from '../registry.js';
import { ApiStatusError } from '../status.js';
import { jsonEqual } from '../kinds/values.js';

export const AUTOUPDATE_ANNOTATION = 'rbac.authorization.kubernetes.io/autoupdate';
const BOOTSTRAP_LABELS = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };

const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'update', 'patch', 'delete'];
const EVENTS: PolicyRule[] = [
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'update', 'patch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'update', 'patch'] },
];

function rule(verbs: string[], apiGroups: string[], resources: string[], resourceNames?: string[]): PolicyRule {
  return { apiGroups, resources, verbs, ...(resourceNames ? { resourceNames } : {}) };
}

function clusterRole(name: string, rules: PolicyRule[], extra: Partial<ClusterRole> = {}): ClusterRole {
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'ClusterRole',
    metadata: { name, labels: { ...BOOTSTRAP_LABELS, ...(extra.metadata?.labels ?? {}) }, annotations: { [AUTOUPDATE_ANNOTATION]: 'true' } },
    rules,
    ...(extra.aggregationRule ? { aggregationRule: extra.aggregationRule } : {}),
  };
}

const user = (name: string): Subject => ({ kind: 'User', apiGroup: RBAC_GROUP, name });
const group = (name: string): Subject => ({ kind: 'Group', apiGroup: RBAC_GROUP, name });
const serviceAccount = (namespace: string, name: string): Subject => ({ kind: 'ServiceAccount', namespace, name });

function clusterRoleBinding(name: string, role: string, subjects: Subject[]): RoleBinding {
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: { ...BOOTSTRAP_LABELS }, annotations: { [AUTOUPDATE_ANNOTATION]: 'true' } },
    roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: role },
    subjects,
  };
}

/** Resources an application user works with (the aggregated view/edit/admin roles). */
const WORKLOAD_RESOURCES: Array<[string, string[]]> = [
  ['', ['pods', 'services', 'endpoints', 'configmaps', 'serviceaccounts', 'events']],
  ['apps', ['deployments', 'replicasets', 'daemonsets', 'deployments/scale', 'replicasets/scale']],
  ['batch', ['jobs']],
  ['discovery.k8s.io', ['endpointslices']],
];

export function bootstrapClusterRoles(): ClusterRole[] {
  const aggregate = (to: string): Partial<ClusterRole> => ({ aggregationRule: { clusterRoleSelectors: [{ matchLabels: { [`rbac.authorization.k8s.io/aggregate-to-${to}`]: 'true' } }] } });
  const aggregatesTo = (to: string): Partial<ClusterRole> => ({ metadata: { labels: { [`rbac.authorization.k8s.io/aggregate-to-${to}`]: 'true' } } });
  return [
    clusterRole('cluster-admin', [rule(['*'], ['*'], ['*']), { verbs: ['*'], nonResourceURLs: ['*'] }]),
    clusterRole('system:discovery', [{ verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/'] }]),
    clusterRole('system:public-info-viewer', [{ verbs: ['get'], nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'] }]),
    clusterRole('system:basic-user', [
      rule(['create'], ['authorization.k8s.io'], ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']),
      rule(['create'], ['authentication.k8s.io'], ['selfsubjectreviews']),
    ]),
    // The user-facing roles, assembled by aggregation as upstream's admin/edit/view.
    clusterRole('admin', [], aggregate('admin')),
    clusterRole('edit', [], { ...aggregate('edit'), metadata: { labels: { 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' } } }),
    clusterRole('view', [], { ...aggregate('view'), metadata: { labels: { 'rbac.authorization.k8s.io/aggregate-to-edit': 'true' } } }),
    clusterRole('system:aggregate-to-view', WORKLOAD_RESOURCES.map(([g, r]) => rule(READ, [g], [...r, ...r.filter((x) => !x.includes('/')).map((x) => `${x}/status`)])), aggregatesTo('view')),
    clusterRole(
      'system:aggregate-to-edit',
      [
        ...WORKLOAD_RESOURCES.map(([g, r]) => rule([...WRITE, 'deletecollection'], [g], r)),
        rule([...READ, ...WRITE, 'deletecollection'], [''], ['secrets']),
        rule(['get', 'create'], [''], ['pods/log', 'pods/exec', 'pods/attach', 'pods/portforward']),
        rule(['create'], [''], ['serviceaccounts/token']),
      ],
      aggregatesTo('edit'),
    ),
    clusterRole('system:aggregate-to-admin', [rule([...READ, ...WRITE, 'deletecollection'], [RBAC_GROUP], ['roles', 'rolebindings']), rule(['create'], ['authorization.k8s.io'], ['localsubjectaccessreviews'])], aggregatesTo('admin')),
    // One identity for every controller (upstream splits them into system:controller:* accounts):
    // the garbage collector and the namespace controller read and remove objects of every kind.
    clusterRole('system:kube-controller-manager', [
      rule(READ, ['*'], ['*']),
      rule(['update', 'patch', 'delete', 'deletecollection'], ['*'], ['*']),
      rule(['create'], [''], ['pods', 'endpoints', 'serviceaccounts', 'secrets', 'configmaps']),
      rule(['create'], ['apps'], ['replicasets']),
      rule(['create'], ['discovery.k8s.io'], ['endpointslices']),
      rule(['create'], ['coordination.k8s.io'], ['leases']),
      rule(['create'], ['authentication.k8s.io'], ['tokenreviews']),
      rule(['create'], ['authorization.k8s.io'], ['subjectaccessreviews']),
      ...EVENTS,
    ]),
    clusterRole('system:kube-scheduler', [
      ...EVENTS,
      rule(['create'], ['coordination.k8s.io'], ['leases']),
      rule(['get', 'update'], ['coordination.k8s.io'], ['leases'], ['kube-scheduler']),
      rule(READ, [''], ['nodes', 'pods', 'namespaces', 'services']),
      rule(['delete'], [''], ['pods']),
      rule(['create'], [''], ['bindings', 'pods/binding']),
      rule(['patch', 'update'], [''], ['pods/status']),
      rule(READ, ['apps'], ['replicasets', 'daemonsets', 'deployments']),
    ]),
    // kube-proxy (upstream binds it to the user system:kube-proxy).
    clusterRole('system:node-proxier', [
      rule(['list', 'watch'], [''], ['services', 'endpoints']),
      rule(READ, [''], ['nodes']),
      rule(['list', 'watch'], ['discovery.k8s.io'], ['endpointslices']),
      ...EVENTS,
    ]),
    // Cluster DNS: what kube-dns/CoreDNS read.
    clusterRole('system:kube-dns', [rule(['list', 'watch'], [''], ['services', 'endpoints', 'pods', 'namespaces']), rule(['list', 'watch'], ['discovery.k8s.io'], ['endpointslices'])]),
    // What the Node authorizer lets a kubelet do, as a role: upstream keeps it for reference and
    // binds it to nobody (binding it to system:nodes would bypass the per-node restrictions).
    clusterRole('system:node', [
      rule(['create', 'get', 'list', 'watch', 'update', 'patch', 'delete'], [''], ['nodes']),
      rule(['patch', 'update'], [''], ['nodes/status', 'pods/status']),
      rule(READ, [''], ['pods', 'services', 'endpoints']),
      rule(['delete'], [''], ['pods']),
      rule(['get'], [''], ['secrets', 'configmaps', 'serviceaccounts']),
      rule(['create'], [''], ['serviceaccounts/token']),
      rule(['get', 'create', 'update', 'patch', 'delete'], ['coordination.k8s.io'], ['leases']),
      ...EVENTS,
    ]),
    // A joining node with a bootstrap token asks for its client certificate (upstream's role).
    clusterRole('system:node-bootstrapper', [rule(['create', 'get', 'list', 'watch'], ['certificates.k8s.io'], ['certificatesigningrequests'])]),
  ];
}

export function bootstrapClusterRoleBindings(): RoleBinding[] {
  return [
    clusterRoleBinding('cluster-admin', 'cluster-admin', [group(SYSTEM_MASTERS)]),
    // Upstream binds system:discovery to authenticated users only; Pontoon also lets
    // anonymous clients read discovery and OpenAPI (still no objects).
    clusterRoleBinding('system:discovery', 'system:discovery', [group(SYSTEM_AUTHENTICATED), group(SYSTEM_UNAUTHENTICATED)]),
    clusterRoleBinding('system:public-info-viewer', 'system:public-info-viewer', [group(SYSTEM_AUTHENTICATED), group(SYSTEM_UNAUTHENTICATED)]),
    clusterRoleBinding('system:basic-user', 'system:basic-user', [group(SYSTEM_AUTHENTICATED)]),
    clusterRoleBinding('system:kube-controller-manager', 'system:kube-controller-manager', [user('system:kube-controller-manager')]),
    clusterRoleBinding('system:kube-scheduler', 'system:kube-scheduler', [user('system:kube-scheduler')]),
    clusterRoleBinding('system:node-proxier', 'system:node-proxier', [user('system:kube-proxy')]),
    clusterRoleBinding('system:kube-dns', 'system:kube-dns', [serviceAccount('kube-system', 'kube-dns'), user('system:kube-dns')]),
    clusterRoleBinding('system:node-bootstrapper', 'system:node-bootstrapper', [group(SYSTEM_BOOTSTRAPPERS)]),
  ];
}

const WRITE_OPTIONS = (): WriteOptions => ({ dryRun: false, fieldValidation: 'Strict', warnings: [] });

async function reconcile(registry: Registry, descriptor: ResourceDescriptor, wanted: KubeObject, fields: string[], log: Logger): Promise<void> {
  const name = wanted.metadata.name ?? '';
  const existing = await registry.get(descriptor, undefined, name).catch((err: unknown) => {
    if (err instanceof ApiStatusError && err.code === 404) return undefined;
    throw err;
  });
  try {
    if (!existing) {
      await registry.create(descriptor, undefined, structuredClone(wanted) as Record<string, unknown>, WRITE_OPTIONS());
      log.debug({ kind: descriptor.kind, object: name }, 'created bootstrap RBAC object');
      return;
    }
    if (existing.metadata.annotations?.[AUTOUPDATE_ANNOTATION] === 'false') return;
    if (fields.every((field) => jsonEqual(existing[field], wanted[field]))) return;
    const updated: Record<string, unknown> = { ...existing };
    for (const field of fields) updated[field] = structuredClone(wanted[field]);
    await registry.update(descriptor, undefined, name, updated, WRITE_OPTIONS());
    log.info({ kind: descriptor.kind, object: name }, 'reconciled bootstrap RBAC object');
  } catch (err) {
    // Another apiserver on the same store reconciling at the same time.
    if (err instanceof ApiStatusError && err.code === 409) return;
    throw err;
  }
}

export async function bootstrapPolicy(registry: Registry, log: Logger): Promise<void> {
  for (const role of bootstrapClusterRoles()) await reconcile(registry, RESOURCE.clusterroles, role, ['rules', 'aggregationRule'], log);
  for (const binding of bootstrapClusterRoleBindings()) await reconcile(registry, RESOURCE.clusterrolebindings, binding, ['subjects'], log);
}
