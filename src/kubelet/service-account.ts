/**
 * The ServiceAccount token volume, as upstream's ServiceAccount admission plugin adds it to
 * a pod: a projected volume `kube-api-access-<5 chars>` holding `token` (a TokenRequest
 * bound to the pod, 3607 s), `ca.crt` (ConfigMap kube-root-ca.crt) and `namespace` (the
 * downward API), mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in
 * every container and init container.
 *
 * The kubelet adds it to its own view of a pod when the pod arrived without it (an
 * apiserver without that admission step) and automountServiceAccountToken is not false;
 * a pod that already has a mount at that path, or the volume, is left as it is, so an
 * apiserver that does the admission step and this one never stack two.
 */
import { createHash } from 'node:crypto';
import type { Container, Pod, Volume } from '../api/types.js';
import { SERVICE_ACCOUNT_MOUNT_PATH } from './volumes.js';

export const SERVICE_ACCOUNT_VOLUME_PREFIX = 'kube-api-access-';
/** 1 h plus 7 s: upstream's value, which lets the apiserver tell kubelet-requested tokens. */
export const SERVICE_ACCOUNT_TOKEN_SECONDS = 3607;
const ROOT_CA_CONFIG_MAP = 'kube-root-ca.crt';
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** Five characters from upstream's generateName alphabet, stable for a pod uid. */
function suffix(uid: string): string {
  const digest = createHash('sha256').update(uid).digest();
  return [...digest.subarray(0, 5)].map((byte) => NAME_ALPHABET[byte % NAME_ALPHABET.length]).join('');
}

export function serviceAccountVolume(name: string): Volume {
  return {
    name,
    projected: {
      defaultMode: 0o644,
      sources: [
        { serviceAccountToken: { expirationSeconds: SERVICE_ACCOUNT_TOKEN_SECONDS, path: 'token' } },
        { configMap: { name: ROOT_CA_CONFIG_MAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

function hasTokenMount(containers: readonly Container[]): boolean {
  return containers.some((c) => (c.volumeMounts ?? []).some((m) => m.mountPath.replace(/\/+$/, '') === SERVICE_ACCOUNT_MOUNT_PATH));
}

/** The pod with the token volume and mounts added, or the pod itself when it needs none. */
export function withServiceAccountVolume(pod: Pod): Pod {
  if (pod.spec.automountServiceAccountToken === false) return pod;
  const containers = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
  if (hasTokenMount(containers) || (pod.spec.volumes ?? []).some((v) => v.name.startsWith(SERVICE_ACCOUNT_VOLUME_PREFIX))) return pod;
  const name = `${SERVICE_ACCOUNT_VOLUME_PREFIX}${suffix(pod.metadata.uid ?? pod.metadata.name ?? '')}`;
  const mount = (c: Container): Container => ({ ...c, volumeMounts: [...(c.volumeMounts ?? []), { name, mountPath: SERVICE_ACCOUNT_MOUNT_PATH, readOnly: true }] });
  const spec = { ...pod.spec, volumes: [...(pod.spec.volumes ?? []), serviceAccountVolume(name)], containers: pod.spec.containers.map(mount) };
  if (pod.spec.initContainers) spec.initContainers = pod.spec.initContainers.map(mount);
  return { ...pod, spec };
}
