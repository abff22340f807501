/**
 * Kubernetes strategic merge patch (`application/strategic-merge-patch+json`), the format
 * `kubectl apply` sends on every apply after the first.
 *
 * Design notes:
 * - It is JSON merge patch plus per-field list strategies. Upstream reads them from Go struct
 *   tags (`patchStrategy:"merge" patchMergeKey:"name"`); we keep a small table of the fields
 *   of the kinds we serve (`SCHEMAS` below). Any list not in the table is replaced whole,
 *   any map is merged, so an unknown kind behaves like a merge patch (plus directives).
 * - Merge lists of objects pair elements by their merge key and merge each pair; merge lists
 *   of scalars take the union. Ordering follows upstream: elements named in the patch keep the
 *   patch's order, elements only the server has keep their server positions, and
 *   `$setElementOrder/<list>` (which kubectl always sends) fixes the final order.
 * - Directives: `$patch: replace|delete|merge` on a map or as a list element,
 *   `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`, `$retainKeys`. `null`
 *   deletes a field. Directives never reach the stored object.
 * - Differences from upstream, on purpose: `$patch: merge` is accepted as "the default"
 *   rather than rejected, and a `$patch: replace` map whose field did not exist yet is kept
 *   (upstream drops it).
 * - Inputs are never mutated; the result shares nothing with the target or the patch.
 */
import type { KubeObject } from '../api/meta.js';
import { cloneJson, hasOwn, isJsonObject, setOwn, type JsonObject } from './json-value.js';
import { PatchError } from './patch-error.js';

/** Patch metadata of one field: how a list merges, and the fields of the map (or list element). */
export interface PatchMeta {
  /** Present for lists merged rather than replaced; `key` names the merge key of object lists. */
  readonly merge?: { readonly key?: string };
  readonly fields?: Readonly<Record<string, PatchMeta>>;
}

const struct = (fields: Record<string, PatchMeta>): PatchMeta => ({ fields });
const mergeBy = (key: string, element?: PatchMeta): PatchMeta => ({ merge: { key }, fields: element?.fields });
const mergeScalars: PatchMeta = { merge: {} };

// Field strategies as declared in k8s.io/api (core/v1, apps/v1) for the kinds Pontoon serves.
const objectMeta = struct({ ownerReferences: mergeBy('uid'), finalizers: mergeScalars });
const container = struct({
  ports: mergeBy('containerPort'),
  env: mergeBy('name'),
  volumeMounts: mergeBy('mountPath'),
  volumeDevices: mergeBy('devicePath'),
});
const podSpec = struct({
  containers: mergeBy('name', container),
  initContainers: mergeBy('name', container),
  ephemeralContainers: mergeBy('name', container),
  volumes: mergeBy('name'),
  imagePullSecrets: mergeBy('name'),
  hostAliases: mergeBy('ip'),
  topologySpreadConstraints: mergeBy('topologyKey'),
  schedulingGates: mergeBy('name'),
  resourceClaims: mergeBy('name'),
});
const podTemplateSpec = struct({ metadata: objectMeta, spec: podSpec });
const conditionsStatus = struct({ conditions: mergeBy('type') });
const podController = struct({ metadata: objectMeta, spec: struct({ template: podTemplateSpec }), status: conditionsStatus });

const SCHEMAS: Readonly<Record<string, PatchMeta>> = {
  Pod: struct({
    metadata: objectMeta,
    spec: podSpec,
    status: struct({ conditions: mergeBy('type'), podIPs: mergeBy('ip'), hostIPs: mergeBy('ip') }),
  }),
  PodTemplate: struct({ metadata: objectMeta, template: podTemplateSpec }),
  Deployment: podController,
  ReplicaSet: podController,
  DaemonSet: podController,
  Job: podController,
  Service: struct({ metadata: objectMeta, spec: struct({ ports: mergeBy('port') }), status: conditionsStatus }),
  Node: struct({
    metadata: objectMeta,
    spec: struct({ podCIDRs: mergeScalars }),
    status: struct({ conditions: mergeBy('type'), addresses: mergeBy('type') }),
  }),
  Namespace: struct({ metadata: objectMeta, status: conditionsStatus }),
};

/** Every object has ObjectMeta; everything else of an unknown kind merges maps, replaces lists. */
const FALLBACK: PatchMeta = struct({ metadata: objectMeta });

/** The patch metadata used for `kind`. */
export function strategicPatchMeta(kind: string): PatchMeta {
  return SCHEMAS[kind] ?? FALLBACK;
}

const PATCH = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ELEMENT_ORDER = '$setElementOrder/';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList/';

function malformed(message: string): PatchError {
  return new PatchError('malformed', `invalid strategic merge patch: ${message}`);
}

const child = (meta: PatchMeta | undefined, key: string): PatchMeta | undefined =>
  meta?.fields && hasOwn(meta.fields as JsonObject, key) ? meta.fields[key] : undefined;

