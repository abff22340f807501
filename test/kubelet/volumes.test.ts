/**
 * The pod's filesystem view, against an in-process apiserver and a kubelet acting on a node
 * namespace: each container's own /etc/resolv.conf (per dnsPolicy), /etc/hosts, /etc/hostname
 * and UTS name; every volume kind read from inside the container (through the same nsenter
 * argv kubectl exec uses); a ConfigMap update reaching a running container; a missing
 * ConfigMap holding the pod with FailedMount until it exists; the ServiceAccount token
 * accepted by the apiserver; and nothing of a deleted pod left in the mount table or the
 * kubelet's directory, with the node's own /etc files untouched throughout.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Secret, ServiceAccount } from '../../src/api/serviceaccount.js';
import type { RoleBinding } from '../../src/api/rbac.js';
import type { ConfigMap, Event, Pod, Service } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { enterContainerArgv } from '../../src/kubelet/enter.js';
import { Kubelet } from '../../src/kubelet/kubelet.js';
import { sandboxName } from '../../src/kubelet/sandbox.js';
import { podDir } from '../../src/kubelet/state.js';
import { createLogger } from '../../src/lib/log.js';
import { netnsPath } from '../../src/lib/netns.js';
import { Lab } from '../helpers/lab.js';
import { BUSYBOX, eventually, kubeletNode, type KubeletNode, makePod, NODE_IP } from './helpers.js';

const run = promisify(execFile);
const lab = new Lab('kvol');
const log = createLogger('kubelet-volumes-test', { level: process.env['PONTOON_TEST_LOG'] ?? 'silent' });
const CLUSTER_DNS = '10.96.0.10';
const HOST_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/hostname'];
let apiserver: RunningApiServer;
let api: KubeClient;
let node: KubeletNode;
let kubelet: Kubelet;
let hostPathRoot: string;
let hostFilesBefore: string[];
const sleepForever = [BUSYBOX, 'sleep', '100000'];

async function createPod(pod: Pod): Promise<Pod> {
  const { uid: _uid, ...metadata } = pod.metadata;
  const containers = pod.spec.containers.map((c) => ({ image: 'busybox', ...c }));
  return api.create<Pod>(RESOURCE.pods, { ...pod, metadata, spec: { ...pod.spec, containers, nodeName: 'n1' } });
}

async function waitForPod(name: string, what: string, check: (pod: Pod) => boolean, timeoutMs = 15_000): Promise<Pod> {
  let last: Pod | undefined;
  try {
    return await eventually(`pod ${name} ${what}`, timeoutMs, async () => {
      last = await api.get<Pod>(RESOURCE.pods, name, 'default');
      return last && check(last) ? last : undefined;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(last?.status, null, 1)}`);
  }
}

const running = (pod: Pod): boolean => pod.status?.phase === 'Running' && pod.status.podIP !== undefined;

/** Runs a command inside a running container, as kubectl exec does. */
async function inContainer(pod: string, container: string, command: string[]): Promise<string> {
  const pid = kubelet.runtime.containerPid('default', pod, container);
  assert.ok(pid !== undefined, `container ${pod}/${container} runs`);
  const [file, ...args] = enterContainerArgv(pid, command);
  const { stdout } = await run(file ?? '', args);
  return stdout;
}

async function deletePodAndWait(name: string): Promise<void> {
  await api.delete(RESOURCE.pods, name, 'default', { gracePeriodSeconds: 1 });
  await eventually(`pod ${name} gone`, 15_000, async () => (await api.get<Pod>(RESOURCE.pods, name, 'default')) === undefined);
}

async function eventsFor(name: string): Promise<Event[]> {
  return (await api.list<Event>(RESOURCE.events, 'default')).items.filter((e) => e.involvedObject.name === name);
}

function newKubelet(nodeResolv: string): Kubelet {
  return new Kubelet({
    api,
    nodeName: 'n1',
    nodeIP: NODE_IP,
    rootDir: node.rootDir,
    cniConfDir: node.confDir,
    cniBinDirs: node.options.cniBinDirs,
    netnsPrefix: node.options.netnsPrefix ?? '',
    hostNetns: node.netns,
    maxPods: 110,
    statusIntervalMs: 500,
    leaseRenewIntervalMs: 500,
    resyncIntervalMs: 500,
    backoffBaseMs: 300,
    backoffCapMs: 2000,
    clusterDNS: [CLUSTER_DNS],
    resolvConf: nodeResolv,
    hostPathRoot,
    automountServiceAccountToken: true,
    log,
  });
}

