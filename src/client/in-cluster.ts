/**
 * In-cluster configuration, as client-go's rest.InClusterConfig: the apiserver at
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the pod's ServiceAccount token
 * and the cluster CA from the projected volume. The token is re-read on every use upstream
 * (it rotates); our daemons build a client once, and a restarted pod gets a fresh one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PontoonError } from '../lib/errors.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export class InClusterConfigError extends PontoonError {}

export interface InClusterConfig {
  server: string;
  token: string;
  ca?: string;
}

/** True when the environment looks like a pod's (upstream's test before InClusterConfig). */
export function runningInCluster(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env['KUBERNETES_SERVICE_HOST'] && !!env['KUBERNETES_SERVICE_PORT'];
}

export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): InClusterConfig {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) throw new InClusterConfigError('unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined');
  const tokenFile = join(dir, 'token');
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (err) {
    throw new InClusterConfigError(`failed to read the service account token "${tokenFile}": ${(err as Error).message}`, { cause: err });
  }
  const caFile = join(dir, 'ca.crt');
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { server, token, ...(existsSync(caFile) ? { ca: readFileSync(caFile, 'utf8') } : {}) };
}
