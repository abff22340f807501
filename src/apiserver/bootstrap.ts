/**
 * What a fresh cluster has before anyone writes: the system namespaces and the
 * `default/kubernetes` Service on the first address of the service range (pods find the
 * apiserver there). Idempotent: existing objects are left as they are, so restarts and
 * several apiservers on one store are fine.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { Logger } from '../lib/log.js';
import { SYSTEM_NAMESPACES } from './namespaces.js';
import type { Registry, WriteOptions } from './registry.js';
import { ApiStatusError } from './status.js';

export interface BootstrapOptions {
  kubernetesServiceIP: string;
  /** The port the `kubernetes` Service forwards to (the apiserver's secure port). */
  apiserverPort: number;
}

async function ensure(registry: Registry, descriptor: ResourceDescriptor, namespace: string | undefined, object: KubeObject, log: Logger): Promise<void> {
  const name = object.metadata.name ?? '';
  const exists = async (): Promise<boolean> =>
    registry.get(descriptor, namespace, name).then(
      () => true,
      (err: unknown) => {
        if (err instanceof ApiStatusError && err.code === 404) return false;
        throw err;
      },
    );
  if (await exists()) return;
  const options: WriteOptions = { dryRun: false, fieldValidation: 'Strict', warnings: [] };
  try {
    await registry.create(descriptor, namespace, object as Record<string, unknown>, options);
    log.info({ kind: descriptor.kind, object: name }, 'created');
  } catch (err) {
    // Another apiserver on the same store may have won the race (409, or 422 for the IP).
    if (!(await exists())) throw err;
  }
}

export async function bootstrapCluster(registry: Registry, options: BootstrapOptions, log: Logger): Promise<void> {
  for (const name of SYSTEM_NAMESPACES) {
    await ensure(registry, RESOURCE.namespaces, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, log);
  }
  await ensure(
    registry,
    RESOURCE.services,
    'default',
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
      spec: {
        type: 'ClusterIP',
        clusterIP: options.kubernetesServiceIP,
        ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: options.apiserverPort }],
        sessionAffinity: 'None',
      },
    },
    log,
  );
}
