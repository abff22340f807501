/**
 * Secret, ServiceAccount and authentication.k8s.io/v1 TokenRequest as they travel on the wire,
 * and the claims of service-account tokens — shared by the apiserver (TokenRequest, token
 * authentication), the controller-manager (legacy token Secrets) and the kubelet (projected
 * token volumes). Claim names are upstream's (pkg/serviceaccount/claims.go, legacy.go) so
 * tokens read the same to anything that decodes them.
 */
import type { KubeObject } from './meta.js';

export const SECRET_TYPE_OPAQUE = 'Opaque';
export const SECRET_TYPE_SERVICE_ACCOUNT_TOKEN = 'kubernetes.io/service-account-token';
export const SECRET_TYPE_TLS = 'kubernetes.io/tls';
export const SECRET_TYPE_DOCKER_CONFIG_JSON = 'kubernetes.io/dockerconfigjson';
export const SECRET_TYPE_DOCKERCFG = 'kubernetes.io/dockercfg';
export const SECRET_TYPE_BASIC_AUTH = 'kubernetes.io/basic-auth';
export const SECRET_TYPE_SSH_AUTH = 'kubernetes.io/ssh-auth';

/** Annotations of a service-account-token Secret. */
export const SERVICE_ACCOUNT_NAME_ANNOTATION = 'kubernetes.io/service-account.name';
export const SERVICE_ACCOUNT_UID_ANNOTATION = 'kubernetes.io/service-account.uid';

export const DEFAULT_SERVICE_ACCOUNT = 'default';
/** Upstream's default --service-account-issuer in kubeadm clusters. */
export const DEFAULT_SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** The issuer of tokens the legacy token controller writes into Secrets (no expiry). */
export const LEGACY_ISSUER = 'kubernetes/serviceaccount';
/** ConfigMap every namespace gets with the cluster CA (key ca.crt), read by projected token volumes. */
export const ROOT_CA_CONFIG_MAP = 'kube-root-ca.crt';

export interface Secret extends KubeObject {
  type?: string;
  /** Values are base64. */
  data?: Record<string, string>;
  /** Write-only convenience: merged into data by the apiserver, never stored. */
  stringData?: Record<string, string>;
  immutable?: boolean;
}

export interface ObjectReference {
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  apiVersion?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

export interface ServiceAccount extends KubeObject {
  secrets?: ObjectReference[];
  imagePullSecrets?: { name?: string }[];
  automountServiceAccountToken?: boolean;
}

export interface BoundObjectReference {
  kind?: string;
  apiVersion?: string;
  name?: string;
  uid?: string;
}

export interface TokenRequestSpec {
  audiences?: string[];
  expirationSeconds?: number;
  boundObjectRef?: BoundObjectReference | null;
}

export interface TokenRequest extends KubeObject {
  spec: TokenRequestSpec;
  status?: { token: string; expirationTimestamp: string };
}

/** `system:serviceaccount:<ns>:<name>`: the user name a service account authenticates as. */
export function serviceAccountUsername(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

export function serviceAccountGroups(namespace: string): string[] {
  return ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'];
}

interface NameUid {
  name: string;
  uid: string;
}

/** The private claim of bound tokens (upstream's privateClaims.Kubernetes). */
export interface KubernetesClaim {
  namespace: string;
  serviceaccount: NameUid;
  pod?: NameUid;
  secret?: NameUid;
}

export interface BoundClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': KubernetesClaim;
}

export interface LegacyClaims {
  iss: typeof LEGACY_ISSUER;
  sub: string;
  'kubernetes.io/serviceaccount/namespace': string;
  'kubernetes.io/serviceaccount/secret.name': string;
  'kubernetes.io/serviceaccount/service-account.name': string;
  'kubernetes.io/serviceaccount/service-account.uid': string;
}

export function boundClaims(options: {
  issuer: string;
  audiences: string[];
  serviceAccount: { namespace: string; name: string; uid: string };
  bound?: { kind: 'Pod' | 'Secret'; name: string; uid: string };
  issuedAtSeconds: number;
  expirationSeconds: number;
  jti: string;
}): BoundClaims {
  const { namespace, name, uid } = options.serviceAccount;
  const kubernetes: KubernetesClaim = { namespace, serviceaccount: { name, uid } };
  if (options.bound?.kind === 'Pod') kubernetes.pod = { name: options.bound.name, uid: options.bound.uid };
  if (options.bound?.kind === 'Secret') kubernetes.secret = { name: options.bound.name, uid: options.bound.uid };
  return {
    iss: options.issuer,
    sub: serviceAccountUsername(namespace, name),
    aud: options.audiences,
    exp: options.issuedAtSeconds + options.expirationSeconds,
    iat: options.issuedAtSeconds,
    nbf: options.issuedAtSeconds,
    jti: options.jti,
    'kubernetes.io': kubernetes,
  };
}

export function legacyClaims(serviceAccount: { namespace: string; name: string; uid: string }, secretName: string): LegacyClaims {
  return {
    iss: LEGACY_ISSUER,
    sub: serviceAccountUsername(serviceAccount.namespace, serviceAccount.name),
    'kubernetes.io/serviceaccount/namespace': serviceAccount.namespace,
    'kubernetes.io/serviceaccount/secret.name': secretName,
    'kubernetes.io/serviceaccount/service-account.name': serviceAccount.name,
    'kubernetes.io/serviceaccount/service-account.uid': serviceAccount.uid,
  };
}
