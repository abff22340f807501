/**
 * Service-account tokens on the apiserver side: issuing bound tokens (TokenRequest) and
 * authenticating any service-account JWT a client presents, as upstream's
 * pkg/serviceaccount JWT authenticator does.
 *
 * Design notes:
 * - A token is only as good as the objects it names: the ServiceAccount (same uid) and, for
 *   bound tokens, the Pod or Secret it is bound to (same uid, not deleted for more than the
 *   leeway) must still exist. Deleting any of them revokes the token at once, which is why
 *   the lookups go to the store on every request rather than to a cache that could lag.
 * - Two issuers are accepted: the configured one (bound tokens, with exp/nbf/aud) and
 *   `kubernetes/serviceaccount` (legacy Secret tokens, no expiry), whose Secret must still
 *   hold exactly this token.
 * - Times are checked with upstream's one-minute leeway for clock skew between issuer and
 *   checker.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import type { KubeObject } from '../api/meta.js';
import { RESOURCE, type ResourceDescriptor } from '../api/resources.js';
import {
  boundClaims,
  DEFAULT_SERVICE_ACCOUNT_ISSUER,
  LEGACY_ISSUER,
  SECRET_TYPE_SERVICE_ACCOUNT_TOKEN,
  serviceAccountGroups,
  serviceAccountUsername,
  type Secret,
} from '../api/serviceaccount.js';
import { JwsInvalidError, signJws, signingKeyFromPem, verifyJws, type SigningKey, type VerifyingKey } from '../lib/jws.js';
import type { UserInfo } from './user-info.js';
import type { Registry } from './registry.js';
import { ApiStatusError } from './status.js';

export const LEEWAY_SECONDS = 60;

export interface ServiceAccountTokenOptions {
  issuer?: string;
  /** Audiences the apiserver accepts (upstream's --api-audiences); default [issuer]. */
  audiences?: string[];
  /** Signs TokenRequest tokens; absent: an in-memory key made at start (tokens die with the process). */
  signingKey?: SigningKey;
  /** Keys tokens may be signed with; the signing key's public half is always one of them. */
  verifyingKeys?: VerifyingKey[];
  now?: () => Date;
}

/** An in-memory P-256 key for an apiserver started without --service-account-signing-key-file. */
export function ephemeralSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }), 'ephemeral');
}

export interface IssueRequest {
  namespace: string;
  serviceAccount: KubeObject;
  audiences: string[];
  expirationSeconds: number;
  bound?: { kind: 'Pod' | 'Secret'; name: string; uid: string };
}

export class ServiceAccountTokens {
  readonly issuer: string;
  readonly audiences: string[];
  private readonly signingKey: SigningKey;
  private readonly verifyingKeys: VerifyingKey[];
  private readonly now: () => Date;

  constructor(
    private readonly registry: Registry,
    options: ServiceAccountTokenOptions = {},
  ) {
    this.issuer = options.issuer ?? DEFAULT_SERVICE_ACCOUNT_ISSUER;
    this.audiences = options.audiences?.length ? options.audiences : [this.issuer];
    this.signingKey = options.signingKey ?? ephemeralSigningKey();
    const signerPublic: VerifyingKey = { algorithm: this.signingKey.algorithm, keyId: this.signingKey.keyId, publicKey: this.signingKey.publicKey };
    this.verifyingKeys = [signerPublic, ...(options.verifyingKeys ?? []).filter((k) => k.keyId !== signerPublic.keyId)];
    this.now = options.now ?? (() => new Date());
  }

  issue(request: IssueRequest): { token: string; expiresAt: Date } {
    const issuedAtSeconds = Math.floor(this.now().getTime() / 1000);
    const claims = boundClaims({
      issuer: this.issuer,
      audiences: request.audiences,
      serviceAccount: { namespace: request.namespace, name: request.serviceAccount.metadata.name ?? '', uid: request.serviceAccount.metadata.uid ?? '' },
      ...(request.bound ? { bound: request.bound } : {}),
      issuedAtSeconds,
      expirationSeconds: request.expirationSeconds,
      jti: randomUUID(),
    });
    return { token: signJws({ ...claims }, this.signingKey), expiresAt: new Date(claims.exp * 1000) };
  }

