/**
 * `pontoon trace` against a real lab (vxlan, nftables proxy, 2 nodes): healthy paths arrive
 * and match `--probe`; then one thing at a time is broken in the kernel and the trace must
 * name exactly that hop (node and step) and exit 1; bad arguments exit 2 with one line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { RESOURCE } from '../../src/api/resources.js';
import type { Pod } from '../../src/api/types.js';
import { adminClient, clusterDown, type ClusterState, findNode, restartComponent, stopProcess } from '../../src/cli/cluster/cluster.js';
import type { Hop } from '../../src/debug/trace/packet.js';
import { run } from '../../src/lib/exec.js';
import { testCluster, waitUntil } from '../helpers/cluster.js';
import { ECHO, labKubectl, labTrace, type TraceResult } from '../helpers/trace.js';

describe('pontoon trace in the lab (vxlan, nftables)', () => {
  let state: ClusterState;
  let home: string;
  const ips: Record<string, string> = {};

  const kubectl = (input: string | undefined, ...args: string[]): string => labKubectl(state, home, input, ...args);
  const trace = (...args: string[]): TraceResult => labTrace(state, ...args);

  function deathOf(result: ReturnType<typeof trace>): Hop {
    assert.equal(result.code, 1, `expected the packet to die:\n${result.stdout}${result.stderr}`);
    const hop = result.json?.hops.at(-1);
    assert.ok(hop && hop.verdict === 'drop', result.stdout);
    return hop;
  }

  const echoPod = (name: string, node: string, app: string): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'echo', image: 'pontoon/echo', command: [process.execPath, ECHO, name, '8080'], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }],
    },
  });

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'pontoon-trace-'));
    state = await testCluster('vxlan', { nodes: 2, pods: 0, controlPlane: true, proxy: 'nftables' });
    const service = (name: string, app: string): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } });
    const objects = [echoPod('a', 'n1', 'web'), echoPod('b', 'n2', 'web'), echoPod('c', 'n1', 'client'), echoPod('solo', 'n2', 'solo'), service('web', 'web'), service('solo', 'solo')];
    kubectl(objects.map((o) => toYaml(o)).join('---\n'), 'apply', '-f', '-');
    kubectl(undefined, 'wait', '--for=condition=Ready', 'pod/a', 'pod/b', 'pod/c', 'pod/solo', '--timeout=90s');
    for (const pod of (await adminClient(state).list<Pod>(RESOURCE.pods, 'default')).items) ips[pod.metadata.name ?? ''] = pod.status?.podIP ?? '';
    // The proxies have the Services' endpoints once a trace through them arrives.
    await waitUntil('svc/web and svc/solo programmed', 30_000, () => trace('pod/c', 'svc/web').code === 0 && trace('pod/c', 'svc/solo').code === 0);
  });

  after(async () => {
    rmSync(home, { recursive: true, force: true });
    if (state) await clusterDown(state.name);
  });

  test('every pod pair and pod → Service pair arrives and matches --probe', () => {
    const pairs: [string, string][] = [];
    for (const from of ['a', 'b', 'c']) {
      for (const to of ['a', 'b', 'c']) if (from !== to) pairs.push([`pod/${from}`, `pod/${to}`]);
      pairs.push([`pod/${from}`, 'svc/web']);
    }
    const failures: string[] = [];
    for (const [from, to] of pairs) {
      const result = trace(from, to, '--probe', ...(to.startsWith('pod/') ? ['--port', '8080'] : []));
      if (result.code !== 0 || result.json?.probe?.mismatch !== false) failures.push(`${from} → ${to}: exit ${result.code}, probe ${result.json?.probe?.mismatchDetail ?? JSON.stringify(result.json?.probe)}\n${result.stderr}`);
    }
    assert.deepEqual(failures, []);
  });

  test('bad arguments: one line on stderr, exit 2', () => {
    for (const args of [['pod/nope', 'pod/a'], ['pod/c', 'svc/web:81'], ['pod/c', 'fd00::1'], ['svc/web', 'pod/a']]) {
      const result = trace(...args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, /^pontoon trace: /);
    }
  });

  /** Stops a node's flanneld (it would repair what the test breaks), runs `fn`, restarts it. */
  async function withFlanneldStopped(nodeName: string, fn: () => void): Promise<void> {
    const node = findNode(state, nodeName);
    await stopProcess(node.flanneldPid, 'flanneld');
    try {
      fn();
    } finally {
      await restartComponent(state, 'flanneld', nodeName);
      await waitUntil('flanneld repaired the path', 30_000, () => trace('pod/c', 'pod/b', '--port', '8080').code === 0);
    }
  }

  const n1 = (): string => findNode(state, 'n1').netns;
  const n2 = (): string => findNode(state, 'n2').netns;
  const vtepOfN2 = (): string => `${(findNode(state, 'n2').subnet.split('/')[0] ?? '').replace(/\.\d+$/, '.0')}`;

  test('a deleted FDB entry (flanneld stopped) is named: fdb on n1', async () => {
    await withFlanneldStopped('n1', () => {
      const line = run('bridge', ['fdb', 'show', 'dev', 'flannel.1'], { netns: n1() }).split('\n').find((l) => l.includes('dst 198.18.0.12'));
      assert.ok(line, 'no FDB entry towards n2');
      run('bridge', ['fdb', 'del', line.split(' ')[0] ?? '', 'dev', 'flannel.1', 'dst', '198.18.0.12'], { netns: n1() });
      const hop = deathOf(trace('pod/c', 'pod/b', '--port', '8080'));
      assert.deepEqual([hop.node, hop.step], ['n1', 'fdb']);
    });
  });

  test('a deleted neighbour entry (flanneld stopped) is named: neighbour on n1', async () => {
    await withFlanneldStopped('n1', () => {
      run('ip', ['neigh', 'del', vtepOfN2(), 'dev', 'flannel.1'], { netns: n1() });
      const hop = deathOf(trace('pod/c', 'pod/b', '--port', '8080'));
      assert.deepEqual([hop.node, hop.step], ['n1', 'neighbour']);
    });
  });

  test('a deleted route (flanneld stopped) is named: route on n1', async () => {
    await withFlanneldStopped('n1', () => {
      run('ip', ['route', 'del', findNode(state, 'n2').subnet], { netns: n1() });
      const hop = deathOf(trace('pod/c', 'pod/b', '--port', '8080'));
      assert.deepEqual([hop.node, hop.step], ['n1', 'route']);
    });
  });

  test('an inserted DROP rule is named by chain and rule, and --probe agrees', () => {
    const rule = ['FORWARD', '-d', `${ips['b']}/32`, '-p', 'tcp', '-j', 'DROP'];
    run('iptables', ['-I', ...rule], { netns: n2() });
    try {
      const result = trace('pod/c', 'pod/b', '--port', '8080', '--probe');
      const hop = deathOf(result);
      assert.deepEqual([hop.node, hop.step], ['n2', 'nf forward']);
      assert.match(hop.detail, /iptables -t filter chain FORWARD rule 1: -A FORWARD -d [\d.]+\/32 -p tcp -j DROP/);
      assert.equal(result.json?.probe?.mismatch, false, result.json?.probe?.mismatchDetail);
    } finally {
      run('iptables', ['-D', ...rule], { netns: n2() });
    }
  });

  test('a Service scaled to no endpoints is named', async () => {
    kubectl(undefined, 'delete', 'pod', 'solo', '--wait=true');
    await waitUntil('svc/solo without endpoints in the rules', 30_000, () => trace('pod/c', 'svc/solo').code === 1);
    const hop = deathOf(trace('pod/c', 'svc/solo'));
    assert.equal(hop.node, 'n1');
    assert.match(hop.reason ?? '', /no endpoints/);
    assert.match(hop.detail, /service-endpoints-check/);
  });

  test('strict rp_filter (with an asymmetric reverse route) is named: rp_filter on n2', () => {
    run('ip', ['route', 'add', `${ips['c']}/32`, 'via', '198.18.0.11', 'dev', 'eth0'], { netns: n2() });
    run('sysctl', ['-qw', 'net.ipv4.conf.flannel/1.rp_filter=1'], { netns: n2() });
    try {
      const result = trace('pod/c', 'pod/b', '--port', '8080', '--probe');
      const hop = deathOf(result);
      assert.deepEqual([hop.node, hop.step], ['n2', 'rp_filter']);
      assert.equal(result.json?.probe?.mismatch, false, result.json?.probe?.mismatchDetail);
    } finally {
      run('sysctl', ['-qw', 'net.ipv4.conf.flannel/1.rp_filter=0'], { netns: n2() });
      run('ip', ['route', 'del', `${ips['c']}/32`], { netns: n2() });
    }
  });

  test('a link set down is named: the destination pod’s veth on n2', () => {
    const healthy = trace('pod/c', 'pod/b', '--port', '8080');
    const veth = healthy.json?.hops.find((h) => h.node === 'n2' && h.step === 'veth')?.at?.iface;
    assert.ok(veth, healthy.stdout);
    run('ip', ['link', 'set', veth, 'down'], { netns: n2() });
    try {
      const hop = deathOf(trace('pod/c', 'pod/b', '--port', '8080'));
      assert.deepEqual([hop.node, hop.step], ['n2', 'veth']);
      assert.match(hop.reason ?? '', new RegExp(`${veth} is down`));
    } finally {
      run('ip', ['link', 'set', veth, 'up'], { netns: n2() });
    }
  });

  test('an underlay MTU below the VXLAN packet is named: mtu on n1', () => {
    run('ip', ['link', 'set', 'eth0', 'mtu', '1400'], { netns: n1() });
    try {
      const hop = deathOf(trace('pod/c', 'pod/b', '--port', '8080'));
      assert.deepEqual([hop.node, hop.step], ['n1', 'mtu']);
      assert.match(hop.reason ?? '', /eth0 mtu 1400/);
    } finally {
      run('ip', ['link', 'set', 'eth0', 'mtu', '1500'], { netns: n1() });
    }
  });
});
