/**
 * Field errors worded the way k8s.io/apimachinery's field.Error words them, because kubectl
 * prints `cause.field + ": " + cause.message` verbatim ("spec.replicas: Invalid value: -1:
 * must be greater than or equal to 0") and people grep for those phrases.
 *
 * A cause's `reason` is upstream's CauseType (`FieldValueRequired`, ...), its `field` a path
 * such as `spec.containers[0].ports[1].containerPort`, and its `message` the error body
 * without the field.
 */
import type { StatusCause } from '../../api/meta.js';

export type CauseReason =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueDuplicate'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'FieldValueForbidden';

/** A StatusCause whose three fields are always present. */
export interface FieldCause extends StatusCause {
  reason: CauseReason;
  message: string;
  field: string;
}

/** An immutable field path: `FieldPath.of('spec').child('containers').index(0)`. */
export class FieldPath {
  private constructor(private readonly text: string) {}

  static of(...names: string[]): FieldPath {
    return new FieldPath(names.join('.'));
  }

  child(...names: string[]): FieldPath {
    const tail = names.join('.');
    return new FieldPath(this.text === '' ? tail : `${this.text}.${tail}`);
  }

  index(i: number): FieldPath {
    return new FieldPath(`${this.text}[${i}]`);
  }

  /** A map entry: `data[my.key]`, `metadata.labels[app]`. */
  key(k: string): FieldPath {
    return new FieldPath(`${this.text}[${k}]`);
  }

  toString(): string {
    return this.text;
  }
}

/**
 * A bad value as upstream prints it: strings quoted (Go's %q), numbers and booleans bare, a
 * missing value as null, anything structured as JSON.
 */
export function formatValue(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function cause(reason: CauseReason, path: FieldPath, message: string): FieldCause {
  return { reason, message, field: path.toString() };
}

function withDetail(head: string, detail: string): string {
  return detail ? `${head}: ${detail}` : head;
}

export function required(path: FieldPath, detail = ''): FieldCause {
  return cause('FieldValueRequired', path, withDetail('Required value', detail));
}

export function invalid(path: FieldPath, value: unknown, detail: string): FieldCause {
  return cause('FieldValueInvalid', path, withDetail(`Invalid value: ${formatValue(value)}`, detail));
}

export function notSupported(path: FieldPath, value: unknown, supported: readonly string[]): FieldCause {
  const detail = supported.length > 0 ? `supported values: ${supported.map((v) => JSON.stringify(v)).join(', ')}` : '';
  return cause('FieldValueNotSupported', path, withDetail(`Unsupported value: ${formatValue(value)}`, detail));
}

export function duplicate(path: FieldPath, value: unknown): FieldCause {
  return cause('FieldValueDuplicate', path, `Duplicate value: ${formatValue(value)}`);
}

export function forbidden(path: FieldPath, detail: string): FieldCause {
  return cause('FieldValueForbidden', path, withDetail('Forbidden', detail));
}

export function tooLong(path: FieldPath, maxBytes: number): FieldCause {
  return cause('FieldValueTooLong', path, `Too long: must have at most ${maxBytes} bytes`);
}

export function tooMany(path: FieldPath, actual: number, max: number): FieldCause {
  return cause('FieldValueTooMany', path, `Too many: ${actual}: must have at most ${max} items`);
}

/** One Invalid cause per message from a name/label checker (upstream reports each separately). */
export function invalidEach(path: FieldPath, value: unknown, messages: readonly string[]): FieldCause[] {
  return messages.map((message) => invalid(path, value, message));
}

/**
 * The Status message for a 422: `Deployment.apps "web" is invalid: <error>` for one cause,
 * `... is invalid: [<error>, <error>]` for several, as apierrors.NewInvalid words it.
 */
export function invalidMessage(kind: string, group: string, name: string, causes: readonly StatusCause[]): string {
  const qualified = group ? `${kind}.${group}` : kind;
  const errors = causes.map((c) => (c.field ? `${c.field}: ${c.message ?? ''}` : c.message ?? ''));
  const body = errors.length === 1 ? errors[0] ?? '' : `[${errors.join(', ')}]`;
  return `${qualified} "${name}" is invalid: ${body}`;
}
