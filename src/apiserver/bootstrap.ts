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
  const options: WriteOptions = { dryRun: false, fieldValidation: 'Strict', warnings: [] };
  try {
    await registry.create(descriptor, namespace, object as Record<string, unknown>, options);
    log.info({ kind: descriptor.kind, object: object.metadata.name }, 'created');
  } catch (err) {
    if (!(err instanceof ApiStatusError && err.code === 409)) throw err;
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