  /** The service account's user, or undefined for any token that must be refused (401). */
  async authenticate(token: string): Promise<UserInfo | undefined> {
    let claims: Record<string, unknown>;
    try {
      claims = verifyJws(token, this.verifyingKeys);
    } catch (err) {
      if (err instanceof JwsInvalidError) return undefined;
      throw err;
    }
    if (claims['iss'] === LEGACY_ISSUER) return this.legacy(token, claims);
    if (claims['iss'] !== this.issuer) return undefined;
    const nowSeconds = this.now().getTime() / 1000;
    const exp = claims['exp'];
    const nbf = claims['nbf'];
    if (typeof exp !== 'number' || exp + LEEWAY_SECONDS < nowSeconds) return undefined;
    if (typeof nbf === 'number' && nbf - LEEWAY_SECONDS > nowSeconds) return undefined;
    const aud = claims['aud'];
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.some((a) => this.audiences.includes(a as string))) return undefined;
    const kubernetes = claims['kubernetes.io'] as
      | { namespace?: unknown; serviceaccount?: { name?: unknown; uid?: unknown }; pod?: { name?: unknown; uid?: unknown }; secret?: { name?: unknown; uid?: unknown } }
      | undefined;
    const namespace = kubernetes?.namespace;
    const name = kubernetes?.serviceaccount?.name;
    const uid = kubernetes?.serviceaccount?.uid;
    if (typeof namespace !== 'string' || typeof name !== 'string' || typeof uid !== 'string') return undefined;
    if (claims['sub'] !== serviceAccountUsername(namespace, name)) return undefined;
    if (!(await this.alive(RESOURCE.serviceaccounts, namespace, name, uid))) return undefined;
    for (const [descriptor, ref] of [
      [RESOURCE.pods, kubernetes?.pod],
      [RESOURCE.secrets, kubernetes?.secret],
    ] as const) {
      if (ref === undefined) continue;
      if (typeof ref.name !== 'string' || typeof ref.uid !== 'string') return undefined;
      if (!(await this.alive(descriptor, namespace, ref.name, ref.uid))) return undefined;
    }
    return { name: serviceAccountUsername(namespace, name), uid, groups: serviceAccountGroups(namespace) };
  }

  private async legacy(token: string, claims: Record<string, unknown>): Promise<UserInfo | undefined> {
    const namespace = claims['kubernetes.io/serviceaccount/namespace'];
    const secretName = claims['kubernetes.io/serviceaccount/secret.name'];
    const name = claims['kubernetes.io/serviceaccount/service-account.name'];
    const uid = claims['kubernetes.io/serviceaccount/service-account.uid'];
    if (typeof namespace !== 'string' || typeof secretName !== 'string' || typeof name !== 'string' || typeof uid !== 'string') return undefined;
    const secret = (await this.lookup(RESOURCE.secrets, namespace, secretName)) as Secret | undefined;
    // The Secret must still hold this very token: deleting or rewriting it revokes the token.
    if (!secret || secret.type !== SECRET_TYPE_SERVICE_ACCOUNT_TOKEN || secret.metadata.deletionTimestamp) return undefined;
    if (Buffer.from(secret.data?.['token'] ?? '', 'base64').toString('utf8') !== token) return undefined;
    if (!(await this.alive(RESOURCE.serviceaccounts, namespace, name, uid))) return undefined;
    return { name: serviceAccountUsername(namespace, name), uid, groups: serviceAccountGroups(namespace) };
  }

  private async lookup(descriptor: ResourceDescriptor, namespace: string, name: string): Promise<KubeObject | undefined> {
    try {
      return await this.registry.get(descriptor, namespace, name);
    } catch (err) {
      if (err instanceof ApiStatusError && err.code === 404) return undefined;
      throw err;
    }
  }

  /** The object exists with this uid and was not deleted longer than the leeway ago. */
  private async alive(descriptor: ResourceDescriptor, namespace: string, name: string, uid: string): Promise<boolean> {
    const object = await this.lookup(descriptor, namespace, name);
    if (!object || object.metadata.uid !== uid) return false;
    const deletion = object.metadata.deletionTimestamp;
    return !deletion || Date.parse(deletion) + LEEWAY_SECONDS * 1000 > this.now().getTime();
  }
}
