/**
 * PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), Kubernetes strategic
 * merge patch, and server-side apply, chosen by Content-Type as the apiserver does.
 *
 * Design notes:
 * - Every function is pure: the target and the patch are never mutated and the result shares
 *   no objects with either, so the caller may stamp resourceVersion on it freely.
 * - Server-side apply (`application/apply-patch+yaml`) is simplified: there are no
 *   managedFields and no field ownership, so the applied intent is strategic-merged onto the
 *   live object. Consequences: conflicts between managers are never reported, and a field
 *   dropped from the applied manifest is left in place (upstream would remove it when the
 *   applier owned it). kubectl sends the intent as JSON, which is also valid YAML; a string
 *   body is parsed as JSON only.
 */
import jsonPatch from 'fast-json-patch';
import type { KubeObject } from '../api/meta.js';
import { cloneJson, hasOwn, isJsonObject, setOwn, type JsonObject } from './json-value.js';
import { PatchError, UnsupportedPatchTypeError } from './patch-error.js';
import { applyStrategicMergePatch } from './strategic-merge.js';

export { PatchError, UnsupportedPatchTypeError } from './patch-error.js';
export { applyStrategicMergePatch, strategicPatchMeta, type PatchMeta } from './strategic-merge.js';

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

/** The patch media types the apiserver accepts, in the order upstream lists them. */
export const PATCH_CONTENT_TYPES: readonly string[] = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH];

// ---- RFC 7386 -------------------------------------------------------------------------------

/** RFC 7386 section 2: objects merge recursively, null removes, anything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return cloneJson(patch);
  const result: JsonObject = isJsonObject(target) ? cloneJson(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setOwn(result, key, applyMergePatch(hasOwn(result, key) ? result[key] : undefined, value));
  }
  return result;
}

// ---- RFC 6902 -------------------------------------------------------------------------------

type Operation = jsonPatch.Operation;

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** RFC 6901: "" or "/"-separated tokens where "~" only appears as "~0" or "~1". */
function isPointer(value: unknown): value is string {
  return typeof value === 'string' && (value === '' || (value.startsWith('/') && !/~(?![01])/.test(value)));
}

function malformedOp(index: number, message: string): PatchError {
  return new PatchError('malformed', `invalid JSON patch: operation ${index}: ${message}`);
}

/**
 * Checks the shape of every operation before any is applied (RFC 6902 section 4), so a bad
 * document is a 400 whatever the target holds; fast-json-patch's own validation also accepts
 * its private `_get` op and cannot tell a bad pointer from a missing one.
 */
function checkOperations(operations: unknown): Operation[] {
  if (!Array.isArray(operations)) throw new PatchError('malformed', 'invalid JSON patch: the body must be a list of operations');
  operations.forEach((operation: unknown, index) => {
    if (!isJsonObject(operation)) throw malformedOp(index, 'must be an object');
    const op = operation['op'];
    if (typeof op !== 'string' || !OPS.has(op)) throw malformedOp(index, `unknown op ${JSON.stringify(op)}`);
    if (!isPointer(operation['path'])) throw malformedOp(index, `"path" must be a JSON pointer`);
    if ((op === 'move' || op === 'copy') && !isPointer(operation['from'])) {
      throw malformedOp(index, `"from" must be a JSON pointer`);
    }
    if ((op === 'add' || op === 'replace' || op === 'test') && !hasOwn(operation, 'value')) {
      throw malformedOp(index, `${op} needs a "value"`);
    }
    // RFC 6902 4.4: a location cannot be moved into one of its children.
    if (op === 'move' && (operation['path'] as string).startsWith(`${operation['from'] as string}/`)) {
      throw new PatchError('invalid', `invalid JSON patch: operation ${index}: cannot move a value into itself`);
    }
  });
  return operations as Operation[];
}

/**
 * RFC 6902 array indices: "0" or digits without a leading zero; "-" (past the end) only as
 * the target of add, move and copy, which all add there.
 */
