/**
 * What a container process is given: its argv (Kubernetes' command/args rules, with no image
 * to supply an entrypoint) and its environment, built in the kubelet's order
 * (makeEnvironmentVariables): envFrom sources, then env (value with `$(VAR)` expansion,
 * fieldRef, configMapKeyRef, secretKeyRef), then the service env (KUBERNETES_SERVICE_HOST/PORT
 * from `default/kubernetes` always, and the docker-link variables of the pod's namespace's
 * Services when enableServiceLinks is not false) for names not already set, plus PATH and
 * HOSTNAME as a runtime sets them.
 */
import { cpus, totalmem } from 'node:os';
import type { Container, Pod, Service } from '../api/types.js';
import { ContainerConfigError } from './config-error.js';
import { type NodeAllocatable, resourceFieldValue } from './resource-field.js';
import type { PodObjectSource } from './sources.js';

export { ContainerConfigError } from './config-error.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const NO_COMMAND_MESSAGE = 'no command: images are not pulled, give command';

export interface EnvContext {
  pod: Pod;
  podIPs: readonly string[];
  hostIPs: readonly string[];
  nodeName: string;
  /** The hostname the container's UTS namespace carries (HOSTNAME). */
  hostname?: string;
  /** ConfigMaps, Secrets and Services; without it those references are missing objects. */
  objects?: PodObjectSource;
  /** What an unset limit means for resourceFieldRef. */
  allocatable?: NodeAllocatable;
}

/**
 * `$(VAR)` expansion as Kubernetes does it (third_party/forked/golang/expansion): a known
 * name is replaced, an unknown reference stays as written, `$$` is a literal `$`.
 */
export function expandVars(input: string, vars: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      out += vars.get(name) ?? `$(${name})`;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

export function fieldValue(path: string, ctx: Pick<EnvContext, 'pod' | 'podIPs' | 'hostIPs' | 'nodeName'>): string {
  const { pod } = ctx;
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (keyed) {
    const map = keyed[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations;
    return map?.[keyed[2] ?? ''] ?? '';
  }
  switch (path) {
    case 'metadata.name':
      return pod.metadata.name ?? '';
    case 'metadata.namespace':
      return pod.metadata.namespace ?? 'default';
    case 'metadata.uid':
      return pod.metadata.uid ?? '';
    case 'spec.nodeName':
      return pod.spec.nodeName ?? ctx.nodeName;
    case 'spec.serviceAccountName':
    case 'spec.serviceAccount':
      return pod.spec.serviceAccountName ?? 'default';
    case 'status.podIP':
      return ctx.podIPs[0] ?? '';
    case 'status.podIPs':
      return ctx.podIPs.join(',');
    case 'status.hostIP':
      return ctx.hostIPs[0] ?? '';
    case 'status.hostIPs':
      return ctx.hostIPs.join(',');
    default:
      throw new ContainerConfigError(`unsupported fieldRef fieldPath "${path}"`);
  }
}

function decodeSecret(data: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]));
}

/** The node's allocatable as node.ts reports it (all of the machine). */
export function nodeAllocatable(): NodeAllocatable {
  return { cpu: String(cpus().length), memory: totalmem(), 'ephemeral-storage': 0 };
}

/** `my-svc` → `MY_SVC`, as upstream's makeEnvVariableName. */
function serviceEnvName(name: string): string {
  return name.toUpperCase().replace(/-/g, '_');
}

/** The docker-link variables of one ClusterIP Service (upstream pkg/kubelet/envvars). */
export function serviceLinkEnv(service: Service): [string, string][] {
  const ip = service.spec.clusterIP;
  if (!ip || ip === 'None' || (service.spec.ports ?? []).length === 0) return [];
  const name = serviceEnvName(service.metadata.name ?? '');
  const ports = service.spec.ports ?? [];
  const first = ports[0];
  const out: [string, string][] = [
    [`${name}_SERVICE_HOST`, ip],
    [`${name}_SERVICE_PORT`, String(first?.port ?? '')],
  ];
  for (const port of ports) if (port.name) out.push([`${name}_SERVICE_PORT_${serviceEnvName(port.name)}`, String(port.port)]);
  const url = (port: { port: number; protocol?: string }): string => `${(port.protocol ?? 'TCP').toLowerCase()}://${ip.includes(':') ? `[${ip}]` : ip}:${port.port}`;
  if (first) out.push([`${name}_PORT`, url(first)]);
  for (const port of ports) {
    const protocol = port.protocol ?? 'TCP';
    const prefix = `${name}_PORT_${port.port}_${protocol}`;
    out.push([prefix, url(port)], [`${prefix}_PROTO`, protocol.toLowerCase()], [`${prefix}_PORT`, String(port.port)], [`${prefix}_ADDR`, ip]);
  }
  return out;
}

