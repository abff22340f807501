/**
 * Adoption and release of dependents by selector (client-go's ControllerRefManager): an
 * owner (ReplicaSet, Deployment) controls the objects that carry its controller reference; it
 * adopts orphans its selector matches and releases the ones it controls that no longer match.
 * Writes are whole-object updates against the cached resourceVersion, so adopting an object
 * someone else just changed fails with 409 and the owner's sync is retried.
 */
import type { KubeObject, LabelSelector } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import { labelSelectorFromObject, matchesLabels, type LabelRequirement } from '../api/selectors.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import { controllerRef, controllerReferenceTo, isTerminating } from '../api/pods.js';

/**
 * An owner's selector as requirements, or undefined when it is invalid or empty: an empty
 * selector would claim every object in the namespace, and apps/v1 forbids it.
 */
export function ownerSelector(selector: LabelSelector | undefined): LabelRequirement[] | undefined {
  try {
    const requirements = labelSelectorFromObject(selector ?? {});
    return requirements.length > 0 ? requirements : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The key of the `ownerKind` object in `owners` that controls `dependent`, or undefined when
 * it has none or the cached owner of that name is another object (a different uid).
 */
export function controllerKey<T extends KubeObject>(dependent: KubeObject, ownerKind: string, owners: Informer<T>): string | undefined {
  const ref = controllerRef(dependent);
  if (!ref || ref.kind !== ownerKind) return undefined;
  const key = `${dependent.metadata.namespace}/${ref.name}`;
  return owners.get(key)?.metadata.uid === ref.uid ? key : undefined;
}

export interface ClaimRequest<T extends KubeObject> {
  api: KubeApi;
  log: Logger;
  owner: KubeObject;
  ownerApiVersion: string;
  ownerKind: string;
  selector: readonly LabelRequirement[];
  /** Objects in the owner's namespace. */
  candidates: readonly T[];
  resource: ResourceDescriptor;
}

/** The objects `owner` controls after adopting and releasing. */
export async function claim<T extends KubeObject>(request: ClaimRequest<T>): Promise<T[]> {
  const { api, owner, selector, resource } = request;
  const ownerUid = owner.metadata.uid;
  const claimed: T[] = [];
  for (const object of request.candidates) {
    const ref = controllerRef(object);
    const matches = matchesLabels(selector, object.metadata.labels);
    if (ref) {
      if (ref.uid !== ownerUid) continue; // someone else's
      if (matches || isTerminating(owner)) {
        claimed.push(object);
        continue;
      }
      const released = structuredClone(object);
      released.metadata.ownerReferences = (released.metadata.ownerReferences ?? []).filter((r) => r.uid !== ownerUid);
      await updateIgnoringNotFound(api, resource, released);
      request.log.info({ object: object.metadata.name, owner: owner.metadata.name }, `released ${resource.kind} that no longer matches`);
      continue;
    }
    if (!matches || isTerminating(owner) || isTerminating(object)) continue;
    const adopted = structuredClone(object);
    adopted.metadata.ownerReferences = [
      ...(adopted.metadata.ownerReferences ?? []),
      controllerReferenceTo(owner, request.ownerApiVersion, request.ownerKind),
    ];
    const written = await updateIgnoringNotFound(api, resource, adopted);
    if (written) {
      request.log.info({ object: object.metadata.name, owner: owner.metadata.name }, `adopted orphan ${resource.kind}`);
      claimed.push(written);
    }
  }
  return claimed;
}

async function updateIgnoringNotFound<T extends KubeObject>(api: KubeApi, resource: ResourceDescriptor, object: T): Promise<T | undefined> {
  try {
    return await api.update(resource, object);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
