import { PontoonError } from '../lib/errors.js';

/**
 * A patch the apiserver cannot apply. `malformed`: the patch document itself is wrong (not a
 * list of operations, unknown op, bad directive) → 400 BadRequest. `invalid`: a well-formed
 * patch that does not apply to this object (failed `test`, missing path) → 422, as upstream
 * answers JSON patch application errors.
 */
export class PatchError extends PontoonError {
  readonly kind: 'malformed' | 'invalid';

  constructor(kind: 'malformed' | 'invalid', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

/** A PATCH whose Content-Type names no patch format we apply → 415 UnsupportedMediaType. */
export class UnsupportedPatchTypeError extends PontoonError {
  readonly contentType: string;

  constructor(contentType: string, accepted: readonly string[]) {
    super(
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}` +
        (contentType ? ` (got ${JSON.stringify(contentType)})` : ''),
    );
    this.contentType = contentType;
  }
}