const isDirectiveKey = (key: string): boolean =>
  key === PATCH || key === RETAIN_KEYS || key.startsWith(SET_ELEMENT_ORDER) || key.startsWith(DELETE_FROM_PRIMITIVE_LIST);

/** Marks a value that must not be stored (a `$patch: delete` with nothing to delete). */
const DROP = Symbol('drop');

function directiveOf(map: JsonObject): 'replace' | 'delete' | 'merge' | undefined {
  if (!hasOwn(map, PATCH)) return undefined;
  const directive = map[PATCH];
  if (directive === 'replace' || directive === 'delete' || directive === 'merge') return directive;
  throw malformed(`unknown $patch directive ${JSON.stringify(directive)}`);
}

function withoutPatchDirective(map: JsonObject): JsonObject {
  const copy: JsonObject = {};
  for (const [key, value] of Object.entries(map)) if (key !== PATCH) setOwn(copy, key, value);
  return copy;
}

/** A patch value for a field the target lacks: directives resolved, nulls dropped, copied. */
function materialize(value: unknown, meta: PatchMeta | undefined): unknown {
  if (Array.isArray(value)) return mergeList([], value, meta);
  if (isJsonObject(value)) return directiveOf(value) === 'delete' ? DROP : mergeMap({}, value, meta);
  return value;
}

function mergeMap(original: JsonObject, patch: JsonObject, meta: PatchMeta | undefined): JsonObject {
  switch (directiveOf(patch)) {
    case 'replace':
      return mergeMap({}, withoutPatchDirective(patch), meta);
    case 'delete':
      return {};
    default:
      break;
  }
  const result: JsonObject = {};
  for (const [key, value] of Object.entries(original)) setOwn(result, key, value);

  if (hasOwn(patch, RETAIN_KEYS)) applyRetainKeys(result, patch);

  // Lists named by $setElementOrder are merged and ordered here, then skipped below.
  const ordered = new Set<string>();
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith(SET_ELEMENT_ORDER)) continue;
    const name = key.slice(SET_ELEMENT_ORDER.length);
    if (name === '' || !Array.isArray(order)) throw malformed(`${key} must name a list and hold a list`);
    const listMeta = child(meta, name);
    if (!listMeta?.merge) continue; // replaced lists take the patch's order anyway
    const current = hasOwn(result, name) && Array.isArray(result[name]) ? (result[name] as unknown[]) : undefined;
    const patchList = hasOwn(patch, name) ? patch[name] : undefined;
    if (patchList === null) continue; // an explicit delete wins; the loop below removes it
    if (patchList !== undefined && !Array.isArray(patchList)) throw malformed(`${name} must be a list`);
    let merged: unknown[];
    if (current && patchList) merged = mergeList(current, patchList, listMeta);
    else if (patchList) merged = mergeList([], patchList, listMeta);
    else if (current) merged = current;
    else continue;
    setOwn(result, name, orderElements(merged, order, current ?? [], keyOf(listMeta)));
    ordered.add(name);
  }

  for (const [key, value] of Object.entries(patch)) {
    if (isDirectiveKey(key) || ordered.has(key)) continue;
    if (value === null) {
      delete result[key];
      continue;
    }
    const current = hasOwn(result, key) ? result[key] : undefined;
    const fieldMeta = child(meta, key);
    let merged: unknown;
    if (isJsonObject(current) && isJsonObject(value)) merged = mergeMap(current, value, fieldMeta);
    else if (Array.isArray(current) && Array.isArray(value)) merged = mergeList(current, value, fieldMeta);
    else merged = materialize(value, fieldMeta);
    if (merged === DROP) delete result[key];
    else setOwn(result, key, merged);
  }

  // Deletions from scalar lists come last so an addition in the same patch cannot undo them.
  for (const [key, values] of Object.entries(patch)) {
    if (!key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) continue;
    const name = key.slice(DELETE_FROM_PRIMITIVE_LIST.length);
    if (name === '' || !Array.isArray(values)) throw malformed(`${key} must name a list and hold a list`);
    const current = hasOwn(result, name) ? result[name] : undefined;
    if (Array.isArray(current)) setOwn(result, name, current.filter((item) => !values.some((gone) => gone === item)));
  }
  return result;
}

/** `$retainKeys`: keys of the map not listed are cleared (used for union types like strategy). */
function applyRetainKeys(result: JsonObject, patch: JsonObject): void {
  const retain = patch[RETAIN_KEYS];
  if (!Array.isArray(retain) || retain.some((key) => typeof key !== 'string')) {
    throw malformed('$retainKeys must be a list of strings');
  }
  const keep = new Set(retain as string[]);
  for (const [key, value] of Object.entries(patch)) {
    if (value !== null && !isDirectiveKey(key) && !keep.has(key)) {
      throw malformed(`field ${JSON.stringify(key)} is set but not listed in $retainKeys`);
    }
  }
  for (const key of Object.keys(result)) if (!keep.has(key)) delete result[key];
}

/** Identity of a list element for ordering and matching: its merge key, or itself for scalars. */
type KeyOf = (item: unknown) => unknown;
const NO_KEY = Symbol('no-key');

