/**
 * The network-only lab: nodes share nothing with the control plane but the fabric. Their
 * daemons reach the apiserver at https://198.18.0.2:6443 (kubeconfigs with the cluster CA,
 * no unix socket), and the apiserver reaches their kubelets over TLS on InternalIP:10250 with
 * its kubelet-client certificate — the only way in, since the kubelets serve no socket. A
 * pod cannot use another node's kubelet API: 401 without credentials, refused with a
 * certificate no cluster CA signed, 401/403 with its ServiceAccount token, 403 with a
 * cluster certificate that is not the apiserver's. `--control-plane-access socket` keeps the
 * single-host lab working.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { RESOURCE } from '../../src/api/resources.js';
import type { Node } from '../../src/api/types.js';
import { issueCertificate } from '../../src/apiserver/pki.js';
import { adminClient, clusterDown, type ClusterState } from '../../src/cli/cluster/cluster.js';
import { testCluster } from '../helpers/cluster.js';

const FABRIC_APISERVER = 'https://198.18.0.2:6443';
const KUBELET_PORT = 10250;

function kubectlIn(state: ClusterState, home: string, args: string[], input?: string): string {
  const result = spawnSync('/usr/bin/kubectl', args, { input, encoding: 'utf8', timeout: 120_000, env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home } });
  assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** One pod pinned to each node, printing a line that names its node. */
function podsManifest(nodes: readonly string[]): string {
  return nodes
    .map((node) =>
      toYaml({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `talk-${node}`, namespace: 'default' },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'busybox', command: ['sh', '-c', `echo hello-from-${node}; exec sleep 3600`] }] },
      }),
    )
    .join('\n---\n');
}

/** A flag's value on a recorded command line. */
function flagValue(argv: readonly string[], flag: string): string {
  const index = argv.indexOf(flag);
  assert.ok(index >= 0 && argv[index + 1], `${flag} on ${argv.join(' ')}`);
  return argv[index + 1]!;
}

