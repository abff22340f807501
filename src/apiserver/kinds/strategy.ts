/**
 * Per-kind behaviour of the apiserver's registry, as pure functions over decoded objects:
 * defaulting, validation with Kubernetes field paths, and what create/update/status-update do
 * to an object before it is stored. No HTTP, no store: the server calls these in the order
 * upstream's generic registry does.
 *
 *   create:        applyDefaults(obj) → prepareForCreate(obj) → validate(obj)
 *                  (then, for Services, ServiceIpAllocator.allocate)
 *   update:        applyDefaults(obj) → prepareForUpdate(obj, old)
 *                  → validate(obj) + validateUpdate(obj, old)
 *   status update: prepareForStatusUpdate(obj, old) → applyDefaults(obj)
 *                  → validate(obj) + validateUpdate(obj, old)
 *
 * `validate` is complete on its own: it includes the metadata checks of validateObjectMeta
 * with the kind's name rule. `validateUpdate` holds only what differs on update (immutable
 * fields). Any cause means 422 Invalid and nothing is stored.
 *
 * The server fills uid, creationTimestamp, resourceVersion and generateName; graceful
 * deletion (deletionTimestamp) and pod binding (spec.nodeName) are server writes that must
 * not go through prepareForUpdate/validateUpdate (a pod's spec is immutable to clients).
 */
import type { ObjectMeta } from '../../api/meta.js';
import { RESOURCES } from '../../api/resources.js';
import { CertificateSigningRequestStrategy } from './certificates.js';
import { DaemonSetStrategy, DeploymentStrategy, ReplicaSetStrategy } from './apps.js';
import { JobStrategy } from './batch.js';
import { NamespaceStrategy, NodeStrategy } from './cluster.js';
import { EndpointSliceStrategy, EndpointsStrategy } from './endpoints.js';
import type { FieldCause } from './field.js';
import type { KindStrategy } from './kind-strategy.js';
import { GenericStrategy } from './generic.js';
import { SecretStrategy, ServiceAccountStrategy } from './identity.js';
import { validateMeta } from './meta.js';
import { nameIsDns1035Label, nameIsDnsLabel, nameIsDnsSubdomain, nameIsPathSegment, type NameValidator } from './names.js';
import { PodStrategy } from './pod.js';
import { ConfigMapStrategy, EventStrategy, LeaseStrategy } from './records.js';
import { RoleBindingStrategy, RoleStrategy } from './rbac.js';
import { ServiceStrategy } from './service.js';

export type { CauseReason, FieldCause } from './field.js';
export { FieldPath, invalidMessage } from './field.js';

export type { KindStrategy } from './kind-strategy.js';

const STRATEGIES: ReadonlyMap<string, KindStrategy> = new Map<string, KindStrategy>([
  ['Pod', new PodStrategy()],
  ['Service', new ServiceStrategy()],
  ['Deployment', new DeploymentStrategy()],
  ['ReplicaSet', new ReplicaSetStrategy()],
  ['DaemonSet', new DaemonSetStrategy()],
  ['Job', new JobStrategy()],
  ['Namespace', new NamespaceStrategy()],
  ['Node', new NodeStrategy()],
  ['ConfigMap', new ConfigMapStrategy()],
  ['Endpoints', new EndpointsStrategy()],
  ['EndpointSlice', new EndpointSliceStrategy()],
  ['Lease', new LeaseStrategy()],
  ['Event', new EventStrategy()],
  ['Secret', new SecretStrategy()],
  ['ServiceAccount', new ServiceAccountStrategy()],
  ['CertificateSigningRequest', new CertificateSigningRequestStrategy()],
  ['Role', new RoleStrategy(false)],
  ['ClusterRole', new RoleStrategy(true)],
  ['RoleBinding', new RoleBindingStrategy(false)],
  ['ClusterRoleBinding', new RoleBindingStrategy(true)],
]);

const genericStrategies = new Map<string, KindStrategy>();

/**
 * The strategy for a kind. Kinds without rules of their own get a generic one: metadata
 * validation (names are URL path segments), system metadata kept on update, nothing else.
 */
export function strategyFor(kind: string): KindStrategy {
  const known = STRATEGIES.get(kind);
  if (known) return known;
  let generic = genericStrategies.get(kind);
  if (!generic) {
    const namespaced = RESOURCES.find((descriptor) => descriptor.kind === kind)?.namespaced ?? true;
    generic = new GenericStrategy({ namespaced, nameValidator: nameIsPathSegment });
    genericStrategies.set(kind, generic);
  }
  return generic;
}

/** The name rule of a kind: DNS labels for Namespaces, RFC 1035 labels for Services. */
export function nameValidatorFor(kind: string | undefined): NameValidator {
  switch (kind) {
    case 'Namespace':
      return nameIsDnsLabel;
    case 'Service':
      return nameIsDns1035Label;
    case 'Role':
    case 'ClusterRole':
    case 'RoleBinding':
    case 'ClusterRoleBinding':
      return nameIsPathSegment;
    default:
      return kind === undefined || RESOURCES.some((descriptor) => descriptor.kind === kind) ? nameIsDnsSubdomain : nameIsPathSegment;
  }
}

/**
 * ObjectMeta checks: name (DNS-1123 subdomain, or the kind's rule when `kind` is given),
 * generateName, namespace present exactly when `namespaced`, labels, annotations (syntax and
 * the 256 KiB total), ownerReferences, finalizers. Already part of every strategy's validate.
 */
export function validateObjectMeta(meta: ObjectMeta, namespaced: boolean, kind?: string): FieldCause[] {
  return validateMeta(meta, namespaced, nameValidatorFor(kind));
}
