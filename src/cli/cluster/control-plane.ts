/**
 * The Kubernetes side of a lab cluster. The control plane (apiserver, controller-manager,
 * scheduler) runs in the root namespace as plain processes: it needs no network of its own,
 * kubectl reaches the apiserver on 127.0.0.1 over TLS, and node namespaces reach it through
 * its unix socket, because a path-named AF_UNIX socket is not bound to a network namespace.
 * Every daemon authenticates with its own token from the static tokens file; the admin
 * token and the cluster CA go into the kubeconfig that `cluster up` prints.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify as toYaml } from 'yaml';
import { KubeClient } from '../../client/client.js';
import { ensurePki } from '../../apiserver/pki.js';
import { PontoonError } from '../../lib/errors.js';
import { startDetached } from '../../lib/exec.js';
import { cniDistDir } from '../paths.js';

export class ControlPlaneError extends PontoonError {}

export interface ControlPlaneState {
  url: string;
  socket: string;
  kubeconfig: string;
  tokensFile: string;
  /** Each daemon's pid, and its command line so `cluster restart` starts it again exactly as before. */
  pids: Record<ControlPlaneComponent, number>;
  /** The CA that signed the apiserver's certificate (PEM path). */
  caFile: string;
  argv: Record<ControlPlaneComponent, string[]>;
}

export const CONTROL_PLANE_COMPONENTS = ['apiserver', 'controller-manager', 'scheduler'] as const;
export type ControlPlaneComponent = (typeof CONTROL_PLANE_COMPONENTS)[number];

/** The identities that get a token: kubectl's admin, the control-plane daemons, one per node. */
export interface Identity {
  user: string;
  groups: string[];
}

export function identities(nodeNames: readonly string[]): Identity[] {
  return [
    { user: 'admin', groups: ['system:masters'] },
    { user: 'system:kube-controller-manager', groups: [] },
    { user: 'system:kube-scheduler', groups: [] },
    ...nodeNames.map((node) => ({ user: `system:node:${node}`, groups: ['system:nodes'] })),
  ];
}

/** Writes the tokens CSV (Kubernetes' static token file format); returns user → token. */
export function writeTokensFile(path: string, users: readonly Identity[]): Map<string, string> {
  const tokens = new Map<string, string>();
  const lines = users.map((identity, index) => {
    const token = randomBytes(24).toString('hex');
    tokens.set(identity.user, token);
    return `${token},${identity.user},uid-${index},"${identity.groups.join(',')}"`;
  });
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  return tokens;
}

export function readTokens(path: string): Map<string, string> {
  const tokens = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const [token, user] = line.split(',');
    if (token && user) tokens.set(user, token);
  }
  return tokens;
}

/** A kubeconfig as kubectl reads it (YAML), for one server and one token. */
export function kubeconfigText(options: { cluster: string; server: string; token: string; caPem?: string }): string {
  const cluster: Record<string, unknown> = { server: options.server };
  if (options.caPem) cluster['certificate-authority-data'] = Buffer.from(options.caPem).toString('base64');
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': options.cluster,
    clusters: [{ name: options.cluster, cluster }],
    users: [{ name: `${options.cluster}-user`, user: { token: options.token } }],
    contexts: [{ name: options.cluster, context: { cluster: options.cluster, user: `${options.cluster}-user`, namespace: 'default' } }],
  });
}

/** 6443 when free (the default cluster), else any free loopback port. */
export async function pickApiserverPort(preferred = 6443): Promise<number> {
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address ? address.port : undefined;
        server.close(() => resolve(bound));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0)) ?? preferred;
}

