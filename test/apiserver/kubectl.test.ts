/**
 * The real /usr/bin/kubectl (v1.32) against the apiserver over HTTPS with a token, as a user
 * of `cluster up` would run it. No controllers run here: a Deployment just sits there.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Deployment, Pod } from '../../src/api/types.js';
import { ensurePki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from './server-harness.js';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);

const MANIFEST = (image: string): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ${image}
        command: ["httpd", "-f", "-p", "8080"]
        ports:
        - containerPort: 8080
          name: http
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
`;

/** The spec of MANIFEST's Deployment, for `kind: List` files (JSON, as `get -o json` writes them). */
function listedDeploymentSpec(app: string): Deployment['spec'] {
  return {
    replicas: 2,
    selector: { matchLabels: { app } },
    template: {
      metadata: { labels: { app } },
      spec: { containers: [{ name: 'web', image: 'busybox:1.36', ports: [{ containerPort: 8080, name: 'http' }] }] },
    },
  };
}

describe('kubectl against the apiserver', () => {
  let dir: string;
  let api: TestApi;
  /** A second apiserver on the same store over plain HTTP, where kubectl sends no token. */
  let plain: TestApi;
  let kubelet: Server;
  const kubeconfigs: Record<'admin' | 'anonymous', string> = { admin: '', anonymous: '' };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-kubectl-'));
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(tokensFile, 'kubectl-test-token,admin,1,"system:masters"\n');
    const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    api = await startTestApi(new MemoryStore(), { tokensFile, tlsCertFile: pki.certPath, tlsKeyFile: pki.keyPath });
    plain = await startTestApi(api.store, { tokensFile, closeStore: false });
    const ca = Buffer.from(pki.caPem).toString('base64');
    const kubeconfig = (token?: string): string =>
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        // Over https kubectl prompts for a password when the user has no credentials at all.
        token ? `- cluster: {server: "${api.url}", certificate-authority-data: ${ca}}` : `- cluster: {server: "${plain.url}"}`,
        '  name: test',
        'contexts:',
        '- context: {cluster: test, user: user}',
        '  name: test',
        'current-context: test',
        'users:',
        '- name: user',
        token ? `  user: {token: ${token}}` : '  user: {}',
        '',
      ].join('\n');
    kubeconfigs.admin = join(dir, 'admin.kubeconfig');
    kubeconfigs.anonymous = join(dir, 'anonymous.kubeconfig');
    writeFileSync(kubeconfigs.admin, kubeconfig('kubectl-test-token'));
    writeFileSync(kubeconfigs.anonymous, kubeconfig());

    // A stand-in kubelet log endpoint for `kubectl logs`.
    const socketPath = join(dir, 'kubelet.sock');
    kubelet = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`logs for ${req.url}\n`);
    });
    await new Promise<void>((resolve) => kubelet.listen(socketPath, resolve));
    await kubectl(['create', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', annotations: { 'pontoon.dev/kubelet-socket': socketPath } } }),
    });
  });
  after(async () => {
    kubelet?.close();
    await plain?.close();
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function env(): NodeJS.ProcessEnv {
    return { ...process.env, HOME: dir, KUBECONFIG: '' };
  }

  function args(list: string[], user: 'admin' | 'anonymous'): string[] {
    return ['--kubeconfig', kubeconfigs[user], '--cache-dir', join(dir, 'cache'), '--request-timeout', '20s', ...list];
  }

  /** Runs kubectl; resolves with its output, or rejects with stderr when it fails. */
  async function kubectl(list: string[], options: { input?: string; user?: 'admin' | 'anonymous' } = {}): Promise<string> {
    const user = options.user ?? 'admin';
    if (options.input !== undefined) {
      return new Promise((resolve, reject) => {
        const child = spawn(KUBECTL, args(list, user), { env: env() });
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(err || out))));
        child.stdin.end(options.input);
      });
    }
    try {
      const { stdout } = await run(KUBECTL, args(list, user), { env: env(), timeout: 60_000 });
      return stdout;
    } catch (err) {
      const failed = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(failed.stderr || failed.stdout || failed.message);
    }
  }

  function manifest(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  test('get, get -o wide, get -o yaml show real columns and objects', async () => {
    const namespaces = await kubectl(['get', 'namespaces']);
    assert.match(namespaces, /^NAME\s+STATUS\s+AGE/m);
    assert.match(namespaces, /^kube-system\s+Active/m);
    const services = await kubectl(['get', 'services', '-A', '-o', 'wide']);
    assert.match(services, /CLUSTER-IP.*SELECTOR/);
    assert.match(services, /^default\s+kubernetes\s+ClusterIP\s+10\.96\.0\.1\s+<none>\s+443\/TCP/m);
    const yaml = await kubectl(['get', 'service', 'kubernetes', '-o', 'yaml']);
    assert.match(yaml, /clusterIP: 10\.96\.0\.1/);
    assert.match(yaml, /kind: Service/);
  });

  test('apply -f twice: the second apply changes the image and keeps the container ports', async () => {
    const first = await kubectl(['apply', '-f', manifest('app.yaml', MANIFEST('busybox:1.36'))]);
    assert.match(first, /deployment\.apps\/web created/);
    assert.match(first, /service\/web created/);
    const second = await kubectl(['apply', '-f', manifest('app2.yaml', MANIFEST('busybox:1.37'))]);
    assert.match(second, /deployment\.apps\/web configured/);
    assert.match(second, /service\/web unchanged/);
    const deployment = JSON.parse(await kubectl(['get', 'deployment', 'web', '-o', 'json'])) as Deployment;
    const container = deployment.spec.template.spec.containers[0]!;
    assert.equal(container.image, 'busybox:1.37');
    assert.deepEqual(container.ports?.map((p) => [p.name, p.containerPort]), [['http', 8080]]);
    assert.equal(deployment.metadata.generation, 2);
    const wide = await kubectl(['get', 'deployments', '-o', 'wide']);
    assert.match(wide, /^web\s+0\/2\s+0\s+0\s+\S+\s+web\s+busybox:1\.37\s+app=web/m);
    const service = await kubectl(['get', 'service', 'web']);
    assert.match(service, /^web\s+ClusterIP\s+10\.\d+\.\d+\.\d+\s+<none>\s+80\/TCP/m);
  });

  test('apply --server-side creates, then updates', async () => {
    const configMap = (value: string): string => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  key: "${value}"\n`;
    assert.match(await kubectl(['apply', '--server-side', '-f', manifest('ssa.yaml', configMap('one'))]), /configmap\/ssa serverside-applied/);
    assert.match(await kubectl(['apply', '--server-side', '-f', manifest('ssa2.yaml', configMap('two'))]), /configmap\/ssa serverside-applied/);
    assert.equal(await kubectl(['get', 'configmap', 'ssa', '-o', 'jsonpath={.data.key}']), 'two');
  });

  test('apply -f of a kind: List file (as `get -o yaml` writes several objects) validates and creates each item', async () => {
    const configMap = (name: string): unknown => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { key: name } });
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: [configMap('listed-1'), configMap('listed-2'), { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'listed' }, spec: listedDeploymentSpec('listed') }],
    };
    const out = await kubectl(['apply', '-f', manifest('list.json', JSON.stringify(list))]);
    assert.match(out, /configmap\/listed-1 created/);
    assert.match(out, /configmap\/listed-2 created/);
    assert.match(out, /deployment\.apps\/listed created/);
    assert.equal(await kubectl(['get', 'configmap', 'listed-2', '-o', 'jsonpath={.data.key}']), 'listed-2');
    assert.equal(await kubectl(['get', 'deployment', 'listed', '-o', 'jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}']), '8080');
    await kubectl(['delete', 'configmap/listed-1', 'configmap/listed-2', 'deployment/listed']);
  });

  test('apply -f of a kind: List with invalid items: the server refuses those items (strict validation)', async () => {
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'listed-ok' }, data: { a: 'b' } },
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'listed-typo' }, datta: { a: 'b' } },
        { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'listed-bad' }, spec: { ...listedDeploymentSpec('listed-bad'), replicas: -1 } },
      ],
    };
    await assert.rejects(kubectl(['apply', '-f', manifest('bad-list.json', JSON.stringify(list))]), (err: Error) => {
      assert.match(err.message, /strict decoding error: unknown field "datta"/);
      assert.match(err.message, /spec\.replicas: Invalid value: -1: must be greater than or equal to 0/);
      return true;
    });
    await assert.rejects(kubectl(['get', 'configmap', 'listed-typo']), /NotFound/);
    await assert.rejects(kubectl(['get', 'deployment', 'listed-bad']), /NotFound/);
    // Items are sent one by one, as from a multi-document file: the valid one is created.
    await kubectl(['delete', 'configmap', 'listed-ok']);
  });

  test('scale changes spec.replicas through the scale subresource', async () => {
    assert.match(await kubectl(['scale', 'deployment', 'web', '--replicas=3']), /deployment\.apps\/web scaled/);
    assert.equal(await kubectl(['get', 'deployment', 'web', '-o', 'jsonpath={.spec.replicas}']), '3');
  });

  test('describe shows the object and its events', async () => {
    await kubectl(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'described', labels: { app: 'described' } },
        spec: { containers: [{ name: 'c', image: 'busybox' }] },
      }),
    });
    const created = JSON.parse(await kubectl(['get', 'pod', 'described', '-o', 'json'])) as Pod;
    await kubectl(['create', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'described.1' },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'described', namespace: 'default', uid: created.metadata.uid },
        reason: 'Scheduled',
        message: 'Successfully assigned default/described to node-1',
        type: 'Normal',
        source: { component: 'default-scheduler' },
        firstTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        lastTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        count: 1,
      }),
    });
    const described = await kubectl(['describe', 'pod', 'described']);
    assert.match(described, /^Name:\s+described/m);
    assert.match(described, /^Status:\s+Pending/m);
    assert.match(described, /Normal\s+Scheduled\s+.*Successfully assigned default\/described to node-1/);
    const deployment = await kubectl(['describe', 'deployment', 'web']);
    assert.match(deployment, /^Replicas:\s+3 desired/m);
    assert.match(deployment, /Port:\s+8080\/TCP/);
  });

  test('get pods with --selector and --field-selector', async () => {
    for (const [name, app, node] of [['sel-1', 'one', 'node-1'], ['sel-2', 'two', '']] as const) {
      await kubectl(['create', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name, labels: { app } },
          spec: { containers: [{ name: 'c', image: 'busybox' }], ...(node ? { nodeName: node } : {}) },
        }),
      });
    }
    const byLabel = await kubectl(['get', 'pods', '--selector', 'app=one', '-o', 'name']);
    assert.equal(byLabel.trim(), 'pod/sel-1');
    const bySet = await kubectl(['get', 'pods', '-l', 'app in (one,two)', '-o', 'name']);
    assert.deepEqual(bySet.trim().split('\n').sort(), ['pod/sel-1', 'pod/sel-2']);
    const byField = await kubectl(['get', 'pods', '--field-selector', 'spec.nodeName=node-1', '-o', 'name']);
    assert.equal(byField.trim(), 'pod/sel-1');
    const wide = await kubectl(['get', 'pods', '-o', 'wide', '--field-selector', 'metadata.name=sel-1']);
    assert.match(wide, /^sel-1\s+0\/1\s+Pending\s+0\s+\S+\s+<none>\s+node-1/m);
    await assert.rejects(kubectl(['get', 'pods', '--field-selector', 'spec.bogus=1']), /field label not supported: spec\.bogus/);
  });

  test('logs are proxied to the kubelet of the pod\'s node', async () => {
    const logs = await kubectl(['logs', 'sel-1']);
    assert.equal(logs, 'logs for /containerLogs/default/sel-1/c\n');
    await assert.rejects(kubectl(['logs', 'sel-2']), /does not have a host assigned/);
  });

  test('get -w sees ADDED and MODIFIED as they happen', async () => {
    // A pod that is there before the watch: kubectl prints it from its first list and then
    // watches from that list's version, so once it is printed the creation below is an event.
    const marker = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'watched-marker', labels: { app: 'watched' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } };
    await kubectl(['create', '-f', '-'], { input: JSON.stringify(marker) });
    const child = spawn(KUBECTL, args(['get', 'pods', '-w', '--selector', 'app=watched'], 'admin'), { env: env() });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor(() => /^watched-marker\s/m.test(out), () => out);
      await kubectl(['create', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'watched', labels: { app: 'watched' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } }),
      });
      await waitFor(() => /^watched\s+0\/1\s+Pending/m.test(out), () => out);
      await kubectl(['annotate', 'pod', 'watched', 'touched=yes']);
      await waitFor(() => (out.match(/^watched\s/gm) ?? []).length >= 2, () => out);
      assert.match(out, /^NAME\s+READY\s+STATUS/m);
    } finally {
      child.kill('SIGTERM');
      await kubectl(['delete', 'pod', 'watched-marker', '--wait=false']);
    }
  });

  test('create of an invalid object prints the 422 causes; nothing is stored', async () => {
    const bad = MANIFEST('busybox').split('---')[0]!.replace('name: web', 'name: bad').replace('replicas: 2', 'replicas: -1');
    await assert.rejects(kubectl(['create', '-f', manifest('bad.yaml', bad)]), (err: Error) => {
      assert.match(err.message, /The Deployment "bad" is invalid/);
      assert.match(err.message, /spec\.replicas: Invalid value: -1: must be greater than or equal to 0/);
      return true;
    });
    await assert.rejects(kubectl(['get', 'deployment', 'bad']), /NotFound/);
    const unknown = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  a: b\n';
    await assert.rejects(kubectl(['create', '-f', manifest('typo.yaml', unknown)]), /strict decoding error: unknown field "datta"/);
    await assert.rejects(kubectl(['create', '-f', manifest('app3.yaml', MANIFEST('busybox'))]), /AlreadyExists/);
  });

  test('delete returns once the objects are gone', async () => {
    const deleted = await kubectl(['delete', 'deployment', 'web']);
    assert.match(deleted, /deployment\.apps "web" deleted/);
    await assert.rejects(kubectl(['get', 'deployment', 'web']), /NotFound/);
    assert.match(await kubectl(['delete', 'pod', 'watched', 'sel-2']), /pod "sel-2" deleted/);
    assert.match(await kubectl(['delete', 'service', 'web']), /service "web" deleted/);
  });

  test('generator commands (sent as protobuf): create deployment/configmap/service, run, expose', async () => {
    assert.match(await kubectl(['create', 'deployment', 'gen', '--image=busybox:1', '--port=8080', '--replicas=2', '--', 'sleep', '3600']), /deployment\.apps\/gen created/);
    const deployment = JSON.parse(await kubectl(['get', 'deployment', 'gen', '-o', 'json'])) as Deployment;
    assert.equal(deployment.spec.replicas, 2);
    assert.deepEqual(deployment.spec.selector.matchLabels, { app: 'gen' });
    const container = deployment.spec.template.spec.containers[0]!;
    assert.deepEqual([container.name, container.image, container.command, container.ports?.[0]?.containerPort], ['busybox', 'busybox:1', ['sleep', '3600'], 8080]);
    assert.equal(deployment.spec.template.spec.hostNetwork, undefined, 'zero values Go writes are not stored');

    await kubectl(['create', 'configmap', 'gen', '--from-literal=a=b', '--from-literal=c=d']);
    assert.equal(await kubectl(['get', 'configmap', 'gen', '-o', 'jsonpath={.data.a}{.data.c}']), 'bd');

    await kubectl(['run', 'gen-pod', '--image=busybox', '--env=A=1', '--labels=x=y', '--', 'sleep', '100']);
    const pod = JSON.parse(await kubectl(['get', 'pod', 'gen-pod', '-o', 'json'])) as Pod;
    assert.deepEqual(pod.spec.containers[0]!.env, [{ name: 'A', value: '1' }]);
    assert.deepEqual(pod.spec.containers[0]!.args, ['sleep', '100']);
    assert.deepEqual(pod.metadata.labels, { x: 'y' });

    await kubectl(['expose', 'deployment', 'gen', '--port=80', '--target-port=8080']);
    assert.equal(await kubectl(['get', 'service', 'gen', '-o', 'jsonpath={.spec.ports[0].port}/{.spec.ports[0].targetPort}/{.spec.selector.app}']), '80/8080/gen');
    await kubectl(['create', 'service', 'nodeport', 'gen-np', '--tcp=80:http']);
    const nodePort = Number(await kubectl(['get', 'service', 'gen-np', '-o', 'jsonpath={.spec.ports[0].nodePort}']));
    assert.ok(nodePort >= 30000 && nodePort <= 32767);
    assert.equal(await kubectl(['get', 'service', 'gen-np', '-o', 'jsonpath={.spec.ports[0].targetPort}']), 'http');
    await kubectl(['delete', 'deployment/gen', 'configmap/gen', 'pod/gen-pod', 'service/gen', 'service/gen-np']);
  });

  test('create namespace, get all in it, delete namespace (returns once it is gone)', async () => {
    assert.match(await kubectl(['create', 'namespace', 'scratch']), /namespace\/scratch created/);
    await kubectl(['-n', 'scratch', 'apply', '-f', manifest('scratch.yaml', MANIFEST('busybox'))]);
    const all = await kubectl(['-n', 'scratch', 'get', 'all']);
    assert.match(all, /service\/web\s+ClusterIP/);
    assert.match(all, /deployment\.apps\/web\s+0\/2/);
    assert.match(await kubectl(['delete', 'namespace', 'scratch']), /namespace "scratch" deleted/);
    await assert.rejects(kubectl(['get', 'namespace', 'scratch']), /NotFound/);
    await assert.rejects(kubectl(['-n', 'scratch', 'get', 'deployment', 'web']), /NotFound/);
  });

  test('without a token (plain HTTP) kubectl may neither read nor create', async () => {
    await assert.rejects(kubectl(['get', 'namespaces'], { user: 'anonymous' }), /Forbidden|forbidden/);
    await assert.rejects(
      kubectl(['create', 'configmap', 'anon', '--from-literal=a=b'], { user: 'anonymous' }),
      /Forbidden|forbidden/,
    );
  });
});

async function waitFor(check: () => boolean, describe: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`not seen in time; output so far:\n${describe()}`);
    await sleep(100);
  }
}
