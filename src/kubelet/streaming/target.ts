/**
 * What the streaming server asks the pod runtime: a running container's process (exec,
 * attach) or a pod's network namespace (port-forward). The runtime answers with the target
 * or with the HTTP code and message upstream's kubelet gives.
 */
import type { Container } from '../../api/types.js';

export type Lookup<T> = { ok: true; target: T } | { ok: false; code: number; message: string };

export interface ContainerTarget {
  namespace: string;
  pod: string;
  container: Container;
  /** The container's main process, whose namespaces an exec enters. */
  pid: number;
  /** The current run's log file (attach reads stdout/stderr from it) and whether the run goes on. */
  log?: { path: string; active: () => boolean };
  /** A fifo the container reads as stdin, when it was started with `stdin: true`. */
  stdinPath?: string;
}

export interface PodNetworkTarget {
  namespace: string;
  pod: string;
  /** Named network namespace to connect from; undefined is the kubelet's own (hostNetwork). */
  netns: string | undefined;
}

export interface StreamTargets {
  container(namespace: string, pod: string, container: string): Lookup<ContainerTarget>;
  podNetwork(namespace: string, pod: string): Lookup<PodNetworkTarget>;
}
