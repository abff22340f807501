/**
 * The `default/kubernetes` Service's endpoints, written by the apiserver itself (upstream's
 * EndpointReconciler): the Service has no selector, so no controller fills them, and without
 * them a pod's 10.96.0.1:443 goes nowhere. Both an Endpoints and an EndpointSlice, since the
 * proxy reads slices and older clients read Endpoints. The address is the apiserver's
 * `--advertise-address` — one pods can reach over the fabric, never 127.0.0.1.
 *
 * Run once at start (a lab has one apiserver; upstream's lease-based multi-apiserver
 * reconciler is not needed): create when missing, replace when the address or port changed.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { Logger } from '../lib/log.js';
import type { Registry, WriteOptions } from './registry.js';
import { ApiStatusError } from './status.js';

export interface AdvertisedEndpoint {
  address: string;
  port: number;
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export function kubernetesEndpoints(endpoint: AdvertisedEndpoint): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
    subsets: [{ addresses: [{ ip: endpoint.address }], ports: [{ name: 'https', port: endpoint.port, protocol: 'TCP' }] }],
  } as KubeObject;
}

export function kubernetesEndpointSlice(endpoint: AdvertisedEndpoint): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { [SERVICE_NAME_LABEL]: 'kubernetes' } },
    addressType: endpoint.address.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: [{ addresses: [endpoint.address], conditions: { ready: true, serving: true, terminating: false } }],
    ports: [{ name: 'https', port: endpoint.port, protocol: 'TCP' }],
  } as KubeObject;
}

/** The parts that matter; metadata the store adds (uid, resourceVersion) is left out. */
function content(object: KubeObject): string {
  const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = object as KubeObject & Record<string, unknown>;
  return JSON.stringify(rest);
}

async function ensureExactly(registry: Registry, descriptor: ResourceDescriptor, desired: KubeObject, log: Logger): Promise<void> {
  const options: WriteOptions = { dryRun: false, fieldValidation: 'Strict', warnings: [] };
  const name = desired.metadata.name ?? '';
  let current: KubeObject | undefined;
  try {
    current = await registry.get(descriptor, 'default', name);
  } catch (err) {
    if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
  }
  if (!current) {
    await registry.create(descriptor, 'default', desired as Record<string, unknown>, options);
    log.info({ kind: descriptor.kind, object: name }, 'created');
    return;
  }
  if (content(current) === content(desired)) return;
  const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata.resourceVersion } };
  await registry.update(descriptor, 'default', name, body as Record<string, unknown>, options);
  log.info({ kind: descriptor.kind, object: name }, 'updated to the advertised address');
}

export async function reconcileKubernetesEndpoints(registry: Registry, endpoint: AdvertisedEndpoint, log: Logger): Promise<void> {
  await ensureExactly(registry, RESOURCE.endpoints, kubernetesEndpoints(endpoint), log);
  await ensureExactly(registry, RESOURCE.endpointslices, kubernetesEndpointSlice(endpoint), log);
}
