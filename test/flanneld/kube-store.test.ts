/** The apiserver subnet store (flannel's kube-subnet-mgr) against an in-process apiserver. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RESOURCE } from '../../src/api/resources.js';
import type { Node } from '../../src/api/types.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { KubeClient } from '../../src/client/client.js';
import { KubeSubnetStore, leaseOf } from '../../src/flanneld/subnet/kube.js';
import type { LeaseEvent } from '../../src/flanneld/subnet/lease.js';
import { formatIpNet, parseIpNet } from '../../src/lib/ip.js';
import { createLogger } from '../../src/lib/log.js';
import { startTestApi, type TestApi } from '../apiserver/server-harness.js';
import { poll } from '../helpers/wait.js';

let api: TestApi;
let client: KubeClient;
let dir: string;
const log = createLogger('kube-store-test', { level: 'silent' });

before(async () => {
  api = await startTestApi(new MemoryStore());
  client = new KubeClient({ server: api.url });
  dir = mkdtempSync(join(tmpdir(), 'pontoon-kube-store-'));
  writeFileSync(join(dir, 'net-conf.json'), '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
});
after(async () => {
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

function store(nodeName: string): KubeSubnetStore {
  return new KubeSubnetStore({ api: client, nodeName, netConfPath: join(dir, 'net-conf.json'), log, podCidrPollMs: 50 });
}

async function createNode(name: string, podCIDR?: string): Promise<void> {
  await client.create<Node>(RESOURCE.nodes, { metadata: { name }, spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {} });
}

const vxlanAttrs = (ip: string, mac: string) => ({ publicIp: ip, backendType: 'vxlan', backendData: { VtepMAC: mac } });

test('the network config comes from the net-conf file; a missing file is "not yet"', async () => {
  assert.match((await store('any').getNetworkConfig()) ?? '', /10\.244\.0\.0\/16/);
  const missing = new KubeSubnetStore({ api: client, nodeName: 'x', netConfPath: join(dir, 'nope.json'), log });
  assert.equal(await missing.getNetworkConfig(), undefined);
});

test('acquire waits for node-ipam’s podCIDR, then publishes the flannel annotations', async () => {
  await createNode('k1');
  const n1 = store('k1');
  const acquiring = n1.acquireLease(vxlanAttrs('198.18.0.11', 'aa:bb:cc:00:00:01'), [], 3600);
  await sleep(200);
  await client.patch(RESOURCE.nodes, 'k1', undefined, { spec: { podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24'] } }, 'merge');
  const lease = await acquiring;
  assert.equal(formatIpNet(lease.subnet), '10.244.7.0/24');
  const node = await client.get<Node>(RESOURCE.nodes, 'k1');
  assert.equal(node?.metadata.annotations?.['flannel.alpha.coreos.com/public-ip'], '198.18.0.11');
  assert.equal(node?.metadata.annotations?.['flannel.alpha.coreos.com/backend-type'], 'vxlan');
  assert.deepEqual(JSON.parse(node?.metadata.annotations?.['flannel.alpha.coreos.com/backend-data'] ?? '{}'), { VtepMAC: 'aa:bb:cc:00:00:01' });
  assert.deepEqual(leaseOf(node!)?.attrs, lease.attrs);

  // Renewal re-asserts annotations someone removed.
  await client.patch(RESOURCE.nodes, 'k1', undefined, { metadata: { annotations: { 'flannel.alpha.coreos.com/public-ip': null } } }, 'merge');
  await n1.renewLease(lease, 3600);
  const repaired = await client.get<Node>(RESOURCE.nodes, 'k1');
  assert.equal(repaired?.metadata.annotations?.['flannel.alpha.coreos.com/public-ip'], '198.18.0.11');

  // A Node deleted (and so its podCIDR released) means the lease is gone.
  await client.delete(RESOURCE.nodes, 'k1');
  await assert.rejects(n1.renewLease(lease, 3600), { name: 'LeaseLostError' });
  await n1.close();
});

test('watch: other nodes’ leases appear when published, change, and go with their Node', async () => {
  await createNode('w1', '10.244.21.0/24');
  await createNode('w2', '10.244.22.0/24');
  const w1 = store('w1');
  const w2 = store('w2');
  await w1.acquireLease(vxlanAttrs('198.18.0.21', 'aa:00:00:00:00:21'), [], 3600);
  const events: LeaseEvent[] = [];
  const { leases, stop } = await w1.watchLeases((batch) => events.push(...batch), () => undefined);
  try {
    assert.ok(leases.some((l) => formatIpNet(l.subnet) === '10.244.21.0/24'), 'our own lease is listed');
    assert.ok(!leases.some((l) => formatIpNet(l.subnet) === '10.244.22.0/24'), 'w2 has published nothing yet');

    await w2.acquireLease(vxlanAttrs('198.18.0.22', 'aa:00:00:00:00:22'), [], 3600);
    await waitFor(() => events.some((e) => e.type === 'added' && formatIpNet(e.lease.subnet) === '10.244.22.0/24'));
    const added = events.find((e) => e.type === 'added' && formatIpNet(e.lease.subnet) === '10.244.22.0/24');
    assert.equal(added?.type === 'added' ? added.lease.attrs.publicIp : '', '198.18.0.22');

    // A changed VTEP MAC (flanneld restarted with a new device) is a fresh `added`.
    events.length = 0;
    await w2.acquireLease(vxlanAttrs('198.18.0.22', 'aa:00:00:00:00:99'), [], 3600);
    await waitFor(() => events.some((e) => e.type === 'added' && e.lease.attrs.backendData['VtepMAC'] === 'aa:00:00:00:00:99'));

    events.length = 0;
    await client.delete(RESOURCE.nodes, 'w2');
    await waitFor(() => events.some((e) => e.type === 'removed' && formatIpNet(e.subnet) === '10.244.22.0/24'));

    // removeLease drops the annotations, which is a removal for the watchers.
    await createNode('w3', '10.244.23.0/24');
    const w3 = store('w3');
    await w3.acquireLease(vxlanAttrs('198.18.0.23', 'aa:00:00:00:00:23'), [], 3600);
    await waitFor(() => events.some((e) => e.type === 'added' && formatIpNet(e.lease.subnet) === '10.244.23.0/24'));
    await w1.removeLease(parseIpNet('10.244.23.0/24'));
    await waitFor(() => events.some((e) => e.type === 'removed' && formatIpNet(e.subnet) === '10.244.23.0/24'));
    await w3.close();
  } finally {
    stop();
    await w1.close();
    await w2.close();
  }
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  await poll('the lease events', condition, { timeoutMs, intervalMs: 20 });
}

test('dual-stack: the lease waits for both podCIDRs and publishes flannel’s IPv6 annotations; IPv6-only uses only those', async () => {
  await createNode('d1');
  const d1 = store('d1');
  const attrs = { ...vxlanAttrs('198.18.0.21', 'aa:bb:cc:00:00:21'), publicIpv6: 'fd00:198:18::21', backendV6Data: { VtepMAC: 'aa:bb:cc:00:06:21' } };
  const acquiring = d1.acquireLease(attrs, [], 3600);
  // An IPv4 podCIDR alone is not enough for a dual-stack lease.
  await client.patch(RESOURCE.nodes, 'd1', undefined, { spec: { podCIDR: '10.244.21.0/24', podCIDRs: ['10.244.21.0/24'] } }, 'merge');
  await sleep(200);
  const early = await client.get<Node>(RESOURCE.nodes, 'd1');
  assert.equal(early?.metadata.annotations?.['flannel.alpha.coreos.com/public-ipv6'], undefined, 'nothing published before both subnets exist');
  await client.delete(RESOURCE.nodes, 'd1');
  await client.create<Node>(RESOURCE.nodes, { metadata: { name: 'd1' }, spec: { podCIDR: '10.244.21.0/24', podCIDRs: ['10.244.21.0/24', 'fd00:10:244:21::/64'] } });
  const lease = await acquiring;
  assert.equal(formatIpNet(lease.subnet), '10.244.21.0/24');
  assert.equal(lease.ipv6Subnet && formatIpNet(lease.ipv6Subnet), 'fd00:10:244:21::/64');
  const node = await client.get<Node>(RESOURCE.nodes, 'd1');
  const annotations = node?.metadata.annotations ?? {};
  assert.equal(annotations['flannel.alpha.coreos.com/public-ipv6'], 'fd00:198:18::21');
  assert.deepEqual(JSON.parse(annotations['flannel.alpha.coreos.com/backend-v6-data'] ?? '{}'), { VtepMAC: 'aa:bb:cc:00:06:21' });
  assert.equal(annotations['flannel.alpha.coreos.com/public-ip'], '198.18.0.21');
  const seen = leaseOf(node!);
  assert.deepEqual(seen?.attrs, lease.attrs);
  assert.equal(seen?.ipv6Subnet && formatIpNet(seen.ipv6Subnet), 'fd00:10:244:21::/64');
  await d1.close();

  // IPv6-only: the primary family is IPv6, published as public-ipv6/backend-v6-data only.
  await createNode('d2', 'fd00:10:244:22::/64');
  const d2 = store('d2');
  const v6 = await d2.acquireLease(vxlanAttrs('fd00:198:18::22', 'aa:bb:cc:00:06:22'), [], 3600);
  assert.equal(formatIpNet(v6.subnet), 'fd00:10:244:22::/64');
  const v6Node = await client.get<Node>(RESOURCE.nodes, 'd2');
  assert.equal(v6Node?.metadata.annotations?.['flannel.alpha.coreos.com/public-ip'], undefined);
  assert.equal(v6Node?.metadata.annotations?.['flannel.alpha.coreos.com/public-ipv6'], 'fd00:198:18::22');
  assert.deepEqual(leaseOf(v6Node!)?.attrs, v6.attrs);
  await d2.close();
});
