/**
 * `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`: an authentication.k8s.io/v1
 * TokenRequest in, the same object with status.token out (upstream's
 * pkg/registry/core/serviceaccount/storage/token.go). Nothing is stored: the token is a
 * signed JWT naming the ServiceAccount and, optionally, the Pod or Secret it is bound to,
 * and it is valid only while those exist (sa-tokens.ts).
 */
import { RESOURCE } from '../api/resources.js';
import type { BoundObjectReference, TokenRequest, TokenRequestSpec } from '../api/serviceaccount.js';
import type { Pod } from '../api/types.js';
import { FieldPath, invalid, notSupported, required, type FieldCause } from './kinds/field.js';
import { asObject } from './kinds/values.js';
import { timestamp, type Registry } from './registry.js';
import type { ServiceAccountTokens } from './sa-tokens.js';
import { badRequest, conflict, invalid as invalidStatus } from './status.js';

export const TOKEN_REQUEST_API_VERSION = 'authentication.k8s.io/v1';
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;
/** Upstream refuses shorter tokens: clients refresh at 80% of the lifetime. */
export const MIN_TOKEN_EXPIRATION_SECONDS = 600;
export const MAX_TOKEN_EXPIRATION_SECONDS = 2 ** 32;

const TOKEN_REQUEST_KIND = { group: 'authentication.k8s.io', kind: 'TokenRequest' };

function validateSpec(spec: Record<string, unknown>): FieldCause[] {
  const causes: FieldCause[] = [];
  const expiration = spec['expirationSeconds'];
  const at = FieldPath.of('spec', 'expirationSeconds');
  if (typeof expiration !== 'number' || !Number.isInteger(expiration)) causes.push(invalid(at, expiration, 'must be an integer'));
  else if (expiration < MIN_TOKEN_EXPIRATION_SECONDS) causes.push(invalid(at, expiration, 'may not specify a duration less than 10 minutes'));
  else if (expiration > MAX_TOKEN_EXPIRATION_SECONDS) causes.push(invalid(at, expiration, 'may not specify a duration larger than 2^32 seconds'));
  const audiences = spec['audiences'];
  if (!Array.isArray(audiences) || audiences.some((a) => typeof a !== 'string')) {
    causes.push(invalid(FieldPath.of('spec', 'audiences'), audiences, 'must be a list of strings'));
  }
  const ref = spec['boundObjectRef'];
  if (ref !== undefined && ref !== null) {
    const object = asObject(ref);
    if (!object) causes.push(invalid(FieldPath.of('spec', 'boundObjectRef'), ref, 'must be an object'));
    else if (typeof object['name'] !== 'string' || object['name'] === '') causes.push(required(FieldPath.of('spec', 'boundObjectRef', 'name')));
    else if (object['kind'] === undefined || object['kind'] === '') causes.push(required(FieldPath.of('spec', 'boundObjectRef', 'kind')));
    else if (typeof object['kind'] !== 'string') causes.push(notSupported(FieldPath.of('spec', 'boundObjectRef', 'kind'), object['kind'], ['Pod', 'Secret']));
  }
  return causes;
}

export async function createToken(
  registry: Registry,
  tokens: ServiceAccountTokens,
  namespace: string,
  name: string,
  body: Record<string, unknown>,
): Promise<TokenRequest> {
  if (body['kind'] !== undefined && body['kind'] !== 'TokenRequest') {
    throw badRequest(`the kind in the data (${String(body['kind'])}) does not match the expected kind (TokenRequest)`);
  }
  if (body['apiVersion'] !== undefined && body['apiVersion'] !== TOKEN_REQUEST_API_VERSION) {
    throw badRequest(`the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (${TOKEN_REQUEST_API_VERSION})`);
  }
  const spec: Record<string, unknown> = { ...(asObject(body['spec']) ?? {}) };
  // Defaults as upstream: the apiserver's own audiences and one hour.
  if (spec['audiences'] === undefined || spec['audiences'] === null || (Array.isArray(spec['audiences']) && spec['audiences'].length === 0)) {
    spec['audiences'] = [...tokens.audiences];
  }
  spec['expirationSeconds'] ??= DEFAULT_TOKEN_EXPIRATION_SECONDS;
  const causes = validateSpec(spec);
  if (causes.length > 0) throw invalidStatus(TOKEN_REQUEST_KIND, name, causes);

  const serviceAccount = await registry.get(RESOURCE.serviceaccounts, namespace, name);
  const ref = (asObject(spec['boundObjectRef']) ?? undefined) as BoundObjectReference | undefined;
  let bound: { kind: 'Pod' | 'Secret'; name: string; uid: string } | undefined;
  if (ref) {
    const apiVersion = ref.apiVersion || 'v1';
    if (apiVersion !== 'v1' || (ref.kind !== 'Pod' && ref.kind !== 'Secret')) {
      const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
      throw badRequest(`cannot bind token to object of type ${group}/${version}, Kind=${ref.kind ?? ''}`);
    }
    const descriptor = ref.kind === 'Pod' ? RESOURCE.pods : RESOURCE.secrets;
    const object = await registry.get(descriptor, namespace, ref.name!);
    const uid = object.metadata.uid ?? '';
    if (ref.uid && ref.uid !== uid) {
      throw conflict(
        { group: '', resource: ref.kind },
        ref.name!,
        `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
      );
    }
    if (ref.kind === 'Pod') {
      const podAccount = (object as Pod).spec?.serviceAccountName || 'default';
      if (podAccount !== name) throw badRequest(`cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`);
    }
    bound = { kind: ref.kind, name: ref.name!, uid };
    spec['boundObjectRef'] = { kind: ref.kind, apiVersion: 'v1', name: ref.name!, uid };
  }
  const audiences = spec['audiences'] as string[];
  const expirationSeconds = spec['expirationSeconds'] as number;
  const issued = tokens.issue({ namespace, serviceAccount, audiences, expirationSeconds, ...(bound ? { bound } : {}) });
  return {
    kind: 'TokenRequest',
    apiVersion: TOKEN_REQUEST_API_VERSION,
    metadata: { name, namespace, creationTimestamp: timestamp(new Date()) },
    spec: spec as TokenRequestSpec,
    status: { token: issued.token, expirationTimestamp: timestamp(issued.expiresAt) },
  };
}
