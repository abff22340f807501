/**
 * flanneld under bad conditions: etcd down at start, a broken network config, an exhausted
 * subnet pool, etcd dying while the cluster runs, and a node whose lease expires.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cliPath, clusterDown, isAlive, type NodeState } from '../../src/cli/cluster/cluster.js';
import { makeFabric, plug } from '../../src/cli/cluster/topology.js';
import { parseIpNet } from '../../src/lib/ip.js';
import { FLANNEL_ROUTE_PROTOCOL } from '../../src/flanneld/backend/backend.js';
import { crossNodeFailures, testCluster, waitUntil, withNodeRtnl } from '../helpers/cluster.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('fld');
const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
  lab.cleanup();
});

/** fabric + ctl (etcd's place, 198.18.0.2) + `count` nodes, no daemons yet. */
function miniTopology(tag: string, count: number) {
  const fabric = lab.netns(`${tag}fab`);
  makeFabric(fabric, 1);
  const ctl = lab.netns(`${tag}ctl`);
  plug(fabric, 0, 'ctl', ctl, 'eth0', parseIpNet('198.18.0.2/24'));
  const nodes = Array.from({ length: count }, (_, i) => {
    const netns = lab.netns(`${tag}n${i + 1}`);
    plug(fabric, 0, `n${i + 1}`, netns, 'eth0', parseIpNet(`198.18.0.${11 + i}/24`));
    return netns;
  });
  return { ctl, nodes, dir: lab.tempDir('fld') };
}

function startEtcdIn(netns: string, dataDir: string): ChildProcess {
  const child = spawn(
    'ip',
    ['netns', 'exec', netns, 'etcd', '--name', 'd', '--data-dir', dataDir, '--listen-client-urls', 'http://198.18.0.2:2379,http://127.0.0.1:2379', '--advertise-client-urls', 'http://198.18.0.2:2379', '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'd=http://127.0.0.1:2380', '--log-level', 'error'],
    { stdio: 'ignore' },
  );
  children.push(child);
  return child;
}

/** Writes raw bytes to an etcd key through its v3 JSON gateway, from inside `netns`. */
function etcdPutRaw(netns: string, key: string, value: string): void {
  const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') });
  const script = `fetch('http://127.0.0.1:2379/v3/kv/put',{method:'POST',body:${JSON.stringify(body)}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(2))`;
  for (let attempt = 0; attempt < 100; attempt++) {
    if (spawnSync('ip', ['netns', 'exec', netns, process.execPath, '-e', script]).status === 0) return;
    spawnSync('sleep', ['0.2']);
  }
  throw new Error('etcd never accepted the write');
}

function startFlanneld(netns: string, dir: string, extra: string[] = []): { child: ChildProcess; log: () => string; subnetFile: string } {
  mkdirSync(dir, { recursive: true });
  const subnetFile = join(dir, 'subnet.env');
  let output = '';
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, cliPath(), 'flanneld', '--etcd-endpoints', 'http://198.18.0.2:2379', '--iface', 'eth0', '--subnet-file', subnetFile, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  children.push(child);
  return { child, log: () => output, subnetFile };
}

const CONFIG = '/coreos.com/network/config';

test('etcd down at start, then a broken config: flanneld retries with a clear log line and proceeds once both are fixed', async () => {
  const { ctl, nodes, dir } = miniTopology('a', 1);
  const daemon = startFlanneld(nodes[0]!, join(dir, 'n1'));
  await waitUntil('a log line saying the store is unreachable', 15_000, () => /read network config from etcd http:\/\/198\.18\.0\.2:2379 .*failed; retrying/.test(daemon.log()));
  assert.equal(daemon.child.exitCode, null, 'still running');
  startEtcdIn(ctl, join(dir, 'etcd'));
  etcdPutRaw(ctl, CONFIG, '{"Network": "10.244.0.0/16", "Backend": ');
  await waitUntil('a log line about the broken config', 20_000, () => /invalid network config: \(json\): not valid JSON/.test(daemon.log()));
  assert.equal(existsSync(daemon.subnetFile), false);
  etcdPutRaw(ctl, CONFIG, '{"Network": "10.244.0.0/16", "Backend": {"Type": "host-gw"}}');
  await waitUntil('subnet.env after the fix', 40_000, () => existsSync(daemon.subnetFile));
  assert.match(readFileSync(daemon.subnetFile, 'utf8'), /FLANNEL_SUBNET=10\.244\.\d+\.1\/24/);
});

test('an exhausted subnet pool: the second node waits and says so', async () => {
  const { ctl, nodes, dir } = miniTopology('b', 2);
  startEtcdIn(ctl, join(dir, 'etcd'));
  etcdPutRaw(ctl, CONFIG, '{"Network": "10.60.0.0/16", "SubnetMin": "10.60.5.0", "SubnetMax": "10.60.5.0", "Backend": {"Type": "host-gw"}}');
  const first = startFlanneld(nodes[0]!, join(dir, 'n1'));
  await waitUntil('the first node’s lease', 20_000, () => existsSync(first.subnetFile));
  const second = startFlanneld(nodes[1]!, join(dir, 'n2'));
  await waitUntil('the exhaustion message', 20_000, () => /"err":"no free subnet left between SubnetMin and SubnetMax[^"]*".*"msg":"acquire subnet lease failed; retrying"/.test(second.log()));
  assert.equal(existsSync(second.subnetFile), false);
  assert.equal(second.child.exitCode, null);
});

test('etcd dying mid-run keeps the data plane; an expired lease is removed from every other node', async () => {
  const state = await testCluster('host-gw', { leaseTtlSeconds: 4, pods: 1 });
  try {
    const [n1, , n3] = state.nodes as [NodeState, NodeState, NodeState];
    process.kill(state.etcd.pid, 'SIGKILL');
    // Every flanneld has seen etcd go (its watch says so) before the data plane is checked.
    const lost = (n: NodeState): boolean => readFileSync(join(n.dir, 'flanneld.log'), 'utf8').includes('lease watch lost the store; data plane kept');
    await waitUntil('every flanneld to see etcd gone', 30_000, () => state.nodes.every(lost));
    assert.deepEqual(crossNodeFailures(state), [], 'pods still talk with etcd gone');
    assert.ok(state.nodes.every((n) => isAlive(n.flanneldPid, 'flanneld')), 'no daemon gave up');

    // etcd back (same data dir); then n3 dies without a word and its lease runs out.
    const etcd = spawn('ip', ['netns', 'exec', state.etcd.netns, 'etcd', '--name', 'pontoon', '--data-dir', join(state.stateDir, 'etcd'), '--listen-client-urls', 'http://198.18.0.2:2379,http://127.0.0.1:2379', '--advertise-client-urls', 'http://198.18.0.2:2379', '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'pontoon=http://127.0.0.1:2380', '--log-level', 'error'], { stdio: 'ignore', detached: true });
    state.etcd.pid = etcd.pid ?? 0;
    children.push(etcd);
    process.kill(n3.flanneldPid, 'SIGKILL');
    const hasRouteToN3 = () => withNodeRtnl(n1, (rtnl) => rtnl.routes(4).some((r) => r.protocol === FLANNEL_ROUTE_PROTOCOL && r.dst !== undefined && `${r.dst.value}` === `${parseIpNet(n3.subnet).value}`));
    assert.ok(hasRouteToN3());
    await waitUntil('n3’s lease to expire and its route to go', 30_000, () => !hasRouteToN3());
  } finally {
    await clusterDown(state.name);
  }
});