describe('network-only lab: nodes reach the control plane over TCP + TLS on the fabric only', () => {
  let state: ClusterState;
  let home: string;
  const kubectl = (...args: string[]): string => kubectlIn(state, home, args);

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'pontoon-netlab-'));
    state = await testCluster('vxlan', { nodes: 3, pods: 0, controlPlane: true, proxy: 'none' });
    kubectlIn(state, home, ['apply', '-f', '-'], podsManifest(state.nodes.map((n) => n.name)));
    kubectl('wait', '--for=condition=Ready', ...state.nodes.map((n) => `pod/talk-${n.name}`), '--timeout=90s');
  });

  after(async () => {
    rmSync(home, { recursive: true, force: true });
    if (state) await clusterDown(state.name);
  });

  test('node kubeconfigs name the apiserver on the fabric with the cluster CA, never a unix socket; daemons hold TCP connections to it', async () => {
    const caPem = readFileSync(state.controlPlane!.caFile, 'utf8');
    for (const node of state.nodes) {
      const text = readFileSync(join(node.dir, 'kubeconfig'), 'utf8');
      assert.doesNotMatch(text, /unix:/, `${node.name}'s kubeconfig`);
      const config = parseYaml(text) as { clusters: { cluster: { server: string; 'certificate-authority-data': string } }[] };
      assert.equal(config.clusters.length, 1);
      assert.equal(config.clusters[0]!.cluster.server, FABRIC_APISERVER);
      assert.equal(Buffer.from(config.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString('utf8'), caPem);
      // The kubelet serves no socket the apiserver could take as a shortcut.
      assert.equal(existsSync(join(node.dir, 'kubelet', 'kubelet.sock')), false, `${node.name} has no kubelet.sock`);
      const held = spawnSync('ip', ['netns', 'exec', node.netns, 'ss', '-Htn', 'state', 'established', 'dst', '198.18.0.2', 'dport', '= :6443'], { encoding: 'utf8' });
      assert.ok(held.stdout.trim().split('\n').filter(Boolean).length >= 2, `${node.name}'s kubelet and flanneld talk to 198.18.0.2:6443:\n${held.stdout}${held.stderr}`);
    }
    const nodes = await adminClient(state).list<Node>(RESOURCE.nodes);
    for (const node of nodes.items) {
      assert.equal(node.status?.daemonEndpoints?.kubeletEndpoint?.Port, KUBELET_PORT, `${node.metadata.name} advertises its kubelet port`);
      assert.equal(node.metadata.annotations?.['pontoon.dev/kubelet-socket'], undefined, `${node.metadata.name} advertises no socket`);
    }
  });

  /** curl from the ctl namespace with the apiserver's kubelet-client certificate. */
  function asApiserver(url: string): string {
    const argv = state.controlPlane!.argv.apiserver;
    const result = spawnSync('ip', ['netns', 'exec', state.etcd.netns, 'curl', '-sS', '-m', '5', '--cacert', state.controlPlane!.caFile, '--cert', flagValue(argv, '--kubelet-client-certificate'), '--key', flagValue(argv, '--kubelet-client-key'), url], { encoding: 'utf8' });
    assert.equal(result.status, 0, `curl ${url} as the apiserver: ${result.stderr}`);
    return result.stdout;
  }

  /** kubelet_http_requests_total over the TLS port for one path, from the kubelet's /metrics. */
  function httpsRequests(metrics: string, path: string): number {
    const line = metrics.split('\n').find((l) => l.startsWith('kubelet_http_requests_total{') && l.includes(`path="${path}"`) && l.includes('server_type="https"'));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  test('kubectl logs and exec of a pod on every node go through that kubelet’s TLS port', () => {
    for (const node of state.nodes) {
      assert.match(kubectl('logs', `talk-${node.name}`), new RegExp(`hello-from-${node.name}`));
      assert.equal(kubectl('exec', `talk-${node.name}`, '--', 'sh', '-c', 'echo exec-on-$(hostname)').trim(), `exec-on-talk-${node.name}`);
      const metrics = asApiserver(`https://${node.underlayIp}:${KUBELET_PORT}/metrics`);
      assert.ok(httpsRequests(metrics, '/containerLogs') >= 1, `${node.name}'s kubelet served the log over TLS:\n${metrics}`);
      assert.ok(httpsRequests(metrics, '/exec') >= 1, `${node.name}'s kubelet served the exec over TLS:\n${metrics}`);
    }
  });

  test('a pod on n2 cannot use n3’s kubelet API: 401 bare, refused with a self-signed certificate, 401/403 with its ServiceAccount token', () => {
    const [, n2, n3] = state.nodes;
    assert.ok(n2 && n3);
    const target = `https://${n3.underlayIp}:${KUBELET_PORT}/pods`;
    // Positive control: the apiserver's identity reads the list, so the refusals below are about credentials.
    const list = JSON.parse(asApiserver(target)) as { kind: string; items: { metadata: { name: string } }[] };
    assert.equal(list.kind, 'PodList');
    assert.ok(list.items.some((p) => p.metadata.name === 'talk-n3'), JSON.stringify(list.items.map((p) => p.metadata.name)));

    const fromPod = (script: string): { status: number | null; out: string } => {
      const result = spawnSync('/usr/bin/kubectl', ['exec', 'talk-n2', '--', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home } });
      return { status: result.status, out: `${result.stdout}${result.stderr}`.trim() };
    };
    const code = (extra: string): string => `curl -sk -m 5 -o /dev/null -w '%{http_code}' ${extra} ${target}`;

    assert.equal(fromPod(code('')).out, '401', 'no credentials');

    const dir = mkdtempSync(join(tmpdir(), 'pontoon-netlab-cert-'));
    try {
      const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/O=system:masters/CN=admin', '-keyout', join(dir, 'self.key'), '-out', join(dir, 'self.crt')], { encoding: 'utf8' });
      assert.equal(made.status, 0, made.stderr);
      // The pod sees the host's files (the lab's containers share its root): hand it the pair there.
      const selfSigned = fromPod(code(`--cert ${join(dir, 'self.crt')} --key ${join(dir, 'self.key')}`));
      assert.ok(selfSigned.status !== 0 || selfSigned.out === '401', `a self-signed system:masters certificate is refused: ${selfSigned.status} ${selfSigned.out}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const tokenFile = '/var/run/secrets/kubernetes.io/serviceaccount/token';
    assert.ok(fromPod(`test -s ${tokenFile} && echo present`).out.endsWith('present'), 'the pod has a ServiceAccount token');
    const withToken = fromPod(code(`-H "Authorization: Bearer $(cat ${tokenFile})"`)).out;
    assert.ok(withToken === '401' || withToken === '403', `ServiceAccount token: ${withToken}`);
  });

  test('a certificate the cluster CA signed for another identity (node n2) is authenticated and then forbidden', () => {
    const [, n2, n3] = state.nodes;
    assert.ok(n2 && n3 && state.controlPlane?.caKeyFile);
    const dir = mkdtempSync(join(tmpdir(), 'pontoon-netlab-node-'));
    try {
      const cert = issueCertificate({ caCertPath: state.controlPlane.caFile, caKeyPath: state.controlPlane.caKeyFile }, dir, { name: 'n2-client', commonName: 'system:node:n2', organizations: ['system:nodes'], usage: 'clientAuth' });
      const result = spawnSync('ip', ['netns', 'exec', n2.netns, 'curl', '-sS', '-m', '5', '--cacert', state.controlPlane.caFile, '--cert', cert.certPath, '--key', cert.keyPath, '-w', ' %{http_code}', `https://${n3.underlayIp}:${KUBELET_PORT}/pods`], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /^Forbidden \(user=system:node:n2, verb=get, resource=nodes, subresource=proxy\) 403$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--control-plane-access socket: the single-host shortcut still works', () => {
  let state: ClusterState;
  let home: string;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'pontoon-socketlab-'));
    state = await testCluster('host-gw', { nodes: 1, pods: 0, controlPlane: true, proxy: 'none', controlPlaneAccess: 'socket' });
  });

  after(async () => {
    rmSync(home, { recursive: true, force: true });
    if (state) await clusterDown(state.name);
  });

  test('the node kubeconfig names the unix socket, and kubectl logs reaches the kubelet over its socket', () => {
    const node = state.nodes[0]!;
    const config = parseYaml(readFileSync(join(node.dir, 'kubeconfig'), 'utf8')) as { clusters: { cluster: { server: string } }[] };
    assert.equal(config.clusters[0]!.cluster.server, `unix:${state.controlPlane!.socket}`);
    kubectlIn(state, home, ['apply', '-f', '-'], podsManifest([node.name]));
    kubectlIn(state, home, ['wait', '--for=condition=Ready', `pod/talk-${node.name}`, '--timeout=90s']);
    assert.match(kubectlIn(state, home, ['logs', `talk-${node.name}`]), new RegExp(`hello-from-${node.name}`));
    assert.ok(existsSync(join(node.dir, 'kubelet', 'kubelet.sock')));
  });
});
