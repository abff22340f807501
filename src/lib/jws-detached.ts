/**
 * Detached compact JWS with HS256 (RFC 7515 appendix F: `header..signature`, the payload
 * left out because the reader already has it). Upstream's bootstrap signer signs the
 * cluster-info kubeconfig this way with a bootstrap token's secret, so a joining node that
 * knows the token can tell the download was not tampered with.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export function detachedHs256(content: string, keyId: string, secret: string): string {
  const header = base64url(JSON.stringify({ alg: 'HS256', kid: keyId }));
  const signature = createHmac('sha256', secret).update(`${header}.${base64url(content)}`).digest();
  return `${header}..${base64url(signature)}`;
}

export function verifyDetachedHs256(content: string, signature: string, keyId: string, secret: string): boolean {
  const expected = Buffer.from(detachedHs256(content, keyId, secret));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
