/**
 * Upstream's Node authorizer and NodeRestriction admission, for users named
 * `system:node:<name>` in `system:nodes` (a kubelet's identity). A node may:
 *
 * - read (get) only the Secrets and ConfigMaps a pod bound to it uses, and create tokens only
 *   for the ServiceAccounts of those pods; listing or watching Secrets/ConfigMaps is refused
 *   (a node must never see every Secret);
 * - write only its own Node (and nodes/status), its own Lease in kube-node-lease, the status
 *   of pods bound to it, delete pods bound to it (the kubelet's final delete), and events;
 * - read pods, nodes, services, endpoints, endpointslices and namespaces (what the kubelet and
 *   the node agents running under its identity watch).
 *
 * Anything else a node asks for is refused here, not passed on to RBAC, so a binding that
 * grants `system:nodes` more cannot widen what a node can touch; non-node users are not this
 * authorizer's business (no opinion). Creates carry the name in the body, not the URL: the
 * name rule for a new Node or Lease is checked by `admitNodeCreate` once the body is read.
 *
 * Pods are looked up per request (the lab's stores hold tens of pods) rather than kept as
 * upstream's graph; a pod's references are computed by pod-references.ts.
 */
import type { KubeObject } from '../../api/meta.js';
import { NODE_USER_PREFIX, SYSTEM_NODES } from '../../api/rbac.js';
import { RESOURCE } from '../../api/resources.js';
import type { UserInfo } from '../auth.js';
import type { Registry } from '../registry.js';
import { parseSelection } from '../selection.js';
import { forbidden } from '../status.js';
import type { RequestAttributes, ResourceAttributes } from './attributes.js';
import { NO_OPINION, type AuthorizationResult, type Authorizer } from './authorizer.js';
import { podReferences } from './pod-references.js';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
const ROOT_CA_CONFIG_MAP = 'kube-root-ca.crt';
const READ = new Set(['get', 'list', 'watch']);
const WRITE_OWN = new Set(['get', 'update', 'patch', 'delete']);

/** The node a user speaks for, or undefined when it is not a node identity. */
export function nodeNameOf(user: UserInfo): string | undefined {
  if (!user.name.startsWith(NODE_USER_PREFIX) || !user.groups.includes(SYSTEM_NODES)) return undefined;
  const name = user.name.slice(NODE_USER_PREFIX.length);
  return name === '' ? undefined : name;
}

const allow = (reason: string): AuthorizationResult => ({ decision: 'allow', reason });
const deny = (reason: string): AuthorizationResult => ({ decision: 'deny', reason });

export class NodeAuthorizer implements Authorizer {
  constructor(private readonly registry: Registry) {}

  async authorize(attributes: RequestAttributes): Promise<AuthorizationResult> {
    const node = nodeNameOf(attributes.user);
    if (node === undefined) return NO_OPINION;
    if (!('resource' in attributes)) return NO_OPINION;
    return this.decide(node, attributes.resource);
  }

