/**
 * What an authorizer decides on, derived from the URL alone as upstream's RequestInfoFactory
 * does (so an unknown resource is refused before it is found missing, and authorization never
 * depends on the resource table):
 *
 *   /api/v1/namespaces/ns/pods/x/log  → resource pods, subresource log, name x, namespace ns
 *   /apis/apps/v1/deployments         → list deployments in every namespace
 *   /api/v1/watch/pods, ?watch=true   → watch
 *   /healthz, /version, /openapi/v3   → non-resource, verb = lower-case HTTP method
 *
 * Verbs: GET/HEAD get|list|watch, POST create, PUT update, PATCH patch, DELETE
 * delete|deletecollection. Connect subresources (exec, attach, portforward) are `create`
 * whatever the method, as upstream authorizes the WebSocket GET since 1.30.
 */
import type { UserInfo } from '../auth.js';

export interface ResourceAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  /** '' for cluster-scoped objects and all-namespace requests. */
  namespace: string;
  /** '' when the request names no object (list, create). */
  name: string;
}

export interface NonResourceAttributes {
  verb: string;
  path: string;
}

export type RequestAttributes = { user: UserInfo } & ({ resource: ResourceAttributes } | { nonResource: NonResourceAttributes });

const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function writeVerb(method: string, named: boolean): string {
  switch (method) {
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

export function attributesOf(user: UserInfo, method: string, path: string, query: URLSearchParams): RequestAttributes {
  const parts = path.split('/').filter((p) => p !== '');
  const readMethod = method === 'GET' || method === 'HEAD';
  let rest: string[] | undefined;
  let apiGroup = '';
  if (parts[0] === 'api' && parts.length >= 3) rest = parts.slice(2);
  else if (parts[0] === 'apis' && parts.length >= 4) {
    apiGroup = parts[1]!;
    rest = parts.slice(3);
  }
  if (!rest) return { user, nonResource: { verb: readMethod ? 'get' : method.toLowerCase(), path } };
  let decoded: string[];
  try {
    decoded = rest.map(decodeURIComponent);
  } catch {
    decoded = rest;
  }
  let watch = false;
  if (decoded[0] === 'watch') {
    watch = true;
    decoded = decoded.slice(1);
  }
  let namespace = '';
  if (decoded[0] === 'namespaces' && decoded.length >= 3 && !NAMESPACE_SUBRESOURCES.has(decoded[2]!)) {
    namespace = decoded[1]!;
    decoded = decoded.slice(2);
  } else if (decoded[0] === 'namespaces' && decoded.length >= 2) {
    // A Namespace object is its own namespace, as upstream: `get namespace x` in namespace x.
    namespace = decoded[1]!;
  }
  const [resource = '', name = '', subresource = ''] = decoded;
  const queryWatch = query.get('watch');
  if (queryWatch === 'true' || queryWatch === '1') watch = true;
  let verb: string;
  if (CONNECT_SUBRESOURCES.has(subresource)) verb = 'create';
  else if (readMethod) verb = watch ? 'watch' : name ? 'get' : 'list';
  else verb = writeVerb(method, name !== '');
  return { user, resource: { verb, apiGroup, resource, subresource, namespace, name } };
}

/** `User "x" cannot get resource "pods/log" in API group "" in the namespace "ns"`: upstream's wording. */
export function describeRefusal(attributes: RequestAttributes): string {
  const who = `User "${attributes.user.name}"`;
  if ('nonResource' in attributes) return `${who} cannot ${attributes.nonResource.verb} path "${attributes.nonResource.path}"`;
  const r = attributes.resource;
  const what = r.subresource ? `${r.resource}/${r.subresource}` : r.resource;
  const scope = r.namespace ? ` in the namespace "${r.namespace}"` : ' at the cluster scope';
  return `${who} cannot ${r.verb} resource "${what}" in API group "${r.apiGroup}"${scope}`;
}
