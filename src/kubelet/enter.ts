/**
 * How anything that runs "in a container" gets there: exec probes, `kubectl exec`, and
 * whatever else the kubelet runs on a container's behalf.
 *
 * A container is a process tree with its own mount and UTS namespaces inside the pod's
 * network namespace (see mounts.ts). Joining those three namespaces of its main process with
 * util-linux `nsenter` gives the command the container's /etc/resolv.conf, /etc/hosts,
 * hostname and volumes, and the pod's network. nsenter execs the command in place (no fork
 * for these namespaces), so the pid a caller holds is the command's own and signals reach it.
 *
 * The pid is the container's main process (ContainerRecord.pid): the namespaces live as long
 * as it does, so a caller must hold a running container, not a record of an exited one.
 */

/** Namespaces of a container that a command joins; all three by default. */
export interface EnterNamespaces {
  mount?: boolean;
  uts?: boolean;
  net?: boolean;
  /** Directory inside the container to run in (nsenter --wd, resolved after joining). */
  workingDir?: string;
}

/**
 * argv that runs `command` inside the namespaces of the container whose main process is
 * `pid`: `nsenter --target <pid> --mount --uts --net -- <command...>`.
 */
export function enterContainerArgv(pid: number, command: readonly string[], namespaces: EnterNamespaces = {}): string[] {
  const flags: string[] = [];
  if (namespaces.mount ?? true) flags.push('--mount');
  if (namespaces.uts ?? true) flags.push('--uts');
  if (namespaces.net ?? true) flags.push('--net');
  if (namespaces.workingDir) flags.push(`--wd=${namespaces.workingDir}`);
  return ['nsenter', '--target', String(pid), ...flags, '--', ...command];
}
