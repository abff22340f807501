/**
 * `labelSelector` and `fieldSelector` query parameters as one predicate over stored objects,
 * shared by list, watch and deletecollection. Malformed or unsupported selectors are the
 * client's fault: 400 BadRequest, checked before anything is read.
 */
import type { KubeObject } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorParseError,
  type FieldRequirement,
  type LabelRequirement,
} from '../api/selectors.js';
import { checkFieldSelector, selectableFields } from './fields.js';
import { badRequest } from './status.js';

export interface Selection {
  /** True when the object passes both selectors. */
  matches(object: KubeObject): boolean;
  /** No selector at all: every object passes (lets list report remainingItemCount). */
  readonly everything: boolean;
}

export function parseSelection(descriptor: ResourceDescriptor, labelSelector: string | undefined, fieldSelector: string | undefined): Selection {
  let labels: LabelRequirement[];
  let fields: FieldRequirement[];
  try {
    labels = parseLabelSelector(labelSelector ?? '');
    fields = parseFieldSelector(fieldSelector ?? '');
    checkFieldSelector(descriptor.kind, fields);
  } catch (err) {
    if (err instanceof SelectorParseError) throw badRequest(err.message);
    throw err;
  }
  return {
    everything: labels.length === 0 && fields.length === 0,
    matches: (object) =>
      matchesLabels(labels, object.metadata.labels) && (fields.length === 0 || matchesFields(fields, selectableFields(descriptor.kind, object))),
  };
}
