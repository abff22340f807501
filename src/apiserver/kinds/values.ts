/**
 * Safe readers over decoded JSON. Objects reach the strategies exactly as clients sent them,
 * so `spec.containers` may be a string and `containerPort` may be "80": validation must report
 * those as causes, never throw on them, and defaulting must leave them alone.
 */
import type { FieldCause, FieldPath } from './field.js';
import { invalid } from './field.js';

export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

export function asArray(value: unknown): unknown[] | undefined {
  return Array.isArray(value) ? value : undefined;
}

/** The objects of an array that are objects, with their indexes (others are skipped). */
export function objectsOf(value: unknown): [number, JsonObject][] {
  const result: [number, JsonObject][] = [];
  for (const [i, item] of (asArray(value) ?? []).entries()) {
    const object = asObject(item);
    if (object) result.push([i, object]);
  }
  return result;
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The child object at `key`, created empty when absent (for defaulting). */
export function ensureObject(parent: JsonObject, key: string): JsonObject | undefined {
  if (parent[key] === undefined || parent[key] === null) parent[key] = {};
  return asObject(parent[key]);
}

/** Sets `parent[key]` when it is absent (undefined, null or ""), as upstream defaulting does. */
export function defaultValue(parent: JsonObject, key: string, value: unknown): void {
  if (parent[key] === undefined || parent[key] === null || parent[key] === '') parent[key] = value;
}

/**
 * Type checks that report a cause for a present value of the wrong JSON type and return the
 * value only when it has the right one. Absent values (undefined/null) are not an error here.
 */
export class TypeChecker {
  constructor(readonly causes: FieldCause[]) {}

  string(value: unknown, path: FieldPath): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return value;
    this.causes.push(invalid(path, value, 'must be a string'));
    return undefined;
  }

  integer(value: unknown, path: FieldPath): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    this.causes.push(invalid(path, value, 'must be an integer'));
    return undefined;
  }

  boolean(value: unknown, path: FieldPath): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'boolean') return value;
    this.causes.push(invalid(path, value, 'must be a boolean'));
    return undefined;
  }

  object(value: unknown, path: FieldPath): JsonObject | undefined {
    if (value === undefined || value === null) return undefined;
    const object = asObject(value);
    if (!object) this.causes.push(invalid(path, value, 'must be an object'));
    return object;
  }

  array(value: unknown, path: FieldPath): unknown[] | undefined {
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value)) return value;
    this.causes.push(invalid(path, value, 'must be a list'));
    return undefined;
  }

  /** Each item of a list that must hold objects; reports the items that are not. */
  objects(value: unknown, path: FieldPath): [number, JsonObject][] {
    const list = this.array(value, path);
    const result: [number, JsonObject][] = [];
    for (const [i, item] of (list ?? []).entries()) {
      const object = asObject(item);
      if (object) result.push([i, object]);
      else this.causes.push(invalid(path.index(i), item, 'must be an object'));
    }
    return result;
  }

  strings(value: unknown, path: FieldPath): string[] {
    const list = this.array(value, path);
    const result: string[] = [];
    for (const [i, item] of (list ?? []).entries()) {
      if (typeof item === 'string') result.push(item);
      else this.causes.push(invalid(path.index(i), item, 'must be a string'));
    }
    return result;
  }

  /** A map of string to string (labels, annotations, nodeSelector, data). */
  stringMap(value: unknown, path: FieldPath): Record<string, string> {
    const object = this.object(value, path);
    const result: Record<string, string> = {};
    for (const [key, item] of Object.entries(object ?? {})) {
      if (typeof item === 'string') result[key] = item;
      else this.causes.push(invalid(path.key(key), item, 'must be a string'));
    }
    return result;
  }
}

/** Structural equality over JSON values, where an absent key equals an undefined one. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const objectA = asObject(a);
  const objectB = asObject(b);
  if (!objectA || !objectB) return false;
  const keys = new Set([...Object.keys(objectA), ...Object.keys(objectB)]);
  for (const key of keys) if (!jsonEqual(objectA[key], objectB[key])) return false;
  return true;
}

/** Up to `limit` dotted paths where two JSON values differ, for "what changed" messages. */
export function jsonDiffPaths(a: unknown, b: unknown, base: string, limit = 5): string[] {
  const paths: string[] = [];
  const walk = (x: unknown, y: unknown, path: string): void => {
    if (paths.length >= limit || jsonEqual(x, y)) return;
    if (Array.isArray(x) && Array.isArray(y) && x.length === y.length) {
      x.forEach((item, i) => walk(item, y[i], `${path}[${i}]`));
      return;
    }
    const objectX = asObject(x);
    const objectY = asObject(y);
    if (objectX && objectY) {
      for (const key of new Set([...Object.keys(objectX), ...Object.keys(objectY)])) walk(objectX[key], objectY[key], `${path}.${key}`);
      return;
    }
    paths.push(path);
  };
  walk(a, b, base);
  return paths;
}
