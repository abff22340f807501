/**
 * Compact JWS (RFC 7515) signing and verification of JSON claims with node:crypto, for the
 * algorithms Kubernetes service-account tokens use: ES256 (EC P-256) and RS256 (RSA). Keys
 * are PEM files as openssl writes them. No JWT library: the format is three base64url
 * segments and one signature call, and a library would add a dependency for ~100 lines.
 *
 * ECDSA signatures in JWS are the raw r||s pair (RFC 7518 §3.4), not the DER that
 * crypto.sign produces by default, hence `dsaEncoding: 'ieee-p1363'`.
 *
 * The key id is upstream's: base64url(SHA-256(DER of the public key)), so a kid names one
 * key however it was stored.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PontoonError } from './errors.js';

export type JwsAlgorithm = 'ES256' | 'RS256';

export class JwsKeyError extends PontoonError {}
/** A token that is not a well-formed JWS, or whose signature no key verifies. */
export class JwsInvalidError extends PontoonError {}

export interface SigningKey {
  algorithm: JwsAlgorithm;
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface VerifyingKey {
  algorithm: JwsAlgorithm;
  keyId: string;
  publicKey: KeyObject;
}

function algorithmOf(key: KeyObject, source: string): JwsAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new JwsKeyError(`failed to use key "${source}": want an RSA or EC P-256 key, got ${key.asymmetricKeyType ?? 'unknown'} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url');
}

export function signingKeyFromPem(pem: string | Buffer, source = 'key'): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new JwsKeyError(`failed to parse private key "${source}": ${(err as Error).message}`, { cause: err });
  }
  const publicKey = createPublicKey(privateKey);
  return { algorithm: algorithmOf(privateKey, source), keyId: keyIdOf(publicKey), privateKey, publicKey };
}

/** A PEM file holding a private key or public keys (upstream's --service-account-key-file takes either). */
export function verifyingKeysFromPem(pem: string, source = 'key'): VerifyingKey[] {
  const blocks = pem.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
  if (blocks.length === 0) throw new JwsKeyError(`failed to parse key file "${source}": no PEM block`);
  const keys: VerifyingKey[] = [];
  for (const block of blocks) {
    if (/CERTIFICATE/.test(block)) continue;
    let publicKey: KeyObject;
    try {
      publicKey = /PRIVATE/.test(block) ? createPublicKey(createPrivateKey(block)) : createPublicKey(block);
    } catch (err) {
      throw new JwsKeyError(`failed to parse key file "${source}": ${(err as Error).message}`, { cause: err });
    }
    keys.push({ algorithm: algorithmOf(publicKey, source), keyId: keyIdOf(publicKey), publicKey });
  }
  if (keys.length === 0) throw new JwsKeyError(`failed to parse key file "${source}": no key in it`);
  return keys;
}

export function readSigningKey(path: string): SigningKey {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new JwsKeyError(`failed to read key file "${path}": ${(err as Error).message}`, { cause: err });
  }
  return signingKeyFromPem(pem, path);
}

export function readVerifyingKeys(path: string): VerifyingKey[] {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new JwsKeyError(`failed to read key file "${path}": ${(err as Error).message}`, { cause: err });
  }
  return verifyingKeysFromPem(pem, path);
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

function cryptoOptions(algorithm: JwsAlgorithm, key: KeyObject): { key: KeyObject; dsaEncoding?: 'ieee-p1363' } {
  return algorithm === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : { key };
}

export function signJws(claims: Record<string, unknown>, key: SigningKey): string {
  const input = `${b64({ alg: key.algorithm, kid: key.keyId })}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), cryptoOptions(key.algorithm, key.privateKey));
  return `${input}.${signature.toString('base64url')}`;
}

/** True when the text has the compact shape (three base64url segments): worth verifying as a JWS. */
export function looksLikeJws(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

/** The unverified claims, for routing a token to the right verifier (issuer); never trust them. */
export function peekClaims(token: string): Record<string, unknown> | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The claims when one of `keys` verifies the signature; throws JwsInvalidError otherwise. */
export function verifyJws(token: string, keys: readonly VerifyingKey[]): Record<string, unknown> {
  const [headerText, payloadText, signatureText, ...rest] = token.split('.');
  if (headerText === undefined || payloadText === undefined || signatureText === undefined || rest.length > 0) {
    throw new JwsInvalidError('not a compact JWS');
  }
  let header: { alg?: unknown; kid?: unknown };
  try {
    header = JSON.parse(Buffer.from(headerText, 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown };
  } catch {
    throw new JwsInvalidError('JWS header is not JSON');
  }
  // The algorithm comes from our key, never from the token ("alg: none" and key confusion).
  const candidates = keys.filter((k) => k.algorithm === header.alg && (header.kid === undefined || header.kid === k.keyId));
  const input = Buffer.from(`${headerText}.${payloadText}`);
  const signature = Buffer.from(signatureText, 'base64url');
  if (!candidates.some((k) => verify('sha256', input, cryptoOptions(k.algorithm, k.publicKey), signature))) {
    throw new JwsInvalidError('signature does not verify with any known key');
  }
  const claims = peekClaims(token);
  if (!claims) throw new JwsInvalidError('JWS payload is not a JSON object');
  return claims;
}