describe('kubelet pod filesystem view', () => {
  before(async () => {
    hostFilesBefore = HOST_FILES.map((path) => readFileSync(path, 'utf8'));
    apiserver = await startApiServer({ store: 'memory:', listen: '127.0.0.1:0', log });
    api = new KubeClient({ server: apiserver.url });
    node = kubeletNode(lab, 'n1', 94);
    hostPathRoot = lab.tempDir('hostroot');
    // What a node's resolver would say: the Default policy copies it, ClusterFirst keeps its search list.
    const nodeResolv = join(node.rootDir, 'node-resolv.conf');
    writeFileSync(nodeResolv, 'nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n');
    kubelet = newKubelet(nodeResolv);
    await kubelet.start();
    // What identity's controllers publish in a real cluster: the default account and the CA bundle.
    if (!(await api.get<ServiceAccount>(RESOURCE.serviceaccounts, 'default', 'default'))) {
      await api.create<ServiceAccount>(RESOURCE.serviceaccounts, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'default' } });
    }
    if (!(await api.get<ConfigMap>(RESOURCE.configmaps, 'kube-root-ca.crt', 'default'))) {
      await api.create<ConfigMap>(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-root-ca.crt', namespace: 'default' }, data: { 'ca.crt': 'test-ca-bundle\n' } });
    }
  });

  after(async () => {
    await kubelet.stop().catch(() => undefined);
    for (const uid of kubelet.runtime.uids()) await kubelet.runtime.killPod(uid, 0).catch(() => undefined);
    await apiserver.close();
    lab.cleanup();
    // The node's own files are never written, whatever the tests did.
    assert.deepEqual(HOST_FILES.map((path) => readFileSync(path, 'utf8')), hostFilesBefore);
  });

  test('hostname, /etc/hosts and resolv.conf per dnsPolicy are the pod\'s own', async () => {
    await createPod(
      makePod('web', [{ name: 'c', command: sleepForever }], {
        hostname: 'web-0',
        subdomain: 'web-hl',
        hostAliases: [{ ip: '192.0.2.7', hostnames: ['alias.example', 'alias2'] }],
        dnsConfig: { searches: ['extra.example'], options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }] },
      }),
    );
    await createPod(makePod('dflt', [{ name: 'c', command: sleepForever }], { dnsPolicy: 'Default' }));
    await createPod(makePod('none', [{ name: 'c', command: sleepForever }], { dnsPolicy: 'None', dnsConfig: { nameservers: ['192.0.2.1'], searches: ['only.example'], options: [{ name: 'ndots', value: '1' }] } }));
    const web = await waitForPod('web', 'running', running);
    const ip = web.status?.podIP ?? '';

    assert.equal((await inContainer('web', 'c', ['hostname'])).trim(), 'web-0');
    assert.equal((await inContainer('web', 'c', ['cat', '/etc/hostname'])).trim(), 'web-0');
    const hosts = await inContainer('web', 'c', ['cat', '/etc/hosts']);
    assert.match(hosts, /^127\.0\.0\.1\s+localhost$/m);
    assert.ok(hosts.split('\n').includes(`${ip}\tweb-0.web-hl.default.svc.cluster.local\tweb-0`), hosts);
    assert.match(hosts, /^192\.0\.2\.7\talias\.example\talias2$/m);
    // glibc, inside the container, resolves the pod's own name through its /etc/hosts.
    const [resolved] = (await inContainer('web', 'c', ['sh', '-c', 'getent hosts $(hostname)'])).trim().split(/\s+/);
    assert.equal(resolved, ip);
    // ClusterFirst: the cluster DNS, the cluster search path then the node's, dnsConfig merged.
    const resolv = await inContainer('web', 'c', ['cat', '/etc/resolv.conf']);
    assert.equal(resolv, `search default.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\nnameserver ${CLUSTER_DNS}\noptions ndots:2 edns0\n`);

    await waitForPod('dflt', 'running', running);
    assert.equal(await inContainer('dflt', 'c', ['cat', '/etc/resolv.conf']), 'search corp.example\nnameserver 192.0.2.53\noptions timeout:2\n');
    assert.equal((await inContainer('dflt', 'c', ['hostname'])).trim(), 'dflt');
    await waitForPod('none', 'running', running);
    assert.equal(await inContainer('none', 'c', ['cat', '/etc/resolv.conf']), 'search only.example\nnameserver 192.0.2.1\noptions ndots:1\n');

    // The node's namespace keeps the node's files and name.
    const nodeView = await run('ip', ['netns', 'exec', node.netns, 'cat', '/etc/resolv.conf']);
    assert.equal(nodeView.stdout, hostFilesBefore[0]);
    for (const name of ['web', 'dflt', 'none']) await deletePodAndWait(name);
  });

  test('a hostNetwork pod keeps the node\'s network but gets its own mount and UTS namespaces and volumes', async () => {
    await createPod(makePod('hostnet', [{ name: 'c', command: sleepForever, volumeMounts: [{ name: 'tmp', mountPath: '/hostnet-tmp' }] }], { hostNetwork: true, volumes: [{ name: 'tmp', emptyDir: {} }] }));
    await waitForPod('hostnet', 'running', running);
    const pid = kubelet.runtime.containerPid('default', 'hostnet', 'c') ?? 0;
    const inode = (path: string): number => statSync(path).ino;
    assert.equal(inode(`/proc/${pid}/ns/net`), inode(netnsPath(node.netns)), 'the node\'s network namespace');
    assert.notEqual(inode(`/proc/${pid}/ns/mnt`), inode('/proc/self/ns/mnt'), 'a mount namespace of its own');
    assert.equal((await inContainer('hostnet', 'c', ['hostname'])).trim(), 'n1');
    assert.match(await inContainer('hostnet', 'c', ['cat', '/etc/hosts']), /^# Kubernetes-managed hosts file \(host network\)\.\n/);
    // Default resolver for ClusterFirst on the host network, as upstream.
    assert.equal(await inContainer('hostnet', 'c', ['cat', '/etc/resolv.conf']), 'search corp.example\nnameserver 192.0.2.53\noptions timeout:2\n');
    await inContainer('hostnet', 'c', ['touch', '/hostnet-tmp/f']);
    assert.equal(existsSync('/hostnet-tmp/f'), false, 'the volume, not the node directory');
    await deletePodAndWait('hostnet');
  });

  test('volumes of every kind, seen from inside; updates propagate; deletion leaves no mount or directory', async () => {
    await api.create<ConfigMap>(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config', namespace: 'default' }, data: { 'app.conf': 'color=blue\n', other: 'x' } });
    await api.create<Secret>(RESOURCE.secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'app-secret', namespace: 'default' }, stringData: { password: 's3cret' } });
    mkdirSync(join(hostPathRoot, 'etc/cni/net.d'), { recursive: true });
    writeFileSync(join(hostPathRoot, 'etc/cni/net.d/10-test.conflist'), '{"name":"node-root"}');
    const pod = makePod(
      'vols',
      [
        {
          name: 'c',
          command: [BUSYBOX, 'sh', '-c', 'echo ok > /scratch/ready; exec sleep 100000'],
          workingDir: '/scratch',
          volumeMounts: [
            { name: 'scratch', mountPath: '/scratch' },
            { name: 'mem', mountPath: '/mem' },
            { name: 'config', mountPath: '/config' },
            { name: 'config', mountPath: '/single/app.conf', subPath: 'app.conf' },
            { name: 'secret', mountPath: '/secret' },
            { name: 'cni', mountPath: '/etc/cni/net.d', readOnly: true },
            { name: 'created', mountPath: '/created' },
            { name: 'info', mountPath: '/info' },
            { name: 'bundle', mountPath: '/bundle' },
          ],
          // The probe reads a file that exists only in the container's view.
          readinessProbe: { exec: { command: ['cat', '/scratch/ready'] }, periodSeconds: 1 },
        },
        { name: 'peer', command: sleepForever, volumeMounts: [{ name: 'scratch', mountPath: '/shared' }] },
      ],
      {
        volumes: [
          { name: 'scratch', emptyDir: {} },
          { name: 'mem', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
          { name: 'config', configMap: { name: 'app-config', items: [{ key: 'app.conf', path: 'app.conf', mode: 0o600 }] } },
          { name: 'secret', secret: { secretName: 'app-secret', defaultMode: 0o400 } },
          { name: 'cni', hostPath: { path: '/etc/cni/net.d', type: 'Directory' } },
          { name: 'created', hostPath: { path: '/var/lib/created', type: 'DirectoryOrCreate' } },
          { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }, { path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
          {
            name: 'bundle',
            projected: { sources: [{ configMap: { name: 'app-config', items: [{ key: 'other', path: 'cm/other' }] } }, { secret: { name: 'app-secret' } }, { downwardAPI: { items: [{ path: 'ns', fieldRef: { fieldPath: 'metadata.namespace' } }] } }] },
          },
        ],
      },
    );
    pod.metadata.labels = { app: 'vols', tier: 'db' };
    const created = await createPod(pod);
    const uid = created.metadata.uid ?? '';
    await waitForPod('vols', 'ready', (p) => running(p) && p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');

    // emptyDir: shared between containers; the workingDir is inside it.
    assert.equal(await inContainer('vols', 'peer', ['cat', '/shared/ready']), 'ok\n');
    const mainPid = kubelet.runtime.containerPid('default', 'vols', 'c') ?? 0;
    assert.equal((await inContainer('vols', 'c', ['readlink', `/proc/${mainPid}/cwd`])).trim(), '/scratch');
    assert.equal(existsSync('/scratch/ready'), false, 'the emptyDir is not the node\'s /scratch');
    // Memory medium: a tmpfs with the size limit.
    const memLine = (await inContainer('vols', 'c', ['cat', '/proc/self/mountinfo'])).split('\n').find((l) => l.split(' ')[4] === '/mem');
    assert.ok(memLine?.includes(' - tmpfs '), memLine);
    assert.match(memLine ?? '', /size=16384k/);
    // configMap with items and mode; the subPath file.
    assert.equal(await inContainer('vols', 'c', ['cat', '/config/app.conf']), 'color=blue\n');
    assert.equal((await inContainer('vols', 'c', ['stat', '-L', '-c', '%a', '/config/app.conf'])).trim(), '600');
    assert.equal((await inContainer('vols', 'c', ['ls', '/config'])).trim(), 'app.conf');
    assert.equal(await inContainer('vols', 'c', ['cat', '/single/app.conf']), 'color=blue\n');
    // secret, decoded, with defaultMode; read-only like every kubelet-written volume.
    assert.equal(await inContainer('vols', 'c', ['cat', '/secret/password']), 's3cret');
    assert.equal((await inContainer('vols', 'c', ['stat', '-L', '-c', '%a', '/secret/password'])).trim(), '400');
    await assert.rejects(inContainer('vols', 'c', ['sh', '-c', 'echo x > /secret/new']));
    // Secrets live on a tmpfs, never on the node's disk.
    const secretLine = (await inContainer('vols', 'c', ['cat', '/proc/self/mountinfo'])).split('\n').find((l) => l.split(' ')[4] === '/secret');
    assert.ok(secretLine?.includes(' - tmpfs '), secretLine);
    // hostPath under --host-path-root, readOnly honoured; DirectoryOrCreate made it there.
    assert.equal(await inContainer('vols', 'c', ['cat', '/etc/cni/net.d/10-test.conflist']), '{"name":"node-root"}');
    await assert.rejects(inContainer('vols', 'c', ['touch', '/etc/cni/net.d/x']));
    await inContainer('vols', 'c', ['touch', '/created/by-pod']);
    assert.ok(existsSync(join(hostPathRoot, 'var/lib/created/by-pod')));
    // downwardAPI and projected.
    assert.equal(await inContainer('vols', 'c', ['cat', '/info/labels']), 'app="vols"\ntier="db"');
    assert.equal(await inContainer('vols', 'c', ['cat', '/info/name']), 'vols');
    assert.equal(await inContainer('vols', 'c', ['cat', '/bundle/cm/other']), 'x');
    assert.equal(await inContainer('vols', 'c', ['cat', '/bundle/password']), 's3cret');
    assert.equal(await inContainer('vols', 'c', ['cat', '/bundle/ns']), 'default');

    // A ConfigMap update reaches the running container through the ..data swap; the subPath copy stays.
    await api.patch(RESOURCE.configmaps, 'app-config', 'default', { data: { 'app.conf': 'color=green\n' } }, 'merge');
    await eventually('the new config inside the container', 10_000, async () => (await inContainer('vols', 'c', ['cat', '/config/app.conf'])) === 'color=green\n');
    assert.equal(await inContainer('vols', 'c', ['cat', '/single/app.conf']), 'color=blue\n');
    // A label change reaches the downwardAPI file too.
    await api.patch(RESOURCE.pods, 'vols', 'default', { metadata: { labels: { tier: 'cache' } } }, 'merge');
    await eventually('the new labels inside the container', 10_000, async () => (await inContainer('vols', 'c', ['cat', '/info/labels'])) === 'app="vols"\ntier="cache"');

    const dir = podDir(node.rootDir, uid);
    assert.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), 'the tmpfs is mounted under the pod directory');
    await deletePodAndWait('vols');
    await eventually('the pod directory to go', 10_000, async () => !existsSync(dir));
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(uid), false, 'no mount of the pod left');
    // The hostPath content is the node's and stays.
    assert.ok(existsSync(join(hostPathRoot, 'var/lib/created/by-pod')));
  });

  test('a restarted kubelet adopts a pod with volumes and keeps them current', async () => {
    await api.create<ConfigMap>(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'survives', namespace: 'default' }, data: { v: '1' } });
    await api.create<Secret>(RESOURCE.secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'survives', namespace: 'default' }, stringData: { s: 'kept' } });
    await createPod(
      makePod('adopted', [{ name: 'c', command: sleepForever, volumeMounts: [{ name: 'cm', mountPath: '/cm' }, { name: 'sec', mountPath: '/sec' }] }], {
        volumes: [{ name: 'cm', configMap: { name: 'survives' } }, { name: 'sec', secret: { secretName: 'survives' } }],
      }),
    );
    await waitForPod('adopted', 'running', running);
    const pid = kubelet.runtime.containerPid('default', 'adopted', 'c');
    await kubelet.stop();
    kubelet = newKubelet(join(node.rootDir, 'node-resolv.conf'));
    await kubelet.start();
    await eventually('the pod adopted', 10_000, async () => kubelet.runtime.containerPid('default', 'adopted', 'c') === pid);
    assert.equal(await inContainer('adopted', 'c', ['cat', '/sec/s']), 'kept');
    await api.patch(RESOURCE.configmaps, 'survives', 'default', { data: { v: '2' } }, 'merge');
    await eventually('the update after the restart', 10_000, async () => (await inContainer('adopted', 'c', ['cat', '/cm/v'])) === '2');
    await deletePodAndWait('adopted');
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(node.rootDir + '/pods/'), false, 'no volume mount left');
  });

  test('a missing ConfigMap holds the pod in ContainerCreating with FailedMount until it is created', async () => {
    const created = await createPod(makePod('waits', [{ name: 'c', command: sleepForever, volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }] }], { volumes: [{ name: 'cfg', configMap: { name: 'late' } }] }));
    const event = await eventually('a FailedMount event', 10_000, async () => (await eventsFor('waits')).find((e) => e.reason === 'FailedMount'));
    assert.equal(event.type, 'Warning');
    assert.equal(event.message, 'MountVolume.SetUp failed for volume "cfg" : configmap "late" not found');
    const waiting = await waitForPod('waits', 'ContainerCreating', (p) => p.status?.containerStatuses?.[0]?.state.waiting?.reason === 'ContainerCreating');
    assert.equal(waiting.status?.phase, 'Pending');
    assert.equal(waiting.status?.podIP, undefined);
    // Nothing half-made: no sandbox, no volume directory.
    assert.equal(existsSync(netnsPath(sandboxName(node.options.netnsPrefix ?? '', created.metadata.uid ?? ''))), false);
    assert.equal(existsSync(join(podDir(node.rootDir, created.metadata.uid ?? ''), 'volumes')), false);

    await api.create<ConfigMap>(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'late', namespace: 'default' }, data: { k: 'arrived' } });
    await waitForPod('waits', 'running', running, 30_000);
    assert.equal(await inContainer('waits', 'c', ['cat', '/cfg/k']), 'arrived');
    await deletePodAndWait('waits');
  });

  test('a hostPath of the wrong type fails the mount with upstream\'s words', async () => {
    await createPod(makePod('badhp', [{ name: 'c', command: sleepForever, volumeMounts: [{ name: 'h', mountPath: '/h' }] }], { volumes: [{ name: 'h', hostPath: { path: '/nope', type: 'Directory' } }] }));
    const event = await eventually('a FailedMount event', 10_000, async () => (await eventsFor('badhp')).find((e) => e.reason === 'FailedMount'));
    assert.equal(event.message, 'MountVolume.SetUp failed for volume "h" : hostPath type check failed: /nope is not a directory');
    assert.equal(existsSync(join(hostPathRoot, 'nope')), false);
    await deletePodAndWait('badhp');
  });

  test('env from Secrets and ConfigMaps, the service env, and a ServiceAccount token the apiserver accepts', async () => {
    await api.create<Secret>(RESOURCE.secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'env-secret', namespace: 'default' }, stringData: { token: 't0k', USER: 'admin' } });
    await api.create<ConfigMap>(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'env-config', namespace: 'default' }, data: { MODE: 'fast' } });
    const created = await createPod(
      makePod('client', [
        {
          name: 'c',
          command: sleepForever,
          envFrom: [{ configMapRef: { name: 'env-config' } }, { prefix: 'S_', secretRef: { name: 'env-secret' } }],
          env: [
            { name: 'PASS', valueFrom: { secretKeyRef: { name: 'env-secret', key: 'token' } } },
            { name: 'URL', value: 'https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)' },
            { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
          ],
          resources: { limits: { memory: '96Mi' } },
        },
      ]),
    );
    await waitForPod('client', 'running', running);
    const pid = kubelet.runtime.containerPid('default', 'client', 'c') ?? 0;
    const env = new Map(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const master = await api.get<Service>(RESOURCE.services, 'kubernetes', 'default');
    assert.equal(env.get('MODE'), 'fast');
    assert.equal(env.get('S_USER'), 'admin');
    assert.equal(env.get('PASS'), 't0k');
    assert.equal(env.get('KUBERNETES_SERVICE_HOST'), master?.spec.clusterIP);
    assert.equal(env.get('KUBERNETES_SERVICE_PORT'), '443');
    assert.equal(env.get('KUBERNETES_PORT_443_TCP_PROTO'), 'tcp');
    assert.equal(env.get('URL'), `https://${master?.spec.clusterIP ?? ''}:443`);
    assert.equal(env.get('HOSTNAME'), 'client');
    assert.equal(env.get('MEM_MI'), '96');

    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    assert.equal(await inContainer('client', 'c', ['cat', `${sa}/namespace`]), 'default');
    assert.equal(await inContainer('client', 'c', ['cat', `${sa}/ca.crt`]), 'test-ca-bundle\n');
    const token = await inContainer('client', 'c', ['cat', `${sa}/token`]);
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub: string; exp: number; iat: number; 'kubernetes.io': { pod?: { uid: string } } };
    assert.equal(claims.sub, 'system:serviceaccount:default:default');
    assert.equal(claims['kubernetes.io'].pod?.uid, created.metadata.uid);
    assert.equal(claims.exp - claims.iat, 3607);
    // The token authenticates as the ServiceAccount: refused by RBAC until the account is
    // bound to a role, then allowed.
    const asPod = (): Promise<Response> => fetch(`${apiserver.url}/api/v1/namespaces/default/services`, { headers: { Authorization: `Bearer ${token}` } });
    const refused = await asPod();
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as { message: string }).message, /User "system:serviceaccount:default:default" cannot list resource "services"/);
    await api.create<RoleBinding>(RESOURCE.rolebindings, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'default-view', namespace: 'default' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: 'default' }],
    });
    await eventually('the bound ServiceAccount to list Services', 15_000, async () => (await asPod()).status === 200);
    const forged = await fetch(`${apiserver.url}/api/v1/namespaces/default/services`, { headers: { Authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
    assert.equal(forged.status, 401);
    await deletePodAndWait('client');
  });
});
