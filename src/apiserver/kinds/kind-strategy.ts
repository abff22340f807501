/**
 * The interface every kind's strategy implements (the call order is in strategy.ts). Kept
 * apart from the table of strategies so a kind's file depends on this contract only, never
 * on the table that lists it.
 */
import type { KubeObject } from '../../api/meta.js';
import type { FieldCause } from './field.js';

export interface KindStrategy {
  /** Defaults applied on create (and to the new object on update): mutate in place. */
  applyDefaults(object: KubeObject): void;
  /**
   * Field errors as StatusCause { reason: 'FieldValueRequired'|'FieldValueInvalid'|
   * 'FieldValueNotSupported'|'FieldValueDuplicate'|'FieldValueTooLong'|'FieldValueTooMany'|
   * 'FieldValueForbidden', message, field }; metadata included.
   */
  validate(object: KubeObject): FieldCause[];
  /** Extra checks on update, e.g. immutable fields. */
  validateUpdate(object: KubeObject, old: KubeObject): FieldCause[];
  /** Called on update of the main resource (not status): keeps status from old, bumps metadata.generation when spec changed. */
  prepareForUpdate(object: KubeObject, old: KubeObject): void;
  /** Called on update of the status subresource: keeps everything but status from old. */
  prepareForStatusUpdate(object: KubeObject, old: KubeObject): void;
  /** Called on update of the approval subresource (CertificateSigningRequest only): keeps everything but the approval conditions from old. */
  prepareForApprovalUpdate?(object: KubeObject, old: KubeObject): void;
  /** Called on create: clears status where the API does (pods get phase Pending and qosClass), sets generation 1. */
  prepareForCreate(object: KubeObject): void;

  // Deletion, for kinds that do not simply go (the registry's defaults: removed at once
  // unless finalizers hold it, answered with a Status).
  /** Why this object may never be deleted (answered 403 Forbidden with this message). */
  deletionRefusal?(object: KubeObject): string | undefined;
  /** Once, when deletion starts (the object is not marked yet): add finalizers, set a phase. */
  prepareForDeletion?(object: KubeObject): void;
  /** How long the deleted object stays (pods on a node: their grace period); `requested` is DeleteOptions.gracePeriodSeconds. */
  deletionGracePeriodSeconds?(object: KubeObject, requested: number | undefined): number;
  /** DELETE answers with the object even once it is removed, as upstream does for pods. */
  readonly deleteAnswersWithObject?: boolean;
}
