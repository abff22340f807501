/**
 * `cluster add-node` through `pontoon join`: a node joins with a bootstrap token over the
 * fabric (its kubeconfig holds its own certificate, no static token), becomes Ready and runs
 * a pod; a wrong or expired token is refused with one clear line and leaves no Node, no
 * namespace and no state behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { bootstrapTokenSecret, formatBootstrapToken, generateBootstrapToken } from '../../src/api/bootstrap-token.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Secret } from '../../src/api/serviceaccount.js';
import type { Node, Pod } from '../../src/api/types.js';
import { addNode } from '../../src/cli/cluster/add-node.js';
import { adminClient, ClusterError, cliPath, clusterDown, clusterUp, loadState, type ClusterState } from '../../src/cli/cluster/cluster.js';
import { listNetns } from '../../src/lib/netns.js';
import { TEST_NETNS_PREFIX } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

let state: ClusterState;

function nothingLeftOf(nodeName: string): void {
  const fresh = loadState(state.name);
  assert.ok(!fresh.nodes.some((n) => n.name === nodeName), 'no node in the lab state');
  assert.ok(!listNetns().some((n) => n === `${state.name}-${nodeName}` || n.startsWith(`${state.name}-${nodeName}-`)), 'no namespace');
}

describe('nodes join with a bootstrap token', () => {
  before(async () => {
    const name = `${TEST_NETNS_PREFIX}jn`;
    try {
      state = await clusterUp({
        name,
        nodes: 1,
        backend: 'host-gw',
        racks: 1,
        podsPerNode: 0,
        directRouting: false,
        leaseTtlSeconds: 3600,
        controlPlane: true,
        subnetStore: 'kube',
        proxy: 'none',
        agents: 'process',
        progress: () => undefined,
      });
    } catch (err) {
      await clusterDown(name);
      throw err;
    }
  });
  after(async () => {
    if (state) await clusterDown(state.name);
  });

  test('a wrong token is refused and nothing is left behind', async () => {
    const wrong = formatBootstrapToken(generateBootstrapToken());
    await assert.rejects(addNode(state, { name: 'bad', token: wrong, progress: () => undefined }), (err: unknown) => {
      assert.ok(err instanceof ClusterError, String(err));
      assert.match(err.message, /^node bad could not join: the apiserver refused the bootstrap token/);
      assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
      return true;
    });
    nothingLeftOf('bad');
    assert.equal(await adminClient(state).get<Node>(RESOURCE.nodes, 'bad'), undefined);
  });

  test('an expired token is refused and nothing is left behind', async () => {
    const token = generateBootstrapToken();
    await adminClient(state).create<Secret>(RESOURCE.secrets, bootstrapTokenSecret({ token, expires: new Date(Date.now() - 60_000) }));
    await assert.rejects(addNode(state, { name: 'late', token: formatBootstrapToken(token), progress: () => undefined }), (err: unknown) => {
      assert.ok(err instanceof ClusterError, String(err));
      // Expired, or already removed by tokencleaner: refused either way.
      assert.match(err.message, /^node late could not join: the apiserver refused the bootstrap token \(Unauthorized: (bootstrap token \w+ expired|invalid bootstrap token)/);
      return true;
    });
    nothingLeftOf('late');
    assert.equal(await adminClient(state).get<Node>(RESOURCE.nodes, 'late'), undefined);
  });

  test('add-node joins with a token of its own: node Ready with its certificate, runs a pod', async () => {
    const node = await addNode(state, { progress: () => undefined });
    const kubeconfig = parseYaml(readFileSync(join(node.dir, 'kubeconfig'), 'utf8')) as { clusters: { cluster: { server: string } }[]; users: { user: Record<string, unknown> }[] };
    assert.equal(kubeconfig.clusters[0]?.cluster.server, state.controlPlane?.fabricUrl);
    assert.ok(kubeconfig.users[0]?.user['client-certificate-data'], 'a client certificate');
    assert.equal(kubeconfig.users[0]?.user['token'], undefined, 'no static token');
    const api = adminClient(state);
    const ready = await poll(
      `${node.name} Ready`,
      async () => (await api.get<Node>(RESOURCE.nodes, node.name))?.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True'),
      { timeoutMs: 60_000 },
    );
    assert.ok(ready);
    await api.create<Pod>(RESOURCE.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'on-joined', namespace: 'default' },
      spec: { nodeName: node.name, containers: [{ name: 'main', image: 'busybox', command: ['/bin/busybox', 'sleep', '100000'] }] },
    });
    const pod = await poll('pod on the joined node Running', async () => {
      const found = await api.get<Pod>(RESOURCE.pods, 'on-joined', 'default');
      return found?.status?.phase === 'Running' && found.status.podIP ? found : undefined;
    }, { timeoutMs: 90_000 });
    const [network] = node.subnet.split('/');
    assert.ok(pod.status?.podIP?.startsWith(network!.split('.').slice(0, 3).join('.')), `${pod.status?.podIP} in ${node.subnet}`);
  });

  test('pontoon token create --print-join-command, list, delete; the printed token joins a node', async () => {
    const cli = (...args: string[]): string => execFileSync(process.execPath, [cliPath(), 'token', ...args, '--kubeconfig', state.controlPlane!.kubeconfig], { encoding: 'utf8' });
    const line = cli('create', '--ttl', '10m', '--print-join-command').trim();
    const match = /^pontoon join --server (https:\/\/\S+) --token ([a-z0-9]{6})\.([a-z0-9]{16}) --ca-cert-hash (sha256:[0-9a-f]{64})$/.exec(line);
    assert.ok(match, line);
    assert.equal(match[1], state.controlPlane?.fabricUrl, 'the advertised fabric address');
    assert.match(cli('list'), new RegExp(`^${match[2]}\\s+\\S+Z\\s+authentication,signing`, 'm'));
    const node = await addNode(state, { name: 'bycli', token: `${match[2]}.${match[3]}`, progress: () => undefined });
    assert.equal(node.name, 'bycli');
    assert.match(cli('delete', match[2]!), /deleted/);
    assert.ok(!cli('list').includes(match[2]!));
  });
});