/** upstream getServiceEnvVarMap: the master Service always, the namespace's with links on. */
function serviceEnv(ctx: EnvContext): Map<string, string> {
  const namespace = ctx.pod.metadata.namespace ?? 'default';
  const services = ctx.objects?.services;
  const env = new Map<string, string>();
  if (!services) return env;
  // The master Service first, so a namespace's own `kubernetes` Service wins, as upstream.
  const chosen: Service[] = services('default').filter((s) => s.metadata.name === 'kubernetes');
  if (ctx.pod.spec.enableServiceLinks !== false) chosen.push(...services(namespace));
  for (const service of chosen) for (const [key, value] of serviceLinkEnv(service)) env.set(key, value);
  return env;
}

async function keyFrom(kind: 'ConfigMap' | 'Secret', ref: { name: string; key: string; optional?: boolean }, ctx: EnvContext): Promise<string | undefined> {
  const namespace = ctx.pod.metadata.namespace ?? 'default';
  const data = kind === 'ConfigMap' ? (await ctx.objects?.configMap(namespace, ref.name))?.data : decodeSecret((await ctx.objects?.secret(namespace, ref.name))?.data);
  const found = data?.[ref.key];
  if (found === undefined && !ref.optional) {
    throw new ContainerConfigError(data === undefined ? `${kind.toLowerCase()} "${ref.name}" not found` : `couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}`);
  }
  return found;
}

/** The container's environment, in the order Kubernetes builds it. */
export async function containerEnv(container: Container, ctx: EnvContext): Promise<Record<string, string>> {
  const namespace = ctx.pod.metadata.namespace ?? 'default';
  const services = serviceEnv(ctx);
  const defined = new Map<string, string>();
  for (const source of container.envFrom ?? []) {
    let data: Record<string, string> | undefined;
    let optional = false;
    let what = '';
    if (source.configMapRef) {
      data = (await ctx.objects?.configMap(namespace, source.configMapRef.name))?.data;
      optional = source.configMapRef.optional === true;
      what = `configmap "${source.configMapRef.name}" not found`;
    } else if (source.secretRef) {
      const secret = await ctx.objects?.secret(namespace, source.secretRef.name);
      data = secret ? decodeSecret(secret.data) : undefined;
      optional = source.secretRef.optional === true;
      what = `secret "${source.secretRef.name}" not found`;
    }
    if (data === undefined) {
      if (!optional) throw new ContainerConfigError(what);
      continue;
    }
    // Keys that are not valid variable names are skipped (upstream records an event).
    for (const [key, value] of Object.entries(data)) {
      const name = `${source.prefix ?? ''}${key}`;
      if (/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(name)) defined.set(name, value);
    }
  }
  // $(VAR) sees what is defined so far and the service env, as upstream's mapping function.
  const lookup = (): Map<string, string> => new Map([...services, ...defined]);
  for (const variable of container.env ?? []) {
    let value: string;
    const from = variable.valueFrom;
    if (from?.fieldRef) {
      value = fieldValue(from.fieldRef.fieldPath, ctx);
    } else if (from?.configMapKeyRef || from?.secretKeyRef) {
      const found = from.configMapKeyRef ? await keyFrom('ConfigMap', from.configMapKeyRef, ctx) : await keyFrom('Secret', from.secretKeyRef ?? { name: '', key: '' }, ctx);
      if (found === undefined) continue;
      value = found;
    } else if (from?.resourceFieldRef) {
      const ref = from.resourceFieldRef;
      const target = ref.containerName ? [...ctx.pod.spec.containers, ...(ctx.pod.spec.initContainers ?? [])].find((c) => c.name === ref.containerName) : container;
      value = resourceFieldValue(ref, target, ctx.allocatable ?? nodeAllocatable());
    } else if (from) {
      throw new ContainerConfigError(`env ${variable.name}: valueFrom has no source`);
    } else {
      value = expandVars(variable.value ?? '', lookup());
    }
    defined.set(variable.name, value);
  }
  for (const [key, value] of services) if (!defined.has(key)) defined.set(key, value);
  // A hostNetwork pod shares the node's UTS namespace in Kubernetes, so its hostname is the node's.
  const hostname = ctx.hostname ?? (ctx.pod.spec.hostNetwork ? ctx.nodeName : (ctx.pod.metadata.name ?? ''));
  return { PATH: DEFAULT_PATH, HOSTNAME: hostname, ...Object.fromEntries(defined) };
}

/**
 * argv from command/args: command replaces the image's entrypoint and args are appended;
 * args alone run as the command (there is no image entrypoint to prepend); with neither
 * there is nothing to run. `$(VAR)` in both expands from the container's env.
 */
export function containerArgv(container: Container, env: Readonly<Record<string, string>>): string[] | undefined {
  const vars = new Map(Object.entries(env));
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map((part) => expandVars(part, vars));
  return argv.length > 0 ? argv : undefined;
}