  private async decide(node: string, r: ResourceAttributes): Promise<AuthorizationResult> {
    const core = r.apiGroup === '';
    const key = `${r.apiGroup}/${r.resource}${r.subresource ? `/${r.subresource}` : ''}`;
    switch (key) {
      case '/secrets':
      case '/configmaps':
        return this.referencedObject(node, r);
      case '/serviceaccounts':
      case '/serviceaccounts/token': {
        const verb = r.subresource ? 'create' : 'get';
        if (r.verb !== verb || !r.name) return deny(`node "${node}" may only ${verb} ${key.slice(1)} of pods bound to it`);
        const pods = await this.podsOn(node, r.namespace);
        return pods.some((pod) => podReferences(pod).serviceAccount === r.name)
          ? allow(`a pod on node "${node}" runs as this ServiceAccount`)
          : deny(`no relationship found between node "${node}" and this object`);
      }
      case '/nodes':
      case '/nodes/status':
        if (READ.has(r.verb) && !r.subresource) return allow('nodes are readable by every node');
        if (r.verb === 'create' && !r.subresource) return allow('a node may register itself (the name is checked on admission)');
        return WRITE_OWN.has(r.verb) && r.name === node ? allow('a node may change its own Node') : deny(`node "${node}" may not ${r.verb} node "${r.name}"`);
      case 'coordination.k8s.io/leases':
        if (r.namespace !== NODE_LEASE_NAMESPACE) return deny(`node "${node}" may only use leases in ${NODE_LEASE_NAMESPACE}`);
        if (r.verb === 'create') return allow('a node may create its lease (the name is checked on admission)');
        return WRITE_OWN.has(r.verb) && r.name === node ? allow('a node may renew its own lease') : deny(`node "${node}" may not ${r.verb} lease "${r.name}"`);
      case '/pods':
        if (READ.has(r.verb)) return allow('pods are readable by every node');
        if (r.verb === 'delete') return this.boundPod(node, r);
        return deny(`node "${node}" may not ${r.verb} pods`);
      case '/pods/status':
        if (r.verb === 'get') return this.boundPod(node, r);
        if (r.verb === 'update' || r.verb === 'patch') return this.boundPod(node, r);
        return deny(`node "${node}" may not ${r.verb} pods/status`);
      case '/events':
      case 'events.k8s.io/events':
        return ['create', 'update', 'patch'].includes(r.verb) ? allow('nodes record events') : deny(`node "${node}" may not ${r.verb} events`);
      case '/services':
      case '/endpoints':
      case 'discovery.k8s.io/endpointslices':
      case '/namespaces':
        return READ.has(r.verb) ? allow('service discovery is readable by every node') : deny(`node "${node}" may not ${r.verb} ${r.resource}`);
      case 'authorization.k8s.io/selfsubjectaccessreviews':
      case 'authentication.k8s.io/selfsubjectreviews':
        return NO_OPINION;
      default:
        return deny(`node "${node}" may not ${r.verb} ${core ? '' : `${r.apiGroup}/`}${r.resource}${r.subresource ? `/${r.subresource}` : ''}`);
    }
  }

  /** Secrets and ConfigMaps: `get` of one a pod bound to this node uses; nothing else. */
  private async referencedObject(node: string, r: ResourceAttributes): Promise<AuthorizationResult> {
    if (r.verb !== 'get' || !r.name || r.subresource) return deny(`node "${node}" may only get individual ${r.resource} its pods use`);
    const pods = await this.podsOn(node, r.namespace);
    const used = pods.some((pod) => {
      const refs = podReferences(pod);
      if (r.resource === 'secrets') return refs.secrets.has(r.name);
      // The token volume the kubelet adds carries the namespace's root CA.
      return refs.configMaps.has(r.name) || (r.name === ROOT_CA_CONFIG_MAP && pod['spec'] !== undefined);
    });
    return used ? allow(`a pod on node "${node}" uses this object`) : deny(`no relationship found between node "${node}" and this object`);
  }

  private async boundPod(node: string, r: ResourceAttributes): Promise<AuthorizationResult> {
    if (!r.name) return deny(`node "${node}" may only write individual pods bound to it`);
    const pod = await this.registry.get(RESOURCE.pods, r.namespace, r.name).catch(() => undefined);
    // A pod already gone: let the handler answer 404 rather than hide it behind a 403.
    if (!pod) return allow('no such pod');
    const bound = (pod['spec'] as { nodeName?: string } | undefined)?.nodeName;
    return bound === node ? allow(`the pod is bound to node "${node}"`) : deny(`node "${node}" may not change pod "${r.namespace}/${r.name}" bound to "${bound ?? ''}"`);
  }

  private async podsOn(node: string, namespace: string): Promise<KubeObject[]> {
    const list = await this.registry.list(RESOURCE.pods, namespace || undefined, { selection: parseSelection(RESOURCE.pods, undefined, `spec.nodeName=${node}`) });
    return list.items;
  }
}

/**
 * NodeRestriction for creates, where the name is in the body: a node may register only
 * itself and create only its own lease. Throws the 403 to answer.
 */
export function admitNodeCreate(user: UserInfo, resource: string, object: Record<string, unknown>): void {
  const node = nodeNameOf(user);
  if (node === undefined || (resource !== 'nodes' && resource !== 'leases')) return;
  const name = (object['metadata'] as { name?: unknown } | undefined)?.name;
  if (name !== node) {
    throw forbidden(`${resource} "${String(name ?? '')}" is forbidden: node "${node}" is not allowed to create ${resource} other than its own`);
  }
}
