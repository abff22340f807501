/**
 * Bootstrap tokens as upstream defines them (k8s.io/cluster-bootstrap/token/api): a token
 * `<id>.<secret>` lives in a Secret of type `bootstrap.kubernetes.io/token` named
 * `bootstrap-token-<id>` in kube-system; a client presenting it is `system:bootstrap:<id>`
 * in `system:bootstrappers` plus the Secret's `auth-extra-groups`. The same token signs the
 * `kube-public/cluster-info` ConfigMap so a joining node can check what it downloaded.
 */
import { randomInt } from 'node:crypto';
import type { Secret } from './serviceaccount.js';

export const SECRET_TYPE_BOOTSTRAP_TOKEN = 'bootstrap.kubernetes.io/token';
export const BOOTSTRAP_TOKEN_NAMESPACE = 'kube-system';
export const BOOTSTRAP_TOKEN_SECRET_PREFIX = 'bootstrap-token-';
export const BOOTSTRAP_USER_PREFIX = 'system:bootstrap:';
export const BOOTSTRAPPERS_GROUP = 'system:bootstrappers';
/** The extra group kubeadm puts on join tokens. */
export const DEFAULT_BOOTSTRAP_GROUP = 'system:bootstrappers:kubeadm:default-node-token';
/** Extra groups must look like this (upstream's BootstrapGroupPattern). */
export const BOOTSTRAP_GROUP_PATTERN = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;

/** Secret data keys. */
export const TOKEN_ID_KEY = 'token-id';
export const TOKEN_SECRET_KEY = 'token-secret';
export const EXPIRATION_KEY = 'expiration';
export const DESCRIPTION_KEY = 'description';
export const USAGE_AUTHENTICATION_KEY = 'usage-bootstrap-authentication';
export const USAGE_SIGNING_KEY = 'usage-bootstrap-signing';
export const EXTRA_GROUPS_KEY = 'auth-extra-groups';

/** kube-public/cluster-info: a kubeconfig with the server and CA, readable anonymously. */
export const CLUSTER_INFO_NAMESPACE = 'kube-public';
export const CLUSTER_INFO_NAME = 'cluster-info';
export const CLUSTER_INFO_KUBECONFIG_KEY = 'kubeconfig';
/** `jws-kubeconfig-<id>`: a detached HS256 JWS of the kubeconfig, keyed by that token's secret. */
export const CLUSTER_INFO_SIGNATURE_PREFIX = 'jws-kubeconfig-';

export const TOKEN_PATTERN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
export const TOKEN_ID_PATTERN = /^[a-z0-9]{6}$/;

export interface BootstrapToken {
  id: string;
  secret: string;
}

export function parseBootstrapToken(text: string): BootstrapToken | undefined {
  const match = TOKEN_PATTERN.exec(text);
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

export function formatBootstrapToken(token: BootstrapToken): string {
  return `${token.id}.${token.secret}`;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomString(length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += ALPHABET[randomInt(ALPHABET.length)];
  return text;
}

export function generateBootstrapToken(): BootstrapToken {
  return { id: randomString(6), secret: randomString(16) };
}

export function bootstrapSecretName(id: string): string {
  return `${BOOTSTRAP_TOKEN_SECRET_PREFIX}${id}`;
}

export interface BootstrapTokenSpec {
  token: BootstrapToken;
  /** Absent: never expires. */
  expires?: Date;
  description?: string;
  extraGroups?: string[];
  /** Default both authentication and signing, as kubeadm's join tokens. */
  usages?: ('authentication' | 'signing')[];
}

export function bootstrapTokenSecret(spec: BootstrapTokenSpec): Secret {
  const usages = spec.usages ?? ['authentication', 'signing'];
  const stringData: Record<string, string> = {
    [TOKEN_ID_KEY]: spec.token.id,
    [TOKEN_SECRET_KEY]: spec.token.secret,
    ...(spec.expires ? { [EXPIRATION_KEY]: spec.expires.toISOString().replace(/\.\d{3}Z$/, 'Z') } : {}),
    ...(spec.description ? { [DESCRIPTION_KEY]: spec.description } : {}),
    ...(usages.includes('authentication') ? { [USAGE_AUTHENTICATION_KEY]: 'true' } : {}),
    ...(usages.includes('signing') ? { [USAGE_SIGNING_KEY]: 'true' } : {}),
    ...(spec.extraGroups?.length ? { [EXTRA_GROUPS_KEY]: spec.extraGroups.join(',') } : {}),
  };
  const data = Object.fromEntries(Object.entries(stringData).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]));
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: bootstrapSecretName(spec.token.id), namespace: BOOTSTRAP_TOKEN_NAMESPACE },
    type: SECRET_TYPE_BOOTSTRAP_TOKEN,
    data,
  };
}

/** A decoded data value of a Secret, or undefined. */
export function secretValue(secret: Secret, key: string): string | undefined {
  const value = secret.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

/** The expiration of a token Secret; undefined when it has none; `invalid` when unparsable. */
export function bootstrapTokenExpiry(secret: Secret): Date | undefined | 'invalid' {
  const text = secretValue(secret, EXPIRATION_KEY);
  if (text === undefined) return undefined;
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? 'invalid' : at;
}

export function bootstrapUserName(id: string): string {
  return `${BOOTSTRAP_USER_PREFIX}${id}`;
}