function keyOf(meta: PatchMeta): KeyOf {
  const mergeKey = meta.merge?.key;
  if (mergeKey === undefined) return (item) => item;
  return (item) => (isJsonObject(item) && hasOwn(item, mergeKey) ? item[mergeKey] : NO_KEY);
}

function indexByKey(list: readonly unknown[], item: unknown, key: KeyOf): number {
  const wanted = key(item);
  if (wanted === NO_KEY) return -1;
  return list.findIndex((candidate) => key(candidate) === wanted);
}

function mergeList(original: readonly unknown[], patch: readonly unknown[], meta: PatchMeta | undefined): unknown[] {
  const special: JsonObject[] = [];
  const plain: unknown[] = [];
  for (const item of patch) {
    if (isJsonObject(item) && hasOwn(item, PATCH)) special.push(item);
    else plain.push(item);
  }
  const replaceAll = special.some((item) => directiveOf(item) === 'replace');
  if (!meta?.merge || replaceAll) {
    const replaced: unknown[] = [];
    for (const item of plain) {
      const value = materialize(item, meta);
      if (value !== DROP) replaced.push(value);
    }
    return replaced;
  }

  const mergeKey = meta.merge.key;
  const key = keyOf(meta);
  if (mergeKey === undefined) {
    if (plain.some((item) => isJsonObject(item) || Array.isArray(item))) {
      throw malformed('cannot merge lists of objects without a merge key');
    }
    const union: unknown[] = [];
    for (const item of [...original, ...plain]) if (!union.includes(item)) union.push(cloneJson(item));
    return orderElements(union, plain, original, key);
  }

  // `{"$patch": "delete", "<key>": v}` removes every element with that key value.
  let base = [...original];
  for (const item of special) {
    if (directiveOf(item) !== 'delete') continue;
    if (!hasOwn(item, mergeKey)) throw malformed(`$patch: delete element has no merge key ${JSON.stringify(mergeKey)}`);
    base = base.filter((element) => key(element) !== item[mergeKey]);
  }
  const merged = [...base];
  for (const item of plain) {
    if (!isJsonObject(item) || !hasOwn(item, mergeKey)) {
      throw malformed(`list element ${JSON.stringify(item)} does not contain declared merge key ${JSON.stringify(mergeKey)}`);
    }
    const index = indexByKey(merged, item, key);
    const existing = index >= 0 ? merged[index] : undefined;
    if (isJsonObject(existing)) merged[index] = mergeMap(existing, item, meta);
    else merged.push(mergeMap({}, item, meta));
  }
  return orderElements(merged, plain, base, key);
}

/**
 * Upstream's ordering: elements named in `patchOrder` follow it; the others keep their
 * relative server order; the two runs are interleaved by server position, and where an
 * element has no server position (it is new) the patch's element goes first.
 */
function orderElements(merged: readonly unknown[], patchOrder: readonly unknown[], serverOrder: readonly unknown[], key: KeyOf): unknown[] {
  const byIndexIn = (list: readonly unknown[]) => {
    const rank = (item: unknown): number => {
      const index = indexByKey(list, item, key);
      return index < 0 ? Number.MAX_SAFE_INTEGER : index;
    };
    return (a: unknown, b: unknown): number => rank(a) - rank(b);
  };
  const fromPatch = merged.filter((item) => indexByKey(patchOrder, item, key) >= 0).sort(byIndexIn(patchOrder));
  const serverOnly = merged.filter((item) => indexByKey(patchOrder, item, key) < 0).sort(byIndexIn(serverOrder));
  const result: unknown[] = [];
  let s = 0;
  let p = 0;
  while (s < serverOnly.length || p < fromPatch.length) {
    if (p >= fromPatch.length) {
      result.push(serverOnly[s++]);
    } else if (s >= serverOnly.length) {
      result.push(fromPatch[p++]);
    } else {
      const serverIndex = indexByKey(serverOrder, serverOnly[s], key);
      const patchIndex = indexByKey(serverOrder, fromPatch[p], key);
      if (serverIndex >= 0 && patchIndex >= 0 && serverIndex < patchIndex) result.push(serverOnly[s++]);
      else result.push(fromPatch[p++]);
    }
  }
  return result;
}

/**
 * Applies a strategic merge patch to `target` using the field strategies of `kind`. Throws
 * PatchError('malformed') for a patch that is not an object or misuses a directive. The
 * result's `metadata` is always an object; restoring identity fields (name, uid,
 * resourceVersion) a patch may have changed is the caller's business.
 */
export function applyStrategicMergePatch(target: KubeObject, patch: unknown, kind: string): KubeObject {
  if (!isJsonObject(patch)) throw malformed('the patch must be a JSON object');
  const result = mergeMap(cloneJson(target) as JsonObject, patch, strategicPatchMeta(kind));
  if (!isJsonObject(result['metadata'])) result['metadata'] = {};
  return result as KubeObject;
}