function checkArrayIndices(document: unknown, operation: Operation, index: number): void {
  const pointers = [operation.path, 'from' in operation ? operation.from : undefined];
  for (const pointer of pointers) {
    if (!pointer) continue;
    let node: unknown = document;
    const tokens = pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    for (const [position, token] of tokens.entries()) {
      if (Array.isArray(node)) {
        const last = position === tokens.length - 1;
        const addsHere = pointer === operation.path && (operation.op === 'add' || operation.op === 'move' || operation.op === 'copy');
        const appendable = last && token === '-' && addsHere;
        if (!appendable && !/^(0|[1-9][0-9]*)$/.test(token)) {
          throw new PatchError('invalid', `invalid JSON patch: operation ${index}: ${JSON.stringify(token)} is not an array index`);
        }
        node = node[Number(token)];
      } else if (isJsonObject(node)) {
        node = hasOwn(node, token) ? node[token] : undefined;
      } else {
        return; // fast-json-patch reports the missing parent
      }
    }
  }
}

/** Why an operation that was well formed still could not apply. */
function describeApplyFailure(err: unknown): string {
  if (err instanceof jsonPatch.JsonPatchError) {
    const op = err.operation as Partial<Operation> | undefined;
    const where = op?.path !== undefined ? ` at ${JSON.stringify(op.path)}` : '';
    switch (err.name) {
      case 'TEST_OPERATION_FAILED':
        return `test failed${where}`;
      case 'OPERATION_PATH_UNRESOLVABLE':
      case 'OPERATION_PATH_CANNOT_ADD':
        return `no value${where}`;
      case 'OPERATION_FROM_UNRESOLVABLE':
        return `no value at "from" ${JSON.stringify((op as { from?: string } | undefined)?.from ?? '')}`;
      case 'OPERATION_VALUE_OUT_OF_BOUNDS':
        return `array index out of bounds${where}`;
      default:
        return `${err.message.split('\n')[0] ?? err.name}${where}`;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * RFC 6902: applies the operations in order, all or nothing. A malformed patch document is
 * PatchError('malformed'); a failed `test` or a path that does not resolve is 'invalid'.
 */
export function applyJsonPatch(target: unknown, operations: unknown): unknown {
  const checked = checkOperations(operations);
  let document = cloneJson(target);
  checked.forEach((operation, index) => {
    checkArrayIndices(document, operation, index);
    try {
      // Validation on (existence checks), mutation on (the document is our copy),
      // prototype writes banned; the op is cloned so its value is never aliased.
      document = jsonPatch.applyOperation(document, cloneJson(operation), true, true, true, index).newDocument;
    } catch (err) {
      throw new PatchError('invalid', `invalid JSON patch: operation ${index} (${operation.op}): ${describeApplyFailure(err)}`, {
        cause: err,
      });
    }
  });
  return document;
}

// ---- dispatch -------------------------------------------------------------------------------

function asObject(result: unknown, format: string): KubeObject {
  if (!isJsonObject(result)) throw new PatchError('invalid', `the ${format} did not produce a JSON object`);
  if (!isJsonObject(result['metadata'])) result['metadata'] = {};
  return result as KubeObject;
}

/** The media type without parameters, lower case: `application/merge-patch+json; charset=utf-8` → type. */
export function patchMediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/**
 * Applies a PATCH body to the live object by Content-Type. Throws UnsupportedPatchTypeError
 * (→ 415) for other types and PatchError for patches that are malformed or do not apply.
 */
export function applyPatch(contentType: string, target: KubeObject, body: unknown, kind: string): KubeObject {
  switch (patchMediaType(contentType)) {
    case MERGE_PATCH:
      return asObject(applyMergePatch(target, body), 'merge patch');
    case JSON_PATCH:
      return asObject(applyJsonPatch(target, body), 'JSON patch');
    case STRATEGIC_MERGE_PATCH:
      return applyStrategicMergePatch(target, body, kind);
    case APPLY_PATCH: {
      let intent = body;
      if (typeof intent === 'string') {
        try {
          intent = JSON.parse(intent) as unknown;
        } catch (err) {
          throw new PatchError('malformed', 'apply patch must be a JSON object (YAML bodies are not supported)', { cause: err });
        }
      }
      if (!isJsonObject(intent)) throw new PatchError('malformed', 'apply patch must be a JSON object');
      return applyStrategicMergePatch(target, intent, kind);
    }
    default:
      throw new UnsupportedPatchTypeError(contentType, PATCH_CONTENT_TYPES);
  }
}
