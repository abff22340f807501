/**
 * Discovery documents, all derived from the resource table: the legacy per-group-version
 * APIResourceLists kubectl walks one by one, and the aggregated apidiscovery.k8s.io/v2 lists
 * it asks for first (one answer for /api and one for /apis instead of a request per group).
 * The aggregated form is only sent when the Accept header names it; otherwise plain JSON.
 */
import { RESOURCES, apiVersionOf, type ResourceDescriptor, type Subresource, type Verb } from '../api/resources.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-pontoon',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`,
} as const;

/** `as=APIGroupDiscoveryList` media type kubectl asks for before plain JSON. */
export const AGGREGATED_DISCOVERY_V2 = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

interface SubresourceShape {
  kind: string;
  group?: string;
  version?: string;
  verbs: Verb[];
}

function subresourceShape(descriptor: ResourceDescriptor, subresource: Subresource): SubresourceShape {
  switch (subresource) {
    case 'status':
    case 'approval':
      return { kind: descriptor.kind, verbs: ['get', 'patch', 'update'] };
    case 'binding':
      return { kind: 'Binding', verbs: ['create'] };
    case 'scale':
      return { kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] };
    case 'log':
      return { kind: descriptor.kind, verbs: ['get'] };
    case 'exec':
      return { kind: 'PodExecOptions', verbs: ['create', 'get'] };
    case 'attach':
      return { kind: 'PodAttachOptions', verbs: ['create', 'get'] };
    case 'portforward':
      return { kind: 'PodPortForwardOptions', verbs: ['create', 'get'] };
    case 'token':
      return { kind: 'TokenRequest', group: 'authentication.k8s.io', version: 'v1', verbs: ['create'] };
  }
}

interface GroupVersion {
  group: string;
  version: string;
  resources: ResourceDescriptor[];
}

/** Group versions in table order, core first. */
export function groupVersions(): GroupVersion[] {
  const byKey = new Map<string, GroupVersion>();
  for (const descriptor of RESOURCES) {
    const key = apiVersionOf(descriptor);
    let entry = byKey.get(key);
    if (!entry) {
      entry = { group: descriptor.group, version: descriptor.version, resources: [] };
      byKey.set(key, entry);
    }
    entry.resources.push(descriptor);
  }
  return [...byKey.values()];
}

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupEntry(group: string): unknown {
  const versions = groupVersions()
    .filter((gv) => gv.group === group)
    .map((gv) => ({ groupVersion: `${gv.group}/${gv.version}`, version: gv.version }));
  return { name: group, versions, preferredVersion: versions[0] };
}

export function apiGroupList(): unknown {
  const groups = [...new Set(groupVersions().map((gv) => gv.group))].filter((g) => g !== '');
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(groupEntry) };
}

/** `/apis/<group>`, or undefined for a group nothing serves. */
export function apiGroup(group: string): unknown {
  if (group === '' || !groupVersions().some((gv) => gv.group === group)) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...(groupEntry(group) as object) };
}

/** `/api/v1` or `/apis/<group>/<version>`, or undefined when not served. */
export function apiResourceList(group: string, version: string): unknown {
  const gv = groupVersions().find((entry) => entry.group === group && entry.version === version);
  if (!gv) return undefined;
  const resources: unknown[] = [];
  for (const d of gv.resources) {
    resources.push({
      name: d.resource,
      singularName: d.singular,
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: d.verbs,
      ...(d.shortNames.length ? { shortNames: d.shortNames } : {}),
      ...(d.categories.length ? { categories: d.categories } : {}),
    });
    for (const sub of d.subresources) {
      const shape = subresourceShape(d, sub);
      resources.push({
        name: `${d.resource}/${sub}`,
        singularName: '',
        namespaced: d.namespaced,
        ...(shape.group ? { group: shape.group, version: shape.version } : {}),
        kind: shape.kind,
        verbs: shape.verbs,
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(gv), resources };
}

function resourceDiscovery(d: ResourceDescriptor): unknown {
  return {
    resource: d.resource,
    responseKind: { group: d.group, version: d.version, kind: d.kind },
    scope: d.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: d.singular,
    verbs: d.verbs,
    ...(d.shortNames.length ? { shortNames: d.shortNames } : {}),
    ...(d.categories.length ? { categories: d.categories } : {}),
    ...(d.subresources.length
      ? {
          subresources: d.subresources.map((sub) => {
            const shape = subresourceShape(d, sub);
            return {
              subresource: sub,
              responseKind: { group: shape.group ?? d.group, version: shape.version ?? d.version, kind: shape.kind },
              verbs: shape.verbs,
            };
          }),
        }
      : {}),
  };
}

/** Aggregated discovery: `core` true for /api (the "" group), false for /apis. */
export function aggregatedDiscovery(core: boolean): unknown {
  const byGroup = new Map<string, GroupVersion[]>();
  for (const gv of groupVersions()) {
    if ((gv.group === '') !== core) continue;
    byGroup.set(gv.group, [...(byGroup.get(gv.group) ?? []), gv]);
  }
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: [...byGroup].map(([group, versions]) => ({
      metadata: { name: group, creationTimestamp: null },
      versions: versions.map((gv) => ({ version: gv.version, resources: gv.resources.map(resourceDiscovery), freshness: 'Current' })),
    })),
  };
}
