/**
 * Bootstrap tokens seen from the control plane's side (what `pontoon token` and the lab's
 * add-node do with an admin client): create one as its Secret, list and delete them, and
 * the join command a node runs with it.
 */
import { RESOURCE } from '../api/resources.js';
import {
  BOOTSTRAP_TOKEN_NAMESPACE,
  bootstrapSecretName,
  bootstrapTokenExpiry,
  bootstrapTokenSecret,
  DEFAULT_BOOTSTRAP_GROUP,
  DESCRIPTION_KEY,
  EXTRA_GROUPS_KEY,
  formatBootstrapToken,
  generateBootstrapToken,
  SECRET_TYPE_BOOTSTRAP_TOKEN,
  secretValue,
  TOKEN_ID_KEY,
  TOKEN_ID_PATTERN,
  USAGE_AUTHENTICATION_KEY,
  USAGE_SIGNING_KEY,
  type BootstrapToken,
} from '../api/bootstrap-token.js';
import type { Secret } from '../api/serviceaccount.js';
import type { KubeApi } from '../client/api.js';
import { PontoonError } from '../lib/errors.js';
import { publicKeyPin } from '../lib/x509.js';
import { ensureClusterInfo } from './cluster-info.js';

export class BootstrapTokenError extends PontoonError {}

/** kubeadm's default --ttl. */
export const DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600;

export interface CreatedToken {
  token: string;
  expires?: Date;
}

/**
 * A new token Secret; ttlSeconds 0 means it never expires. With `clusterInfo`, also makes
 * sure kube-public/cluster-info names that server and CA (what a join reads first).
 */
export async function createBootstrapToken(
  api: KubeApi,
  options: { ttlSeconds: number; description?: string; token?: BootstrapToken; clusterInfo?: { server: string; caPem: string } },
): Promise<CreatedToken> {
  if (options.clusterInfo) await ensureClusterInfo(api, options.clusterInfo.server, options.clusterInfo.caPem);
  const token = options.token ?? generateBootstrapToken();
  const expires = options.ttlSeconds > 0 ? new Date(Date.now() + options.ttlSeconds * 1000) : undefined;
  await api.create<Secret>(
    RESOURCE.secrets,
    bootstrapTokenSecret({
      token,
      ...(expires ? { expires } : {}),
      ...(options.description ? { description: options.description } : {}),
      extraGroups: [DEFAULT_BOOTSTRAP_GROUP],
    }),
  );
  return { token: formatBootstrapToken(token), ...(expires ? { expires } : {}) };
}

export interface TokenRow {
  id: string;
  expires: string;
  usages: string;
  description: string;
  extraGroups: string;
}

export async function listBootstrapTokens(api: KubeApi): Promise<TokenRow[]> {
  const secrets = await api.list<Secret>(RESOURCE.secrets, BOOTSTRAP_TOKEN_NAMESPACE);
  return secrets.items
    .filter((s) => s.type === SECRET_TYPE_BOOTSTRAP_TOKEN)
    .map((secret) => {
      const expiry = bootstrapTokenExpiry(secret);
      return {
        id: secretValue(secret, TOKEN_ID_KEY) ?? '',
        expires: expiry === undefined ? '<forever>' : expiry === 'invalid' ? '<invalid>' : expiry.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        usages: [secretValue(secret, USAGE_AUTHENTICATION_KEY) === 'true' ? 'authentication' : '', secretValue(secret, USAGE_SIGNING_KEY) === 'true' ? 'signing' : ''].filter(Boolean).join(','),
        description: secretValue(secret, DESCRIPTION_KEY) ?? '',
        extraGroups: secretValue(secret, EXTRA_GROUPS_KEY) ?? '',
      };
    });
}

/** Deletes by id or by the whole token (kubeadm takes either); false when there was none. */
export async function deleteBootstrapToken(api: KubeApi, idOrToken: string): Promise<boolean> {
  const id = idOrToken.split('.')[0] ?? '';
  if (!TOKEN_ID_PATTERN.test(id)) throw new BootstrapTokenError(`token id "${id}" must be 6 characters of [a-z0-9]`);
  return api.delete(RESOURCE.secrets, bootstrapSecretName(id), BOOTSTRAP_TOKEN_NAMESPACE);
}

export function joinCommand(server: string, token: string, caPem: string): string {
  return `pontoon join --server ${server} --token ${token} --ca-cert-hash ${publicKeyPin(caPem)}`;
}

/** `24h`, `30m`, `90s`, `0` (never), as kubeadm's --ttl. */
export function parseTtl(text: string): number {
  const match = /^(\d+)(h|m|s)?$/.exec(text.trim());
  if (!match) {
    const parts = [...text.trim().matchAll(/(\d+)(h|m|s)/g)];
    if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text.trim()) throw new BootstrapTokenError(`--ttl must be a duration like 24h, 30m or 1h30m (0: never expires), got "${text}"`);
    return parts.reduce((total, [, n, unit]) => total + Number(n) * (unit === 'h' ? 3600 : unit === 'm' ? 60 : 1), 0);
  }
  const unit = match[2] ?? 's';
  return Number(match[1]) * (unit === 'h' ? 3600 : unit === 'm' ? 60 : 1);
}
