/**
 * The Kubernetes side of a lab cluster. The control plane (apiserver, controller-manager,
 * scheduler) runs in the root namespace as plain processes: kubectl reaches the apiserver on
 * 127.0.0.1 over TLS, and the node daemons run as processes reach it through its unix socket,
 * because a path-named AF_UNIX socket is not bound to a network namespace. Pods need an IP
 * address: the apiserver also listens in the `ctl` namespace on the fabric (198.18.0.2:6443),
 * a socket it binds while inside that namespace, and advertises it as the `kubernetes`
 * Service's endpoint — so 10.96.0.1:443 DNATs there and the root namespace's network is
 * never touched. (Running the apiserver itself in ctl would need a second listener back in
 * the root namespace for kubectl anyway; binding one socket in ctl is the smaller change.)
 * Every daemon authenticates with its own token from the static tokens file, as the identity
 * upstream gives it (system:kube-controller-manager, system:kube-scheduler, system:kube-proxy,
 * system:node:<name> in system:nodes), so the bootstrap RBAC roles and the Node authorizer
 * apply to it; the admin token (system:masters) and the cluster CA go into the kubeconfig
 * that `cluster up` prints.
 *
 * Nodes (`--control-plane-access network`, the default) reach the apiserver only as a node
 * on another host would: `https://198.18.0.2:6443` on the fabric with the cluster CA, and
 * the apiserver reaches their kubelets the same way back (InternalIP:10250, TLS, its
 * kubelet-client certificate), dialling from the ctl namespace. `socket` keeps the
 * single-host shortcut: node kubeconfigs name the unix socket. kubectl on the host keeps
 * 127.0.0.1 either way, so the root namespace never needs a route to the fabric.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeClient } from '../../client/client.js';
import { ensureControlPlanePki, identities, kubeconfigText, readTokens, writeTokensFile } from '../control-plane-files.js';
import { PontoonError } from '../../lib/errors.js';
import { startDetached } from '../../lib/exec.js';
import { cniDistDir } from '../paths.js';
import { type ApiserverReplica, checkApiserverCount, planReplica, socketServers, startReplica } from './apiservers.js';

export class ControlPlaneError extends PontoonError {}

// Moved a layer down so `pontoon init` (a real control-plane host) writes the same files.
export { identities, type Identity, kubeconfigText, KUBELET_CLIENT_IDENTITY, KUBERNETES_SERVICE_IP, readTokens, writeTokensFile } from '../control-plane-files.js';

export const CONTROL_PLANE_COMPONENTS = ['apiserver', 'controller-manager', 'scheduler'] as const;
export type ControlPlaneComponent = (typeof CONTROL_PLANE_COMPONENTS)[number];

export interface ControlPlaneState {
  url: string;
  socket: string;
  kubeconfig: string;
  tokensFile: string;
  /** Each daemon's pid, and its command line so `cluster restart` starts it again exactly as before. */
  pids: Record<ControlPlaneComponent, number>;
  /** The CA that signed the apiserver's certificate (PEM path). */
  caFile: string;
  /** `https://198.18.0.2:6443`: where pods and DaemonSet agents reach the apiserver over the fabric. */
  fabricUrl?: string;
  argv: Record<ControlPlaneComponent, string[]>;
  /** `--apiservers N`: the apiservers after the first (apiservers.ts). */
  replicas?: ApiserverReplica[];
  /** How nodes reach the apiserver (absent in state files of older labs: socket). */
  access?: ControlPlaneAccess;
  /** The CA's private key: the lab signs each node's kubelet serving certificate with it. */
  caKeyFile?: string;
}

/** `network`: nodes use https://<ctl>:6443 and the cluster CA; `socket`: the apiserver's unix socket (one host). */
export const CONTROL_PLANE_ACCESS = ['network', 'socket'] as const;
export type ControlPlaneAccess = (typeof CONTROL_PLANE_ACCESS)[number];

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

/**
 * Where a lab's controller-manager or scheduler serves /metrics and /healthz: a unix socket in
 * the state dir, because they run in the root namespace, where several labs side by side
 * would fight over 10257 and 10259.
 */
