/**
 * Turns a resource URL into what it addresses, following upstream's RequestInfo rules:
 * `/api/v1/namespaces/ns/pods/x/status`, `/apis/apps/v1/deployments` (all namespaces),
 * `/api/v1/namespaces/ns` (a Namespace object) versus `/api/v1/namespaces/ns/pods` (a
 * collection inside it), and the legacy `/api/v1/watch/...` prefix.
 */
import { findResource, type ResourceDescriptor, type Subresource } from '../api/resources.js';
import { pathNotFound } from './status.js';

export interface ResourceRequest {
  descriptor: ResourceDescriptor;
  /** Set for namespaced URLs; undefined for cluster-scoped kinds and all-namespace lists. */
  namespace?: string;
  name?: string;
  subresource?: Subresource;
  /** The URL used the deprecated `/watch/` prefix. */
  legacyWatch: boolean;
}

/** Subresources of Namespace itself: `/api/v1/namespaces/x/status` is not a collection. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

/**
 * Returns undefined when the path is not under `/api/v1` or `/apis/<g>/<v>/` at all (so the
 * caller tries discovery and the other fixed paths), and throws 404 for an unknown resource.
 */
export function parseResourcePath(pathname: string): ResourceRequest | undefined {
  const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    version = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let legacyWatch = false;
  if (rest[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && !NAMESPACE_SUBRESOURCES.has(rest[2]!)) {
    namespace = rest[1]!;
    rest = rest.slice(2);
  }
  const [resource, name, subresource, ...extra] = rest;
  if (resource === undefined || extra.length > 0) throw pathNotFound();
  const descriptor = findResource(group, version, resource);
  if (!descriptor) throw pathNotFound();
  if (namespace !== undefined && !descriptor.namespaced) throw pathNotFound();
  if (subresource !== undefined && !(descriptor.subresources as readonly string[]).includes(subresource)) throw pathNotFound();
  return {
    descriptor,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(subresource !== undefined ? { subresource: subresource as Subresource } : {}),
    legacyWatch,
  };
}
