/**
 * The resource table: every kind the apiserver serves, with what discovery advertises
 * (plural name, scope, verbs, short names, subresources). The apiserver routes, the client
 * builds URLs, and kubectl's discovery all come from this one list.
 */

export type Verb = 'create' | 'delete' | 'deletecollection' | 'get' | 'list' | 'patch' | 'update' | 'watch';

export const ALL_VERBS: readonly Verb[] = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** exec, attach and portforward are connect subresources: streams upgraded from one request. */
export type Subresource = 'status' | 'binding' | 'scale' | 'log' | 'token' | 'exec' | 'attach' | 'portforward' | 'approval';

export interface ResourceDescriptor {
  /** '' for the core group (served under /api/v1). */
  group: string;
  version: string;
  kind: string;
  /** Plural, lower case: the URL segment (`pods`, `endpointslices`). */
  resource: string;
  singular: string;
  namespaced: boolean;
  shortNames: readonly string[];
  verbs: readonly Verb[];
  subresources: readonly Subresource[];
  /** kubectl `get all` includes resources in the `all` category. */
  categories: readonly string[];
}

function describe(
  group: string,
  version: string,
  kind: string,
  resource: string,
  options: Partial<Pick<ResourceDescriptor, 'namespaced' | 'shortNames' | 'verbs' | 'subresources' | 'categories'>> = {},
): ResourceDescriptor {
  return {
    group,
    version,
    kind,
    resource,
    singular: kind.toLowerCase(),
    namespaced: options.namespaced ?? true,
    shortNames: options.shortNames ?? [],
    verbs: options.verbs ?? ALL_VERBS,
    subresources: options.subresources ?? [],
    categories: options.categories ?? [],
  };
}

export const RESOURCES: readonly ResourceDescriptor[] = [
  describe('', 'v1', 'Namespace', 'namespaces', {
    namespaced: false,
    shortNames: ['ns'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    subresources: ['status'],
  }),
  describe('', 'v1', 'Node', 'nodes', { namespaced: false, shortNames: ['no'], subresources: ['status'] }),
  describe('', 'v1', 'Pod', 'pods', { shortNames: ['po'], subresources: ['status', 'binding', 'log', 'exec', 'attach', 'portforward'], categories: ['all'] }),
  describe('', 'v1', 'Service', 'services', {
    shortNames: ['svc'],
    verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    subresources: ['status'],
    categories: ['all'],
  }),
  describe('', 'v1', 'Endpoints', 'endpoints', { shortNames: ['ep'] }),
  describe('', 'v1', 'ConfigMap', 'configmaps', { shortNames: ['cm'] }),
  describe('', 'v1', 'Event', 'events', { shortNames: ['ev'] }),
  describe('', 'v1', 'Secret', 'secrets'),
  describe('', 'v1', 'ServiceAccount', 'serviceaccounts', { shortNames: ['sa'], subresources: ['token'] }),
  describe('apps', 'v1', 'Deployment', 'deployments', {
    shortNames: ['deploy'],
    subresources: ['status', 'scale'],
    categories: ['all'],
  }),
  describe('apps', 'v1', 'ReplicaSet', 'replicasets', { shortNames: ['rs'], subresources: ['status', 'scale'], categories: ['all'] }),
  describe('apps', 'v1', 'DaemonSet', 'daemonsets', { shortNames: ['ds'], subresources: ['status'], categories: ['all'] }),
  describe('batch', 'v1', 'Job', 'jobs', { subresources: ['status'], categories: ['all'] }),
  describe('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices'),
  describe('coordination.k8s.io', 'v1', 'Lease', 'leases'),
  // Node credentials: `approval` carries the Approved/Denied conditions, `status` the certificate.
  describe('certificates.k8s.io', 'v1', 'CertificateSigningRequest', 'certificatesigningrequests', {
    namespaced: false,
    shortNames: ['csr'],
    subresources: ['status', 'approval'],
  }),
  describe('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  describe('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  describe('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', { namespaced: false }),
  describe('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', { namespaced: false }),
];

export function apiVersionOf(descriptor: Pick<ResourceDescriptor, 'group' | 'version'>): string {
  return descriptor.group === '' ? descriptor.version : `${descriptor.group}/${descriptor.version}`;
}

export function findResource(group: string, version: string, resource: string): ResourceDescriptor | undefined {
  return RESOURCES.find((d) => d.group === group && d.version === version && d.resource === resource);
}

export function findKind(apiVersion: string, kind: string): ResourceDescriptor | undefined {
  return RESOURCES.find((d) => apiVersionOf(d) === apiVersion && d.kind === kind);
}

/** The typed handle daemons pass to the client: `RESOURCE.pods`, `RESOURCE.deployments`... */
export const RESOURCE = Object.fromEntries(RESOURCES.map((d) => [d.resource, d])) as Record<
  | 'namespaces' | 'nodes' | 'pods' | 'services' | 'endpoints' | 'configmaps' | 'events' | 'deployments' | 'replicasets' | 'daemonsets' | 'jobs' | 'endpointslices' | 'leases'
  | 'secrets' | 'serviceaccounts' | 'certificatesigningrequests' | 'roles' | 'rolebindings' | 'clusterroles' | 'clusterrolebindings',
  ResourceDescriptor
>;

/**
 * The URL path of a collection or object: `/api/v1/namespaces/default/pods/web-1`,
 * `/apis/apps/v1/deployments` (all namespaces), `/api/v1/nodes/n1/status`.
 */
export function resourcePath(
  descriptor: ResourceDescriptor,
  namespace?: string,
  name?: string,
  subresource?: Subresource,
): string {
  const root = descriptor.group === '' ? `/api/${descriptor.version}` : `/apis/${descriptor.group}/${descriptor.version}`;
  const scope = descriptor.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const object = name !== undefined ? `/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}` : '';
  return `${root}${scope}/${descriptor.resource}${object}`;
}
