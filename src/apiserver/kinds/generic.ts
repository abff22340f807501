/**
 * What every kind's strategy shares: upstream's rest.BeforeCreate/BeforeUpdate bookkeeping
 * (system metadata an update cannot change, generation, status kept out of spec updates and
 * spec kept out of status updates) around per-kind hooks.
 */
import type { KubeObject } from '../../api/meta.js';
import type { KindStrategy } from './kind-strategy.js';
import type { FieldCause } from './field.js';
import { validateMeta, validateMetaUpdate } from './meta.js';
import { nameIsDnsSubdomain, type NameValidator } from './names.js';
import { jsonEqual } from './values.js';

export interface KindRules {
  namespaced: boolean;
  /** The rule for metadata.name (and generateName). */
  nameValidator?: NameValidator;
  /** The kind has a `status` subresource: main updates keep the stored status. */
  hasStatus?: boolean;
  /** The kind counts spec changes in metadata.generation (set to 1 on create). */
  tracksGeneration?: boolean;
}

export class GenericStrategy implements KindStrategy {
  protected readonly nameValidator: NameValidator;

  constructor(protected readonly rules: KindRules) {
    this.nameValidator = rules.nameValidator ?? nameIsDnsSubdomain;
  }

  applyDefaults(_object: KubeObject): void {}

  validate(object: KubeObject): FieldCause[] {
    return [...validateMeta(object.metadata, this.rules.namespaced, this.nameValidator), ...this.validateBody(object)];
  }

  validateUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    return [...validateMetaUpdate(object.metadata, old.metadata), ...this.validateBodyUpdate(object, old)];
  }

  prepareForCreate(object: KubeObject): void {
    // Deletion is the server's to start; a client cannot create an object already deleting.
    delete object.metadata.deletionTimestamp;
    delete object.metadata.deletionGracePeriodSeconds;
    if (this.rules.tracksGeneration) object.metadata.generation = 1;
    if (this.rules.hasStatus) {
      const status = this.initialStatus(object);
      if (status === undefined) delete object['status'];
      else object['status'] = status;
    }
  }

  prepareForUpdate(object: KubeObject, old: KubeObject): void {
    const meta = object.metadata;
    const oldMeta = old.metadata;
    if (!meta.uid && oldMeta.uid) meta.uid = oldMeta.uid;
    if (oldMeta.creationTimestamp) meta.creationTimestamp = oldMeta.creationTimestamp;
    if (oldMeta.deletionTimestamp) meta.deletionTimestamp = oldMeta.deletionTimestamp;
    if (oldMeta.deletionGracePeriodSeconds !== undefined && meta.deletionGracePeriodSeconds === undefined) {
      meta.deletionGracePeriodSeconds = oldMeta.deletionGracePeriodSeconds;
    }
    if (this.rules.hasStatus) copyField(object, old, 'status');
    // Clients never set generation; it moves only when the server sees the spec change.
    if (oldMeta.generation === undefined) delete meta.generation;
    else meta.generation = oldMeta.generation;
    if (this.rules.tracksGeneration && this.generationChanged(object, old)) meta.generation = (oldMeta.generation ?? 0) + 1;
  }

  prepareForStatusUpdate(object: KubeObject, old: KubeObject): void {
    const resourceVersion = object.metadata.resourceVersion;
    for (const key of Object.keys(object)) if (key !== 'status') delete object[key];
    for (const [key, value] of Object.entries(old)) if (key !== 'status') object[key] = structuredClone(value);
    // The client's resourceVersion stays: it is the precondition the store checks.
    if (resourceVersion === undefined) delete object.metadata.resourceVersion;
    else object.metadata.resourceVersion = resourceVersion;
  }

  /** Kind-specific checks on one object, beyond its metadata. */
  protected validateBody(_object: KubeObject): FieldCause[] {
    return [];
  }

  /** Kind-specific update checks (immutable fields). */
  protected validateBodyUpdate(_object: KubeObject, _old: KubeObject): FieldCause[] {
    return [];
  }

  /** The status a new object starts with (kinds with a status subresource). */
  protected initialStatus(object: KubeObject): unknown {
    return object['status'];
  }

  /** Whether an update moves metadata.generation: by default, any change of spec. */
  protected generationChanged(object: KubeObject, old: KubeObject): boolean {
    return !jsonEqual(object['spec'], old['spec']);
  }
}

/** `object[key] = copy of old[key]`, or no key when old has none. */
export function copyField(object: KubeObject, old: KubeObject, key: string): void {
  if (old[key] === undefined) delete object[key];
  else object[key] = structuredClone(old[key]);
}
