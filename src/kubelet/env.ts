/**
 * What a container process is given: its argv (Kubernetes' command/args rules, with no image
 * to supply an entrypoint) and its environment (explicit env, fieldRef and configMapKeyRef
 * values, `$(VAR)` expansion, plus PATH and HOSTNAME as a runtime would set them).
 */
import type { Container, Pod } from '../api/types.js';
import { PontoonError } from '../lib/errors.js';

/** The container's config cannot be built (Kubernetes: CreateContainerConfigError). */
export class ContainerConfigError extends PontoonError {}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const NO_COMMAND_MESSAGE = 'no command: images are not pulled, give command';

export interface EnvContext {
  pod: Pod;
  podIPs: readonly string[];
  hostIPs: readonly string[];
  nodeName: string;
  /** Reads a ConfigMap key; undefined when the map or key is missing. */
  configMapKey?: (namespace: string, name: string, key: string) => Promise<string | undefined>;
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

function fieldValue(path: string, ctx: EnvContext): string {
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

/** The container's environment, in the order Kubernetes builds it. */
export async function containerEnv(container: Container, ctx: EnvContext): Promise<Record<string, string>> {
  const defined = new Map<string, string>();
  for (const variable of container.env ?? []) {
    let value: string;
    if (variable.valueFrom?.fieldRef) {
      value = fieldValue(variable.valueFrom.fieldRef.fieldPath, ctx);
    } else if (variable.valueFrom?.configMapKeyRef) {
      const ref = variable.valueFrom.configMapKeyRef;
      const found = ctx.configMapKey ? await ctx.configMapKey(ctx.pod.metadata.namespace ?? 'default', ref.name, ref.key) : undefined;
      if (found === undefined && !ref.optional) {
        throw new ContainerConfigError(`couldn't find key ${ref.key} in ConfigMap ${ctx.pod.metadata.namespace ?? 'default'}/${ref.name}`);
      }
      if (found === undefined) continue;
      value = found;
    } else if (variable.valueFrom) {
      throw new ContainerConfigError(`env ${variable.name}: only fieldRef and configMapKeyRef are supported in valueFrom`);
    } else {
      value = expandVars(variable.value ?? '', defined);
    }
    defined.set(variable.name, value);
  }
  // A hostNetwork pod shares the node's UTS namespace in Kubernetes, so its hostname is the node's.
  const hostname = ctx.pod.spec.hostNetwork ? ctx.nodeName : (ctx.pod.metadata.name ?? '');
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
