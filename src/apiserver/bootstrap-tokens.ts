/**
 * The bootstrap-token authenticator (upstream plugin/pkg/auth/authenticator/token/bootstrap):
 * `Bearer <id>.<secret>` is looked up as Secret kube-system/bootstrap-token-<id> on every
 * request (a deleted or edited Secret revokes the token at once, as with service-account
 * tokens). A token that has the shape but does not check out is refused outright instead of
 * being passed to other authenticators: nobody else issues tokens of that shape.
 *
 * What the 401 says: an unknown id and a wrong secret get the same message, so the answer is
 * no oracle for which token ids exist; only a caller who proved the secret learns that the
 * token expired (the one mistake an operator can act on without guessing).
 */
import { timingSafeEqual } from 'node:crypto';
import { RESOURCE } from '../api/resources.js';
import {
  BOOTSTRAP_GROUP_PATTERN,
  BOOTSTRAP_TOKEN_NAMESPACE,
  BOOTSTRAPPERS_GROUP,
  bootstrapSecretName,
  bootstrapTokenExpiry,
  bootstrapUserName,
  EXTRA_GROUPS_KEY,
  parseBootstrapToken,
  SECRET_TYPE_BOOTSTRAP_TOKEN,
  secretValue,
  TOKEN_ID_KEY,
  TOKEN_SECRET_KEY,
  USAGE_AUTHENTICATION_KEY,
} from '../api/bootstrap-token.js';
import type { Secret } from '../api/serviceaccount.js';
import type { UserInfo } from './user-info.js';
import type { Registry } from './registry.js';
import { ApiStatusError } from './status.js';

export type BootstrapAuthResult = { ok: true; user: UserInfo } | { ok: false; message: string };

export const INVALID_BOOTSTRAP_TOKEN = 'invalid bootstrap token';

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export class BootstrapTokenAuthenticator {
  constructor(
    private readonly registry: Registry,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Whether a bearer token has the bootstrap shape (and so is this authenticator's to judge). */
  static handles(token: string): boolean {
    return parseBootstrapToken(token) !== undefined;
  }

  async authenticate(text: string): Promise<BootstrapAuthResult> {
    const token = parseBootstrapToken(text);
    if (!token) return { ok: false, message: INVALID_BOOTSTRAP_TOKEN };
    let secret: Secret;
    try {
      secret = (await this.registry.get(RESOURCE.secrets, BOOTSTRAP_TOKEN_NAMESPACE, bootstrapSecretName(token.id))) as Secret;
    } catch (err) {
      if (err instanceof ApiStatusError && err.code === 404) return { ok: false, message: INVALID_BOOTSTRAP_TOKEN };
      throw err;
    }
    if (secret.metadata.deletionTimestamp || secret.type !== SECRET_TYPE_BOOTSTRAP_TOKEN) return { ok: false, message: INVALID_BOOTSTRAP_TOKEN };
    if (secretValue(secret, TOKEN_ID_KEY) !== token.id) return { ok: false, message: INVALID_BOOTSTRAP_TOKEN };
    if (!sameText(secretValue(secret, TOKEN_SECRET_KEY) ?? '', token.secret)) return { ok: false, message: INVALID_BOOTSTRAP_TOKEN };
    const expiry = bootstrapTokenExpiry(secret);
    if (expiry === 'invalid') return { ok: false, message: `bootstrap token ${token.id} has an unparsable expiration` };
    if (expiry && expiry.getTime() <= this.now().getTime()) {
      return { ok: false, message: `bootstrap token ${token.id} expired at ${expiry.toISOString()}` };
    }
    if (secretValue(secret, USAGE_AUTHENTICATION_KEY) !== 'true') return { ok: false, message: `bootstrap token ${token.id} is not for authentication` };
    const extra = (secretValue(secret, EXTRA_GROUPS_KEY) ?? '').split(',').map((g) => g.trim()).filter(Boolean);
    // Upstream refuses the whole token when one group is malformed rather than dropping it.
    if (extra.some((group) => !BOOTSTRAP_GROUP_PATTERN.test(group))) return { ok: false, message: `bootstrap token ${token.id} has an invalid ${EXTRA_GROUPS_KEY}` };
    return {
      ok: true,
      user: { name: bootstrapUserName(token.id), uid: '', groups: [...new Set([BOOTSTRAPPERS_GROUP, ...extra, 'system:authenticated'])] },
    };
  }
}