/** The last lines of a daemon's log, for error messages ("(no log)" when there is none). */
export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface ControlPlaneOptions {
  clusterName: string;
  stateDir: string;
  cli: readonly string[];
  nodeNames: readonly string[];
  /** `sqlite:<path>` (default) or `etcd://...`. */
  store: string;
  clusterCidr: string;
  nodeCidrMaskSize: number;
  port?: number;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlaneState> {
  const { stateDir, cli } = options;
  const port = options.port ?? (await pickApiserverPort());
  const url = `https://127.0.0.1:${port}`;
  const socket = join(stateDir, 'apiserver.sock');
  const tokensFile = join(stateDir, 'tokens.csv');
  const tokens = writeTokensFile(tokensFile, identities(options.nodeNames));
  const pki = ensurePki(join(stateDir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });

  const apiserverArgv = [
    ...cli,
    'apiserver',
    '--store', options.store,
    '--listen', `127.0.0.1:${port}`,
    '--socket', socket,
    '--tokens-file', tokensFile,
    '--tls-cert', pki.certPath,
    '--tls-key', pki.keyPath,
  ];
  const apiserverPid = startDetached(apiserverArgv, join(stateDir, 'apiserver.log'));
  const kubeconfig = join(stateDir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigText({ cluster: options.clusterName, server: url, token: tokens.get('admin') ?? '', caPem: pki.caPem }), { mode: 0o600 });
  await waitForApiserver(new KubeClient({ server: `unix:${socket}`, token: tokens.get('admin') ?? '' }), join(stateDir, 'apiserver.log'));

  const daemonKubeconfig = (user: string, name: string): string => {
    const path = join(stateDir, `${name}.kubeconfig`);
    writeFileSync(path, kubeconfigText({ cluster: options.clusterName, server: `unix:${socket}`, token: tokens.get(user) ?? '' }), { mode: 0o600 });
    return path;
  };
  const controllerManagerArgv = [
    ...cli,
    'controller-manager',
    '--kubeconfig', daemonKubeconfig('system:kube-controller-manager', 'controller-manager'),
    '--cluster-cidr', options.clusterCidr,
    '--node-cidr-mask-size', String(options.nodeCidrMaskSize),
  ];
  const controllerManagerPid = startDetached(controllerManagerArgv, join(stateDir, 'controller-manager.log'));
  const schedulerArgv = [...cli, 'scheduler', '--kubeconfig', daemonKubeconfig('system:kube-scheduler', 'scheduler')];
  const schedulerPid = startDetached(schedulerArgv, join(stateDir, 'scheduler.log'));
  return {
    url,
    socket,
    kubeconfig,
    tokensFile,
    pids: { apiserver: apiserverPid, 'controller-manager': controllerManagerPid, scheduler: schedulerPid },
    caFile: pki.caCertPath,
    argv: { apiserver: apiserverArgv, 'controller-manager': controllerManagerArgv, scheduler: schedulerArgv },
  };
}

/** Starts `component` again with its recorded command line; waits for an apiserver to be ready. */
export async function startComponent(state: ControlPlaneState, stateDir: string, component: ControlPlaneComponent): Promise<number> {
  const logFile = join(stateDir, `${component}.log`);
  const pid = (state.pids[component] = startDetached(state.argv[component], logFile));
  if (component === 'apiserver') {
    await waitForApiserver(new KubeClient({ server: `unix:${state.socket}`, token: readTokens(state.tokensFile).get('admin') ?? '' }), logFile);
  }
  return pid;
}

/** The kubeconfig a node's daemons (kubelet, flanneld) use: the unix socket and the node's token. */
export function writeNodeKubeconfig(controlPlane: ControlPlaneState, clusterName: string, nodeName: string, path: string): string {
  const token = readTokens(controlPlane.tokensFile).get(`system:node:${nodeName}`);
  if (!token) throw new ControlPlaneError(`no token for node ${nodeName} in ${controlPlane.tokensFile}`);
  writeFileSync(path, kubeconfigText({ cluster: clusterName, server: `unix:${controlPlane.socket}`, token }), { mode: 0o600 });
  return path;
}

export function kubeletArgs(options: {
  cli: readonly string[];
  kubeconfig: string;
  nodeName: string;
  nodeIp: string;
  cniConfDir: string;
  rootDir: string;
  netnsPrefix: string;
}): string[] {
  return [
    ...options.cli,
    'kubelet',
    '--kubeconfig', options.kubeconfig,
    '--node-name', options.nodeName,
    '--node-ip', options.nodeIp,
    '--cni-conf-dir', options.cniConfDir,
    '--cni-bin-dir', cniDistDir(),
    '--root-dir', options.rootDir,
    '--netns-prefix', options.netnsPrefix,
  ];
}

async function waitForApiserver(client: KubeClient, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await client.requestText('GET', '/readyz');
      return;
    } catch (err) {
      lastError = err;
    }
    await sleep(100);
  }
  throw new ControlPlaneError(`the apiserver did not become ready in ${timeoutMs} ms: ${String(lastError)}\n${logTail(logFile)}`);
}