export function telemetrySocket(stateDir: string, component: 'controller-manager' | 'scheduler'): string {
  return join(stateDir, `${component}-metrics.sock`);
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
  /** One pod network, or `v4,v6` for dual-stack (then node subnets are /24 and /64). */
  clusterCidr: string;
  nodeCidrMaskSize: number;
  /** `--service-cidr` (default: the apiserver's 10.96.0.0/12); `v4,v6` for dual-stack. */
  serviceCidr?: string;
  port?: number;
  /**
   * The control namespace on the fabric: the apiserver also listens there (a socket bound
   * inside it) and advertises that address as the `kubernetes` Service's endpoint.
   */
  fabric?: { netnsPath: string; address: string; port: number };
  /** How many apiservers (default 1); more than one needs an etcd store. */
  apiservers?: number;
  /** How nodes reach the apiserver; default network (needs `fabric`). */
  access?: ControlPlaneAccess;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlaneState> {
  const { stateDir, cli } = options;
  const port = options.port ?? (await pickApiserverPort());
  const url = `https://127.0.0.1:${port}`;
  const socket = join(stateDir, 'apiserver.sock');
  const tokensFile = join(stateDir, 'tokens.csv');
  const tokens = writeTokensFile(tokensFile, identities(options.nodeNames));
  const fabric = options.fabric;
  const { pki, saKey, kubeletClient } = ensureControlPlanePki(join(stateDir, 'pki'), fabric ? [fabric.address] : []);
  const access = options.access ?? 'network';
  if (access === 'network' && !fabric) throw new ControlPlaneError('--control-plane-access network needs the apiserver on the fabric (the ctl namespace)');

  const apiserverArgv = [
    ...cli,
    'apiserver',
    '--store', options.store,
    '--listen', `127.0.0.1:${port}`,
    '--socket', socket,
    '--tokens-file', tokensFile,
    '--tls-cert', pki.certPath,
    '--tls-key', pki.keyPath,
    // Joined nodes authenticate with certificates the controller-manager issues from this CA.
    '--client-ca-file', pki.caCertPath,
    ...(fabric ? ['--listen-netns', `${fabric.netnsPath}:${fabric.port}`, '--advertise-address', `${fabric.address}:${fabric.port}`] : []),
    // Kubelets are dialled from the ctl namespace: the root namespace has no route to them.
    '--kubelet-client-certificate', kubeletClient.certPath,
    '--kubelet-client-key', kubeletClient.keyPath,
    '--kubelet-certificate-authority', pki.caCertPath,
    ...(fabric ? ['--kubelet-netns', fabric.netnsPath] : []),
    '--service-account-signing-key-file', saKey.keyPath,
    '--service-account-key-file', saKey.publicKeyPath,
    ...(options.serviceCidr ? ['--service-cidr', options.serviceCidr] : []),
  ];
  checkApiserverCount(options.apiservers ?? 1, options.store);
  const apiserverPid = startDetached(apiserverArgv, join(stateDir, 'apiserver.log'));
  await waitForApiserver(new KubeClient({ server: `unix:${socket}`, token: tokens.get('admin') ?? '' }), join(stateDir, 'apiserver.log'));
  // After the first is ready, so only it bootstraps the default objects.
  const replicas: ApiserverReplica[] = [];
  for (let index = 2; index <= (options.apiservers ?? 1); index++) {
    const replica = planReplica(stateDir, apiserverArgv, index, await pickApiserverPort(0), fabric?.address);
    startReplica(replica);
    await waitForApiserver(new KubeClient({ server: `unix:${replica.socket}`, token: tokens.get('admin') ?? '' }), replica.logFile);
    replicas.push(replica);
  }
  const kubeconfig = join(stateDir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigText({ cluster: options.clusterName, server: url, token: tokens.get('admin') ?? '', caPem: pki.caPem, failoverServers: replicas.map((r) => r.url) }), { mode: 0o600 });

  const daemonKubeconfig = (user: string, name: string): string => {
    const path = join(stateDir, `${name}.kubeconfig`);
    const [first, ...others] = socketServers(socket, replicas);
    writeFileSync(path, kubeconfigText({ cluster: options.clusterName, server: first ?? '', token: tokens.get(user) ?? '', failoverServers: others }), { mode: 0o600 });
    return path;
  };
  const controllerManagerArgv = [
    ...cli,
    'controller-manager',
    '--kubeconfig', daemonKubeconfig('system:kube-controller-manager', 'controller-manager'),
    '--cluster-cidr', options.clusterCidr,
    '--node-cidr-mask-size', String(options.nodeCidrMaskSize),
    '--service-account-private-key-file', saKey.keyPath,
    '--root-ca-file', pki.caCertPath,
    '--cluster-signing-cert-file', pki.caCertPath,
    '--cluster-signing-key-file', pki.caKeyPath,
    ...(options.clusterCidr.includes(',') ? ['--node-cidr-mask-size-ipv4', '24', '--node-cidr-mask-size-ipv6', '64'] : []),
    '--metrics-bind-address', `unix:${telemetrySocket(stateDir, 'controller-manager')}`,
  ];
  const controllerManagerPid = startDetached(controllerManagerArgv, join(stateDir, 'controller-manager.log'));
  const schedulerArgv = [...cli, 'scheduler', '--kubeconfig', daemonKubeconfig('system:kube-scheduler', 'scheduler'), '--metrics-bind-address', `unix:${telemetrySocket(stateDir, 'scheduler')}`];
  const schedulerPid = startDetached(schedulerArgv, join(stateDir, 'scheduler.log'));
  return {
    url,
    socket,
    kubeconfig,
    tokensFile,
    pids: { apiserver: apiserverPid, 'controller-manager': controllerManagerPid, scheduler: schedulerPid },
    caFile: pki.caCertPath,
    caKeyFile: pki.caKeyPath,
    access,
    ...(fabric ? { fabricUrl: apiserverUrl(fabric.address, fabric.port) } : {}),
    argv: { apiserver: apiserverArgv, 'controller-manager': controllerManagerArgv, scheduler: schedulerArgv },
    ...(replicas.length > 0 ? { replicas } : {}),
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

/** `https://<ip>:<port>` (brackets for IPv6). */
export function apiserverUrl(address: string, port: number): string {
  return `https://${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/**
 * The one place that says which apiserver URL nodes are given: the fabric address in
 * network mode, the unix socket in socket mode (and for labs from before the choice).
 */
export function nodeApiserverUrl(controlPlane: ControlPlaneState): string {
  if ((controlPlane.access ?? 'socket') === 'network') {
    if (!controlPlane.fabricUrl) throw new ControlPlaneError('network access needs the apiserver on the fabric, and this control plane has no fabric address');
    return controlPlane.fabricUrl;
  }
  return `unix:${controlPlane.socket}`;
}

/**
 * A node daemon's kubeconfig for reaching the apiserver over the network: the server URL,
 * the CA that signed the apiserver's certificate (certificate-authority-data) and the
 * node's credentials (a bearer token). Written 0600. `pontoon join` writes a joined node's
 * kubeconfig with this too.
 */
export function writeNetworkKubeconfig(path: string, options: { clusterName: string; server: string; caPem: string; token: string; failoverServers?: readonly string[] }): string {
  writeFileSync(path, kubeconfigText({ cluster: options.clusterName, server: options.server, token: options.token, caPem: options.caPem, ...(options.failoverServers ? { failoverServers: options.failoverServers } : {}) }), { mode: 0o600 });
  return path;
}

/** The kubeconfig a node's daemons (kubelet, flanneld, proxy, bgp) use, with the node's token. */
export function writeNodeKubeconfig(controlPlane: ControlPlaneState, clusterName: string, nodeName: string, path: string): string {
  const token = readTokens(controlPlane.tokensFile).get(`system:node:${nodeName}`);
  if (!token) throw new ControlPlaneError(`no token for node ${nodeName} in ${controlPlane.tokensFile}`);
  return writeDaemonKubeconfig(controlPlane, clusterName, token, path);
}

/**
 * The kubeconfig of a node's service proxy, as `system:kube-proxy` (RBAC's node-proxier), the
 * way the node's own daemons reach the apiserver. Undefined when the tokens file has no such
 * token (a lab made before the identity existed): the proxy then uses the node's kubeconfig.
 */
export function writeProxyKubeconfig(controlPlane: ControlPlaneState, clusterName: string, path: string): string | undefined {
  const token = readTokens(controlPlane.tokensFile).get('system:kube-proxy');
  return token ? writeDaemonKubeconfig(controlPlane, clusterName, token, path) : undefined;
}

/** A node daemon's kubeconfig: the server nodes use (socket or fabric), its failovers, a token. */
function writeDaemonKubeconfig(controlPlane: ControlPlaneState, clusterName: string, token: string, path: string): string {
  const server = nodeApiserverUrl(controlPlane);
  // --apiservers N: the others, reached the same way (socket or fabric), to fail over to.
  const failoverServers = (controlPlane.replicas ?? []).flatMap((r) => (server.startsWith('unix:') ? [`unix:${r.socket}`] : r.fabricUrl ? [r.fabricUrl] : []));
  if (server.startsWith('unix:')) {
    writeFileSync(path, kubeconfigText({ cluster: clusterName, server, token, failoverServers }), { mode: 0o600 });
    return path;
  }
  return writeNetworkKubeconfig(path, { clusterName, server, caPem: readFileSync(controlPlane.caFile, 'utf8'), token, failoverServers });
}

export function kubeletArgs(options: {
  cli: readonly string[];
  kubeconfig: string;
  nodeName: string;
  nodeIp: string;
  cniConfDir: string;
  rootDir: string;
  netnsPrefix: string;
  /** default: the built plugins in dist/cni */
  cniBinDir?: string;
  /** more flags (daemonset mode: the node's host filesystem, cluster DNS) */
  extra?: readonly string[];
}): string[] {
  return [
    ...options.cli,
    'kubelet',
    '--kubeconfig', options.kubeconfig,
    '--node-name', options.nodeName,
    '--node-ip', options.nodeIp,
    '--cni-conf-dir', options.cniConfDir,
    '--cni-bin-dir', options.cniBinDir ?? cniDistDir(),
    '--root-dir', options.rootDir,
    '--netns-prefix', options.netnsPrefix,
    ...(options.extra ?? []),
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

/**
 * Gives a node added later its own token. The static token file is read when the apiserver
 * starts (as upstream's --token-auth-file), so the caller restarts the apiserver after this;
 * informers everywhere re-list and resume, the data plane never notices.
 */
export function addNodeToken(controlPlane: ControlPlaneState, nodeName: string): void {
  const user = `system:node:${nodeName}`;
  if (readTokens(controlPlane.tokensFile).has(user)) return;
  const token = randomBytes(24).toString('hex');
  appendFileSync(controlPlane.tokensFile, `${token},${user},uid-node-${nodeName},"system:nodes"\n`);
}
