/**
 * What a pod makes its node read: the Secrets, ConfigMaps and ServiceAccount its volumes,
 * env, envFrom and imagePullSecrets name (upstream's node graph edges, walked per request
 * here instead of kept as a graph: a lab has tens of pods, not tens of thousands).
 */
import type { KubeObject } from '../../api/meta.js';
import { asArray, asObject, asString } from '../kinds/values.js';

export interface PodReferences {
  secrets: Set<string>;
  configMaps: Set<string>;
  serviceAccount: string;
}

function add(set: Set<string>, value: unknown): void {
  const name = asString(value);
  if (name) set.add(name);
}

export function podReferences(pod: KubeObject): PodReferences {
  const refs: PodReferences = { secrets: new Set(), configMaps: new Set(), serviceAccount: 'default' };
  const spec = asObject(pod['spec']) ?? {};
  refs.serviceAccount = asString(spec['serviceAccountName']) || asString(spec['serviceAccount']) || 'default';
  for (const item of asArray(spec['imagePullSecrets']) ?? []) add(refs.secrets, asObject(item)?.['name']);
  for (const volume of asArray(spec['volumes']) ?? []) {
    const v = asObject(volume) ?? {};
    add(refs.secrets, asObject(v['secret'])?.['secretName']);
    add(refs.configMaps, asObject(v['configMap'])?.['name']);
    for (const source of asArray(asObject(v['projected'])?.['sources']) ?? []) {
      const s = asObject(source) ?? {};
      add(refs.secrets, asObject(s['secret'])?.['name']);
      add(refs.configMaps, asObject(s['configMap'])?.['name']);
    }
  }
  for (const list of ['containers', 'initContainers', 'ephemeralContainers']) {
    for (const container of asArray(spec[list]) ?? []) {
      const c = asObject(container) ?? {};
      for (const env of asArray(c['env']) ?? []) {
        const from = asObject(asObject(env)?.['valueFrom']) ?? {};
        add(refs.secrets, asObject(from['secretKeyRef'])?.['name']);
        add(refs.configMaps, asObject(from['configMapKeyRef'])?.['name']);
      }
      for (const envFrom of asArray(c['envFrom']) ?? []) {
        const e = asObject(envFrom) ?? {};
        add(refs.secrets, asObject(e['secretRef'])?.['name']);
        add(refs.configMaps, asObject(e['configMapRef'])?.['name']);
      }
    }
  }
  return refs;
}
