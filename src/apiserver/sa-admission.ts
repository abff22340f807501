/**
 * Upstream's ServiceAccount admission plugin, the part that applies without RBAC: a new pod
 * runs as `spec.serviceAccountName` (default "default"; the deprecated `spec.serviceAccount`
 * alias is read when the name is empty and then kept equal to it), and that ServiceAccount
 * must exist, or the pod is refused with 403 Forbidden
 * `pods "x" is forbidden: error looking up service account ns/sa: serviceaccount "sa" not found`.
 *
 * The `default` ServiceAccount is made by the controller-manager right after its namespace
 * appears, so a pod created in a just-made namespace may race it. Upstream looks it up
 * again up to 10 times, 100-200 ms apart, before refusing; so does this. Mirror pods (static
 * pods of a kubelet) are exempt, as upstream.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import { DEFAULT_SERVICE_ACCOUNT } from '../api/serviceaccount.js';
import { asObject } from './kinds/values.js';
import type { Registry } from './registry.js';
import { ApiStatusError, forbidden } from './status.js';

export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';
const DEFAULT_ACCOUNT_ATTEMPTS = 10;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class ServiceAccountAdmission {
  constructor(
    private readonly registry: Registry,
    private readonly retryIntervalMs = (): number => 100 + Math.floor(Math.random() * 100),
  ) {}

  /** The registry's beforeCreate step: pods are admitted, other kinds pass. */
  async admitCreate(descriptor: ResourceDescriptor, object: KubeObject): Promise<void> {
    if (descriptor === RESOURCE.pods) await this.admit(object);
  }

  /** Mutates the pod's service-account fields; throws 403 when the account does not exist. */
  async admit(pod: KubeObject): Promise<void> {
    if (pod.metadata.annotations?.[MIRROR_POD_ANNOTATION] !== undefined) return;
    const spec = asObject(pod['spec']);
    if (!spec) return;
    const alias = typeof spec['serviceAccount'] === 'string' ? spec['serviceAccount'] : '';
    let name = typeof spec['serviceAccountName'] === 'string' ? spec['serviceAccountName'] : '';
    if (name === '') name = alias || DEFAULT_SERVICE_ACCOUNT;
    spec['serviceAccountName'] = name;
    spec['serviceAccount'] = name;
    const namespace = pod.metadata.namespace ?? '';
    const attempts = name === DEFAULT_SERVICE_ACCOUNT ? DEFAULT_ACCOUNT_ATTEMPTS : 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(this.retryIntervalMs());
      try {
        await this.registry.get(RESOURCE.serviceaccounts, namespace, name);
        return;
      } catch (err) {
        if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
      }
    }
    // Upstream names the pod by generateName when the name is still to be generated.
    const podName = pod.metadata.generateName || pod.metadata.name || '';
    throw forbidden(
      `pods "${podName}" is forbidden: error looking up service account ${namespace}/${name}: serviceaccount "${name}" not found`,
      RESOURCE.pods,
      podName,
    );
  }
}
