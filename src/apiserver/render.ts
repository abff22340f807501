/**
 * The shapes an answer can take, chosen by the Accept header: the object or list itself, a
 * meta.k8s.io Table (what `kubectl get` prints from), or PartialObjectMetadata (metadata-only
 * clients).
 */
import type { KubeList, KubeObject } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import type { IncludeObjectPolicy } from '../api/table.js';
import type { ResponseShape } from './http.js';
import { badRequest } from './status.js';
import { toTable } from './tables.js';

export function parseIncludeObject(value: string | undefined): IncludeObjectPolicy {
  if (value === undefined || value === '') return 'Metadata';
  if (value === 'None' || value === 'Object' || value === 'Metadata') return value;
  throw badRequest(`includeObject: Unsupported value: "${value}": supported values: "Metadata", "None", "Object"`);
}

function partial(object: KubeObject): KubeObject {
  return { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: object.metadata };
}

export function renderObject(descriptor: ResourceDescriptor, object: KubeObject, shape: ResponseShape, includeObject: IncludeObjectPolicy): unknown {
  switch (shape) {
    case 'table':
      return toTable(descriptor, [object], { includeObject, listMeta: { resourceVersion: object.metadata.resourceVersion ?? '' } });
    case 'partialMetadata':
      return partial(object);
    default:
      return object;
  }
}

export function renderList(descriptor: ResourceDescriptor, list: KubeList, shape: ResponseShape, includeObject: IncludeObjectPolicy): unknown {
  switch (shape) {
    case 'table':
      return toTable(descriptor, list.items, { includeObject, listMeta: list.metadata });
    case 'partialMetadata':
      return { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadataList', metadata: list.metadata, items: list.items.map(partial) };
    default:
      return list;
  }
}
