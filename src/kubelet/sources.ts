/**
 * What the kubelet reads from the apiserver on a pod's behalf: ConfigMaps and Secrets for
 * volumes and env, ServiceAccount tokens (TokenRequest) for the projected token, Services
 * for the docker-link env. An interface so the runtime runs without a client (tests feed
 * it directly) and the node agent answers from its API client.
 */
import type { ConfigMap, Service } from '../api/types.js';

/** The part of a v1 Secret the kubelet uses: `data` values are base64. */
export interface SecretPayload {
  data?: Record<string, string>;
}

export interface TokenRequestSpec {
  audiences: string[];
  expirationSeconds: number;
  podName: string;
  podUid: string;
}

export interface IssuedToken {
  token: string;
  /** RFC 3339, from status.expirationTimestamp. */
  expirationTimestamp: string;
}

export interface PodObjectSource {
  /** undefined when the object does not exist. */
  configMap(namespace: string, name: string): Promise<ConfigMap | undefined>;
  secret(namespace: string, name: string): Promise<SecretPayload | undefined>;
  /** POST serviceaccounts/<name>/token; absent when the cluster has no TokenRequest. */
  requestToken?(namespace: string, serviceAccount: string, spec: TokenRequestSpec): Promise<IssuedToken>;
  /** Services of a namespace as the kubelet's informer has them (for service links). */
  services?(namespace: string): readonly Service[];
}
