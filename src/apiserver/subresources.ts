/**
 * The subresources that are not the object itself: `pods/<name>/binding` (the scheduler's one
 * write: set spec.nodeName once) and `<deployments|replicasets>/<name>/scale` (an
 * autoscaling/v1 Scale view of spec.replicas). Both write through the registry's
 * read-modify-write, bypassing the kind's update rules on purpose: a pod's spec is immutable
 * to clients, but binding is how the server itself fills in spec.nodeName.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import type { Deployment, Pod, PodCondition, Scale } from '../api/types.js';
import { formatLabelSelector, SelectorParseError } from '../api/selectors.js';
import { strategyFor } from './kinds/strategy.js';
import { applyPatch, PATCH_CONTENT_TYPES, patchMediaType, PatchError, UnsupportedPatchTypeError } from './patch.js';
import { timestamp, type Registry, type WriteOptions } from './registry.js';
import { badRequest, conflict, invalid, unsupportedMediaType } from './status.js';

const SCALE_KIND = { group: 'autoscaling', kind: 'Scale' };

// ---- binding ----------------------------------------------------------------------------------

export async function bindPod(registry: Registry, namespace: string, name: string, body: Record<string, unknown>, options: WriteOptions): Promise<void> {
  if (body['kind'] !== undefined && body['kind'] !== 'Binding') {
    throw badRequest(`the kind in the data (${String(body['kind'])}) does not match the expected kind (Binding)`);
  }
  const meta = (body['metadata'] ?? {}) as { name?: unknown; namespace?: unknown };
  if (meta.name !== undefined && meta.name !== name) {
    throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
  }
  if (meta.namespace !== undefined && meta.namespace !== namespace) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }
  const target = (body['target'] ?? {}) as { name?: unknown; kind?: unknown };
  if (typeof target.name !== 'string' || target.name === '') {
    throw invalid({ group: '', kind: 'Binding' }, name, [{ reason: 'FieldValueRequired', field: 'target.name', message: 'Required value' }]);
  }
  if (target.kind !== undefined && target.kind !== '' && target.kind !== 'Node') {
    throw invalid({ group: '', kind: 'Binding' }, name, [
      { reason: 'FieldValueNotSupported', field: 'target.kind', message: `Unsupported value: "${String(target.kind)}": supported values: "Node"` },
    ]);
  }
  const nodeName = target.name;
  await registry.guaranteedUpdate(RESOURCE.pods, namespace, name, options, (current) => {
    const pod = structuredClone(current.object) as Pod;
    if (pod.metadata.deletionTimestamp) throw conflict(RESOURCE.pods, name, `pod ${name} is being deleted, cannot be assigned to a host`);
    if (pod.spec.nodeName) throw conflict(RESOURCE.pods, name, `pod ${name} is already assigned to node "${pod.spec.nodeName}"`);
    pod.spec.nodeName = nodeName;
    const status = (pod.status ??= {});
    const scheduled: PodCondition = { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: timestamp(new Date()) };
    status.conditions = [...(status.conditions ?? []).filter((c) => c.type !== 'PodScheduled'), scheduled];
    return pod;
  });
}

// ---- scale ------------------------------------------------------------------------------------

export function isScalable(descriptor: ResourceDescriptor): boolean {
  return descriptor === RESOURCE.deployments || descriptor === RESOURCE.replicasets;
}

export function scaleOf(object: KubeObject): Scale {
  const workload = object as Deployment;
  let selector = '';
  try {
    selector = workload.spec?.selector ? formatLabelSelector(workload.spec.selector) : '';
  } catch (err) {
    if (!(err instanceof SelectorParseError)) throw err;
  }
  const meta = object.metadata;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: meta.name ?? '',
      ...(meta.namespace ? { namespace: meta.namespace } : {}),
      ...(meta.uid ? { uid: meta.uid } : {}),
      ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
      ...(meta.creationTimestamp ? { creationTimestamp: meta.creationTimestamp } : {}),
    },
    spec: { replicas: workload.spec?.replicas ?? 1 },
    status: { replicas: workload.status?.replicas ?? 0, selector },
  };
}

export async function getScale(registry: Registry, descriptor: ResourceDescriptor, namespace: string | undefined, name: string): Promise<Scale> {
  return scaleOf(await registry.get(descriptor, namespace, name));
}

/** PUT (a whole Scale) or PATCH (a patch to the current Scale) of spec.replicas. */
export async function writeScale(
  registry: Registry,
  descriptor: ResourceDescriptor,
  namespace: string | undefined,
  name: string,
  change: { put: Record<string, unknown> } | { patch: unknown; contentType: string },
  options: WriteOptions,
): Promise<Scale> {
  if ('contentType' in change) {
    const type = patchMediaType(change.contentType);
    if (!PATCH_CONTENT_TYPES.includes(type)) throw unsupportedMediaType(type, PATCH_CONTENT_TYPES);
  } else {
    checkScaleBody(change.put, name);
  }
  const updated = await registry.guaranteedUpdate(descriptor, namespace, name, options, (current) => {
    const scale = scaleOf(current.object);
    let wanted: Record<string, unknown>;
    if ('contentType' in change) {
      try {
        wanted = applyPatch(change.contentType, structuredClone(scale), change.patch, 'Scale');
      } catch (err) {
        if (err instanceof UnsupportedPatchTypeError) throw unsupportedMediaType(change.contentType, PATCH_CONTENT_TYPES);
        if (err instanceof PatchError) throw badRequest(err.message);
        throw err;
      }
    } else {
      wanted = change.put;
    }
    const sentVersion = (wanted['metadata'] as { resourceVersion?: unknown } | undefined)?.resourceVersion;
    if (typeof sentVersion === 'string' && sentVersion !== '' && sentVersion !== String(current.resourceVersion)) {
      throw conflict(descriptor, name);
    }
    const replicas = (wanted['spec'] as { replicas?: unknown } | undefined)?.replicas ?? 0;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw invalid(SCALE_KIND, name, [
        { reason: 'FieldValueInvalid', field: 'spec.replicas', message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0` },
      ]);
    }
    const next = structuredClone(current.object) as Deployment;
    next.spec = { ...next.spec, replicas };
    strategyFor(descriptor.kind).prepareForUpdate(next, current.object);
    return next;
  });
  return scaleOf(updated);
}

function checkScaleBody(body: Record<string, unknown>, name: string): void {
  if (body['kind'] !== undefined && body['kind'] !== 'Scale') {
    throw badRequest(`the kind in the data (${String(body['kind'])}) does not match the expected kind (Scale)`);
  }
  if (body['apiVersion'] !== undefined && body['apiVersion'] !== 'autoscaling/v1') {
    throw badRequest(`the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (autoscaling/v1)`);
  }
  const meta = (body['metadata'] ?? {}) as { name?: unknown };
  if (meta.name !== undefined && meta.name !== name) {
    throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
  }
}
