/**
 * The pieces of the pod's filesystem view that need no namespace: resolv.conf per dnsPolicy
 * and dnsConfig merging, the managed hosts file, the atomic `..data` writer, the setup
 * script's quoting (run by a real shell), and token renewal at 80% of its lifetime.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Pod, Service } from '../../src/api/types.js';
import { checkPayloadPath, VolumePathError, writeAtomically } from '../../src/kubelet/atomic-writer.js';
import { formatResolvConf, hostsFile, type NodeDnsSettings, parseResolvConf, podDns, utsHostname } from '../../src/kubelet/dns-config.js';
import { setupScript, shellQuote } from '../../src/kubelet/mounts.js';
import { withServiceAccountVolume } from '../../src/kubelet/service-account.js';
import { ContainerConfigError, containerEnv } from '../../src/kubelet/env.js';
import { resourceFieldValue } from '../../src/kubelet/resource-field.js';
import { mountPoints } from '../../src/lib/mounts.js';
import { PodVolumes, quantityBytes, VolumeMountError } from '../../src/kubelet/volumes.js';
import { createLogger } from '../../src/lib/log.js';
import { makePod } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'pontoon-podfiles-'));
after(() => {
  // A failed test may leave a volume's tmpfs mounted: detach before removing the directory.
  for (const point of mountPoints().filter((p) => p.startsWith(`${scratch}/`))) execFileSync('umount', ['-l', point]);
  rmSync(scratch, { recursive: true, force: true });
});
const log = createLogger('pod-files-test', { level: 'silent' });

const node: NodeDnsSettings = {
  clusterDNS: ['10.96.0.10'],
  clusterDomain: 'cluster.local',
  host: parseResolvConf('# comment\nnameserver 192.0.2.53\nnameserver 192.0.2.54\ndomain old.example\nsearch a.example b.example\noptions rotate timeout:1\n'),
};

function pod(spec: Partial<Pod['spec']>, namespace = 'team'): Pod {
  const p = makePod('p', [{ name: 'c' }], spec);
  p.metadata.namespace = namespace;
  return p;
}

describe('pod files', () => {
  test('resolv.conf per dnsPolicy, as the kubelet builds it', () => {
    assert.deepEqual(node.host, { nameservers: ['192.0.2.53', '192.0.2.54'], searches: ['a.example', 'b.example'], options: ['rotate', 'timeout:1'] });
    const cluster = podDns(pod({}), node);
    assert.equal(formatResolvConf(cluster.resolv), 'search team.svc.cluster.local svc.cluster.local cluster.local a.example b.example\nnameserver 10.96.0.10\noptions ndots:5\n');
    assert.equal(cluster.fallbackWarning, undefined);
    // ClusterFirst on the host network is the node's resolver; ClusterFirstWithHostNet is the cluster's.
    assert.deepEqual(podDns(pod({ hostNetwork: true }), node).resolv.nameservers, ['192.0.2.53', '192.0.2.54']);
    assert.deepEqual(podDns(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), node).resolv.nameservers, ['10.96.0.10']);
    assert.equal(formatResolvConf(podDns(pod({ dnsPolicy: 'Default' }), node).resolv), 'search a.example b.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions rotate timeout:1\n');
    assert.equal(formatResolvConf(podDns(pod({ dnsPolicy: 'None' }), node).resolv), '');
    // dnsConfig: appended without duplicates, at most three nameservers, options by name.
    const merged = podDns(pod({ dnsPolicy: 'Default', dnsConfig: { nameservers: ['192.0.2.53', '192.0.2.1', '192.0.2.2'], searches: ['a.example', 'c.example'], options: [{ name: 'timeout', value: '3' }, { name: 'edns0' }] } }), node).resolv;
    assert.deepEqual(merged, { nameservers: ['192.0.2.53', '192.0.2.54', '192.0.2.1'], searches: ['a.example', 'b.example', 'c.example'], options: ['rotate', 'timeout:3', 'edns0'] });
    // No --cluster-dns: Default, with upstream's warning.
    const fallback = podDns(pod({}), { ...node, clusterDNS: [] });
    assert.deepEqual(fallback.resolv.nameservers, ['192.0.2.53', '192.0.2.54']);
    assert.match(fallback.fallbackWarning ?? '', /kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy\. Falling back to "Default" policy\./);
    // 32 search domains at most.
    const many = podDns(pod({ dnsPolicy: 'None', dnsConfig: { searches: Array.from({ length: 40 }, (_, i) => `d${i}.example`) } }), node).resolv;
    assert.equal(many.searches.length, 32);
  });

  test('the managed hosts file and the hostname', () => {
    const p = pod({ hostname: 'db-0', subdomain: 'db', hostAliases: [{ ip: '192.0.2.9', hostnames: ['x.example', 'y'] }] });
    const hosts = hostsFile(p, ['10.1.0.5', 'fd00::5'], 'cluster.local', 'ignored');
    assert.equal(
      hosts,
      '# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n' +
        '10.1.0.5\tdb-0.db.team.svc.cluster.local\tdb-0\nfd00::5\tdb-0.db.team.svc.cluster.local\tdb-0\n\n# Entries added by HostAliases.\n192.0.2.9\tx.example\ty\n',
    );
    assert.equal(hostsFile(pod({ hostNetwork: true }), ['198.18.0.11'], 'cluster.local', '127.0.0.1 node\n'), '# Kubernetes-managed hosts file (host network).\n127.0.0.1 node\n');
    assert.equal(utsHostname(p, 'cluster.local', 'n1'), 'db-0');
    assert.equal(utsHostname({ ...p, spec: { ...p.spec, setHostnameAsFQDN: true } }, 'cluster.local', 'n1'), 'db-0.db.team.svc.cluster.local');
    assert.equal(utsHostname(pod({ hostNetwork: true }), 'cluster.local', 'n1'), 'n1');
    const long = makePod(`${'a'.repeat(62)}-b`, [{ name: 'c' }]);
    assert.equal(utsHostname(long, 'cluster.local', 'n1'), 'a'.repeat(62));
  });

  test('atomic writer: ..data swap, symlinked keys, modes, stale keys removed, unchanged payload untouched', () => {
    const dir = join(scratch, 'vol');
    const file = (text: string, mode = 0o644) => ({ content: Buffer.from(text), mode });
    assert.equal(writeAtomically(dir, new Map([['a', file('1')], ['sub/b', file('2', 0o600)]])), true);
    const first = readlinkSync(join(dir, '..data'));
    assert.match(first, /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$/);
    assert.equal(readlinkSync(join(dir, 'a')), '..data/a');
    assert.equal(readFileSync(join(dir, 'sub/b'), 'utf8'), '2');
    assert.equal(statSync(join(dir, 'sub/b')).mode & 0o777, 0o600);
    assert.equal(writeAtomically(dir, new Map([['a', file('1')], ['sub/b', file('2', 0o600)]])), false);
    assert.equal(readlinkSync(join(dir, '..data')), first);
    assert.equal(writeAtomically(dir, new Map([['a', file('changed')]])), true);
    assert.notEqual(readlinkSync(join(dir, '..data')), first);
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'changed');
    // The old version and the key that left are gone; only ..data and one version remain.
    assert.deepEqual(readdirSync(dir).filter((e) => !e.startsWith('..')), ['a']);
    assert.equal(readdirSync(dir).filter((e) => e.startsWith('..')).length, 2);
    assert.ok(lstatSync(join(dir, '..data')).isSymbolicLink());
    for (const bad of ['/abs', '../up', 'a/../../b', '..hidden', '']) assert.throws(() => checkPayloadPath(bad), VolumePathError, bad);
  });

  test('the setup script keeps hostile paths one argument, and orders parents first', () => {
    const target = join(scratch, "it's a $(dir) `x`");
    const script = setupScript({
      hostname: "h'n",
      mounts: [
        { source: '/s2', target: '/data/logs', readOnly: false, directory: true },
        { source: '/s1', target: '/data', readOnly: true, directory: true },
      ],
      workingDir: target,
    });
    assert.ok(script.indexOf("'/s1' '/data'") < script.indexOf("'/s2' '/data/logs'"));
    assert.match(script, /remount,bind,ro '\/data'\n/);
    // A real shell gives back exactly what was quoted.
    assert.equal(execFileSync('/bin/sh', ['-c', `printf '%s' ${shellQuote(target)}`], { encoding: 'utf8' }), target);
  });

  test('quantities and the ServiceAccount volume', () => {
    assert.equal(quantityBytes('16Mi'), 16 * 2 ** 20);
    assert.equal(quantityBytes('1G'), 1e9);
    assert.equal(quantityBytes(512), 512);
    assert.throws(() => quantityBytes('lots'));
    const p = makePod('p', [{ name: 'a' }, { name: 'b' }]);
    const withSa = withServiceAccountVolume(p);
    const volume = withSa.spec.volumes?.[0];
    assert.match(volume?.name ?? '', /^kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.equal(volume?.projected?.sources?.[0]?.serviceAccountToken?.expirationSeconds, 3607);
    assert.deepEqual(volume?.projected?.sources?.[1]?.configMap, { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    for (const c of withSa.spec.containers) assert.deepEqual(c.volumeMounts, [{ name: volume?.name, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }]);
    // Stable for a pod, and never twice.
    assert.equal(withServiceAccountVolume(p).spec.volumes?.[0]?.name, volume?.name);
    assert.equal(withServiceAccountVolume(withSa), withSa);
    const off = makePod('q', [{ name: 'a' }], { automountServiceAccountToken: false });
    assert.equal(withServiceAccountVolume(off), off);
  });

  test('resourceFieldRef values as upstream computes them', () => {
    const container = { name: 'c', resources: { limits: { cpu: '500m', memory: '128Mi' }, requests: { cpu: '250m' } } };
    const node = { cpu: '4', memory: '8Gi', 'ephemeral-storage': '0' };
    assert.equal(resourceFieldValue({ resource: 'limits.cpu' }, container, node), '1');
    assert.equal(resourceFieldValue({ resource: 'limits.cpu', divisor: '1m' }, container, node), '500');
    assert.equal(resourceFieldValue({ resource: 'requests.cpu', divisor: '1m' }, container, node), '250');
    assert.equal(resourceFieldValue({ resource: 'limits.memory', divisor: '1Mi' }, container, node), '128');
    assert.equal(resourceFieldValue({ resource: 'limits.memory' }, container, node), String(128 * 2 ** 20));
    // Unset: the limit is the node's allocatable, the request 0.
    assert.equal(resourceFieldValue({ resource: 'limits.memory', divisor: '1Gi' }, { name: 'd' }, node), '8');
    assert.equal(resourceFieldValue({ resource: 'requests.memory' }, { name: 'd' }, node), '0');
    assert.throws(() => resourceFieldValue({ resource: 'limits.gpu' }, container, node), ContainerConfigError);
  });

  test('a missing Secret or ConfigMap key fails the mount in upstream\'s words and leaves nothing', async () => {
    const podDirPath = join(scratch, 'pod-m');
    const volumes = new PodVolumes(makePod('m', [{ name: 'c' }]), {
      podDir: podDirPath,
      hostPathRoot: scratch,
      log,
      objects: { configMap: async (_ns, name) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { present: 'v' } }), secret: async () => undefined },
    });
    const withVolumes = (volumes: NonNullable<Pod['spec']['volumes']>): Pod => makePod('m', [{ name: 'c' }], { volumes });
    await assert.rejects(volumes.setUp(withVolumes([{ name: 'ok', emptyDir: {} }, { name: 's', secret: { secretName: 'gone' } }])), (err: Error) => {
      assert.ok(err instanceof VolumeMountError);
      assert.equal(err.message, 'MountVolume.SetUp failed for volume "s" : secret "gone" not found');
      return true;
    });
    assert.equal(existsSync(join(podDirPath, 'volumes/kubernetes.io~empty-dir/ok')), false, 'the emptyDir made by the failed attempt is removed');
    await assert.rejects(volumes.setUp(withVolumes([{ name: 'cm', configMap: { name: 'x', items: [{ key: 'absent', path: 'a' }] } }])), /configmap references non-existent config key: absent/);
    // optional: an empty volume instead.
    await volumes.setUp(withVolumes([{ name: 'opt', secret: { secretName: 'gone', optional: true } }]));
    assert.deepEqual(readdirSync(join(podDirPath, 'volumes/kubernetes.io~secret/opt')).filter((e) => !e.startsWith('..')), []);
    await volumes.teardown();
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(podDirPath), false, 'the secret tmpfs is unmounted');
  });

  test('service env: docker-link variables, the master Service always, links off by enableServiceLinks', async () => {
    const svc = (name: string, namespace: string, clusterIP: string, ports: { name?: string; port: number; protocol?: 'TCP' | 'UDP' }[]): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { clusterIP, ports } });
    const services: Service[] = [
      svc('kubernetes', 'default', '10.96.0.1', [{ name: 'https', port: 443 }]),
      svc('redis-primary', 'team', '10.96.0.20', [{ name: 'redis', port: 6379 }, { port: 53, protocol: 'UDP' }]),
      svc('headless', 'team', 'None', [{ port: 80 }]),
    ];
    const objects = { configMap: async () => undefined, secret: async () => undefined, services: (ns: string) => services.filter((s) => s.metadata.namespace === ns) };
    const env = await containerEnv({ name: 'c', env: [{ name: 'REDIS_PORT', value: 'mine' }] }, { pod: pod({}), podIPs: [], hostIPs: [], nodeName: 'n1', objects });
    assert.equal(env['REDIS_PRIMARY_SERVICE_HOST'], '10.96.0.20');
    assert.equal(env['REDIS_PRIMARY_SERVICE_PORT'], '6379');
    assert.equal(env['REDIS_PRIMARY_SERVICE_PORT_REDIS'], '6379');
    assert.equal(env['REDIS_PRIMARY_PORT'], 'tcp://10.96.0.20:6379');
    assert.equal(env['REDIS_PRIMARY_PORT_53_UDP'], 'udp://10.96.0.20:53');
    assert.equal(env['REDIS_PRIMARY_PORT_53_UDP_ADDR'], '10.96.0.20');
    assert.equal(env['KUBERNETES_SERVICE_HOST'], '10.96.0.1');
    assert.equal(env['KUBERNETES_PORT_443_TCP'], 'tcp://10.96.0.1:443');
    assert.equal(env['REDIS_PORT'], 'mine', 'the container\'s env wins');
    assert.equal(Object.keys(env).some((k) => k.startsWith('HEADLESS_')), false, 'no variables for a headless Service');
    const off = await containerEnv({ name: 'c' }, { pod: pod({ enableServiceLinks: false }), podIPs: [], hostIPs: [], nodeName: 'n1', objects });
    assert.equal(off['KUBERNETES_SERVICE_HOST'], '10.96.0.1');
    assert.equal(off['REDIS_PRIMARY_SERVICE_HOST'], undefined);
  });

  test('a projected token is renewed once 80% of its lifetime has passed, not before', async () => {
    let issued = 0;
    const lifetimeMs = 600;
    const volumes = new PodVolumes(makePod('t', [{ name: 'c' }], { volumes: [{ name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }] }), {
      podDir: join(scratch, 'pod-t'),
      hostPathRoot: scratch,
      log,
      objects: {
        configMap: async () => undefined,
        secret: async () => undefined,
        // A short-lived token stands in for the apiserver's: only its expiry matters here.
        requestToken: async () => ({ token: `token-${++issued}`, expirationTimestamp: new Date(Date.now() + lifetimeMs).toISOString() }),
      },
    });
    const pod = makePod('t', [{ name: 'c' }], { volumes: [{ name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }] });
    await volumes.setUp(pod);
    const tokenFile = join(scratch, 'pod-t/volumes/kubernetes.io~projected/tok/token');
    assert.equal(readFileSync(tokenFile, 'utf8'), 'token-1');
    await volumes.refresh(pod);
    assert.equal(readFileSync(tokenFile, 'utf8'), 'token-1', 'early refresh keeps the token');
    await new Promise((r) => setTimeout(r, lifetimeMs * 0.8 + 50));
    await volumes.refresh(pod);
    assert.equal(readFileSync(tokenFile, 'utf8'), 'token-2');
    await volumes.teardown();
  });
});
