/** SubnetStore semantics against a real etcd and the file store. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { parseNetworkConfig, subnetsOf } from '../../src/flanneld/config.js';
import { EtcdSubnetStore } from '../../src/flanneld/subnet/etcd.js';
import { FileSubnetStore } from '../../src/flanneld/subnet/file.js';
import { type LeaseEvent, type SubnetStore, SubnetPoolExhaustedError } from '../../src/flanneld/subnet/lease.js';
import { formatIpNet } from '../../src/lib/ip.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('store');
let etcd: TestEtcd;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
  lab.cleanup();
});

const network = parseNetworkConfig(JSON.stringify({ Network: '10.50.0.0/16', SubnetLen: 24, SubnetMin: '10.50.1.0', SubnetMax: '10.50.10.0', Backend: { Type: 'host-gw' } }));
const candidates = [...subnetsOf(network)];
const attrs = (ip: string) => ({ publicIp: ip, backendType: 'host-gw', backendData: {} });

function stores(): [string, () => SubnetStore & { putNetworkConfig(text: string): Promise<void> }][] {
  return [
    ['etcd', () => new EtcdSubnetStore({ endpoints: [etcd.endpoint], prefix: `/test-${Math.random().toString(36).slice(2)}` })],
    ['file', () => new FileSubnetStore(join(lab.tempDir('leases'), 'leases.json'), 100)],
  ];
}

for (const [kind, make] of stores()) {
  describe(`${kind} store`, () => {
    test('config round trip; racing acquisitions never share a subnet; the pool runs out cleanly', async () => {
      const store = make();
      try {
        assert.equal(await store.getNetworkConfig(), undefined);
        await store.putNetworkConfig('{"Network":"10.50.0.0/16"}');
        assert.equal(await store.getNetworkConfig(), '{"Network":"10.50.0.0/16"}');
        const leases = await Promise.all(Array.from({ length: 10 }, (_, i) => store.acquireLease(attrs(`198.18.0.${i + 10}`), candidates, 60)));
        const subnets = leases.map((l) => formatIpNet(l.subnet));
        assert.equal(new Set(subnets).size, 10, `distinct: ${subnets.join(' ')}`);
        for (const subnet of subnets) assert.ok(candidates.some((c) => formatIpNet(c) === subnet));
        await assert.rejects(store.acquireLease(attrs('198.18.0.99'), candidates, 60), SubnetPoolExhaustedError);
      } finally {
        await store.close();
      }
    });

    test('a node that comes back with the same PublicIP keeps its subnet', async () => {
      const store = make();
      try {
        const first = await store.acquireLease(attrs('198.18.0.5'), candidates, 60);
        await store.acquireLease(attrs('198.18.0.6'), candidates, 60);
        const again = await store.acquireLease({ ...attrs('198.18.0.5'), backendData: { changed: true } }, candidates, 60);
        assert.equal(formatIpNet(again.subnet), formatIpNet(first.subnet));
        const renewed = await store.renewLease(again, 60);
        assert.ok((renewed.expiresAt?.getTime() ?? 0) > Date.now() + 50_000);
      } finally {
        await store.close();
      }
    });

    test('watch sees other nodes arrive and leave; an expired lease is removed', async () => {
      const store = make();
      const events: LeaseEvent[] = [];
      try {
        const { leases, stop } = await store.watchLeases((batch) => events.push(...batch), (err) => assert.fail(String(err)));
        assert.deepEqual(leases, []);
        const waitFor = async (what: string, seen: () => boolean): Promise<void> => {
          const deadline = Date.now() + 8000;
          while (!seen() && Date.now() < deadline) await sleep(50);
          assert.ok(seen(), what);
        };
        const saw = (type: 'added' | 'removed', subnet: string) => () =>
          events.some((e) => e.type === type && formatIpNet(e.type === 'added' ? e.lease.subnet : e.subnet) === subnet);
        const short = formatIpNet((await store.acquireLease(attrs('198.18.0.7'), candidates, 2)).subnet);
        const long = await store.acquireLease(attrs('198.18.0.8'), candidates, 60);
        await waitFor('both arrivals seen', () => saw('added', short)() && saw('added', formatIpNet(long.subnet))());
        await store.removeLease(long.subnet);
        await waitFor('explicit removal seen', saw('removed', formatIpNet(long.subnet)));
        await waitFor('TTL expiry seen as a removal', saw('removed', short));
        stop();
      } finally {
        await store.close();
      }
    });
  });
}

// A request that hung would outlast the test's timeout; no clock is read.
test('etcd unreachable: requests fail within the deadline instead of hanging', { timeout: 60_000 }, async () => {
  const store = new EtcdSubnetStore({ endpoints: ['http://127.0.0.1:1'], requestTimeoutMs: 1000 });
  await assert.rejects(store.getNetworkConfig(), /etcd|ECONNREFUSED|unavailable|UNAVAILABLE|No connection/i);
  await store.close();
});

describe('dual-stack network config and subnet.env (flannel’s fields)', () => {
  test('EnableIPv6 adds the IPv6 half with IPv6SubnetLen (default 64); EnableIPv4 false is IPv6-only', async () => {
    const { formatIpNet: fmt } = await import('../../src/lib/ip.js');
    const dual = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","Backend":{"Type":"vxlan"}}');
    assert.equal(fmt(dual.network), '10.244.0.0/16');
    assert.equal(dual.ipv6 && fmt(dual.ipv6.network), 'fd00:10:244::/56');
    assert.equal(dual.ipv6?.subnetLength, 64);
    assert.equal(dual.ipv6?.backend.type, 'vxlan');
    const only = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","IPv6SubnetLen":60}');
    assert.equal(fmt(only.network), 'fd00:10:244::/56');
    assert.equal(only.subnetLength, 60);
    assert.equal(only.ipv6, undefined);
    const bad: [string, string][] = [
      ['{"Network":"10.244.0.0/16","EnableIPv6":true}', 'IPv6Network'],
      ['{"Network":"fd00::/56"}', 'Network'],
      ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"10.245.0.0/16"}', 'IPv6Network'],
      ['{"EnableIPv4":false}', 'EnableIPv4'],
      ['{"Network":"10.244.0.0/16","EnableIPv6":"yes"}', 'EnableIPv6'],
      ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":128}', 'IPv6SubnetLen'],
    ];
    for (const [text, field] of bad) assert.throws(() => parseNetworkConfig(text), { name: 'NetworkConfigError', field }, text);
  });

  test('subnet.env carries FLANNEL_IPV6_NETWORK/SUBNET and reads back; IPv6-only has no FLANNEL_NETWORK', async () => {
    const { formatSubnetEnv, parseSubnetEnv, subnetEnvFor } = await import('../../src/api/subnet-env.js');
    const { formatIpNet: fmt, parseIpNet: net } = await import('../../src/lib/ip.js');
    const dual = subnetEnvFor(net('10.244.0.0/16'), net('10.244.3.0/24'), 1430, true, { network: net('fd00:10:244::/56'), lease: net('fd00:10:244:3::/64') });
    const text = formatSubnetEnv(dual);
    assert.match(text, /^FLANNEL_IPV6_NETWORK=fd00:10:244::\/56$/m);
    assert.match(text, /^FLANNEL_IPV6_SUBNET=fd00:10:244:3::1\/64$/m);
    assert.match(text, /^FLANNEL_SUBNET=10\.244\.3\.1\/24$/m);
    const back = parseSubnetEnv(text);
    assert.equal(back.ipv6Subnet && fmt(back.ipv6Subnet), 'fd00:10:244:3::1/64');
    assert.equal(fmt(back.subnet), '10.244.3.1/24');
    const only = formatSubnetEnv(subnetEnvFor(net('fd00:10:244::/56'), net('fd00:10:244:3::/64'), 1430, true));
    assert.doesNotMatch(only, /^FLANNEL_NETWORK=/m);
    assert.equal(fmt(parseSubnetEnv(only).subnet), 'fd00:10:244:3::1/64');
    assert.throws(() => parseSubnetEnv('FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_MTU=1430\n'), { name: 'SubnetEnvError' });
  });
});
