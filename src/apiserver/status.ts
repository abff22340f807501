/**
 * Every error answer is a meta/v1 Status with the HTTP code, reason and message wording
 * upstream uses, because kubectl and client libraries print and branch on those (kubectl turns
 * `reason: Invalid` with causes into "The Pod "x" is invalid: spec...: Required value").
 * Handlers throw ApiStatusError; the server's one catch turns it into the response.
 */
import type { Status, StatusCause, StatusDetails, StatusReason } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import { PontoonError, describeError } from '../lib/errors.js';

export class ApiStatusError extends PontoonError {
  constructor(readonly status: Status) {
    super(status.message ?? status.reason ?? `status ${status.code}`);
  }
  get code(): number {
    return this.status.code;
  }
}

/** The resource part of a Status's details: `{ group, kind: <plural> }` as upstream sends. */
type Qualified = Pick<ResourceDescriptor, 'group' | 'resource'>;

/** `pods` or `deployments.apps`: how upstream names a resource in messages. */
export function qualifiedResource(resource: Qualified): string {
  return resource.group === '' ? resource.resource : `${resource.resource}.${resource.group}`;
}

export function failure(code: number, reason: StatusReason | undefined, message: string, details?: StatusDetails): Status {
  return {
    apiVersion: 'v1',
    kind: 'Status',
    metadata: {},
    status: 'Failure',
    message,
    ...(reason ? { reason } : {}),
    ...(details ? { details } : {}),
    code,
  };
}

export function success(details?: StatusDetails): Status {
  return { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Success', ...(details ? { details } : {}), code: 200 };
}

function error(code: number, reason: StatusReason | undefined, message: string, details?: StatusDetails): ApiStatusError {
  return new ApiStatusError(failure(code, reason, message, details));
}

function resourceDetails(resource: Qualified, name: string): StatusDetails {
  return { name, ...(resource.group ? { group: resource.group } : {}), kind: resource.resource };
}

export function notFound(resource: Qualified, name: string): ApiStatusError {
  return error(404, 'NotFound', `${qualifiedResource(resource)} "${name}" not found`, resourceDetails(resource, name));
}

/** A path nothing serves: upstream answers a bare 404 Status without details. */
export function pathNotFound(): ApiStatusError {
  return error(404, 'NotFound', 'the server could not find the requested resource');
}

export function alreadyExists(resource: Qualified, name: string): ApiStatusError {
  return error(409, 'AlreadyExists', `${qualifiedResource(resource)} "${name}" already exists`, resourceDetails(resource, name));
}

export const STALE_OBJECT_MESSAGE = 'the object has been modified; please apply your changes to the latest version and try again';

export function conflict(resource: Qualified, name: string, why = STALE_OBJECT_MESSAGE): ApiStatusError {
  return error(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(resource)} "${name}": ${why}`, resourceDetails(resource, name));
}

/**
 * 422 Invalid. `causes` are field errors as kinds/field.ts words them; the message is
 * upstream's `Deployment.apps "web" is invalid: <cause>` (a bracketed list for several).
 */
export function invalid(kind: Pick<ResourceDescriptor, 'group' | 'kind'>, name: string, causes: readonly StatusCause[]): ApiStatusError {
  const qualified = kind.group ? `${kind.kind}.${kind.group}` : kind.kind;
  const errors = causes.map((c) => (c.field ? `${c.field}: ${c.message ?? ''}` : c.message ?? ''));
  const body = errors.length === 1 ? errors[0]! : `[${errors.join(', ')}]`;
  return error(422, 'Invalid', `${qualified} "${name}" is invalid: ${body}`, {
    name,
    ...(kind.group ? { group: kind.group } : {}),
    kind: kind.kind,
    causes: causes.map((c) => ({ ...c })),
  });
}

export function badRequest(message: string): ApiStatusError {
  return error(400, 'BadRequest', message);
}

/** A watch or list from a resourceVersion the store no longer has: clients re-list. */
export function expired(message: string): Status {
  return failure(410, 'Expired', message);
}

export function gone(message: string): ApiStatusError {
  return error(410, 'Gone', message);
}

export function unauthorized(message?: string): ApiStatusError {
  return error(401, 'Unauthorized', message ? `Unauthorized: ${message}` : 'Unauthorized');
}

export function forbidden(message: string, resource?: Qualified, name?: string): ApiStatusError {
  const details = resource ? resourceDetails(resource, name ?? '') : undefined;
  if (details && !name) delete details.name;
  return error(403, 'Forbidden', message, details);
}

export function methodNotAllowed(): ApiStatusError {
  return error(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

export function unsupportedMediaType(contentType: string, accepted: readonly string[], detail?: string): ApiStatusError {
  return error(
    415,
    'UnsupportedMediaType',
    detail ?? `the body of the request was in an unknown format (${contentType || 'none'}) - accepted media types include: ${accepted.join(', ')}`,
  );
}

export function tooLarge(limitBytes: number): ApiStatusError {
  return error(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limitBytes}`);
}

/** A list or watch for a version the store has not reached yet. */
export function tooLargeResourceVersion(requested: number, current: number): ApiStatusError {
  return error(504, 'Timeout', `Too large resource version: ${requested}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });
}

export function serviceUnavailable(message: string): ApiStatusError {
  return error(503, 'ServiceUnavailable', message);
}

export function internal(err: unknown): ApiStatusError {
  return error(500, 'InternalError', `Internal error occurred: ${describeError(err)}`);
}

/** Any thrown value as the Status to answer with: ours as is, anything else as a 500. */
export function statusOf(err: unknown): Status {
  return err instanceof ApiStatusError ? err.status : internal(err).status;
}
