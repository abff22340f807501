/** The proxy's small parts: the sync runner, conntrack cleanup decisions, health, flags. */
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { formatIp, parseIp } from '../../src/lib/ip.js';
import { parseBindAddress, proxyConfigFromFlags, ProxyFlagError } from '../../src/cli/proxy.js';
import { staleFlows } from '../../src/proxy/conntrack.js';
import { ProxyHealth } from '../../src/proxy/health.js';
import { servicePortKey, type Endpoint, type ServiceEntry, type ServicePort } from '../../src/proxy/model.js';
import { SyncRunner } from '../../src/proxy/runner.js';
import { EndpointBlockAllocator } from '../../src/proxy/nftables/sink.js';

describe('SyncRunner', () => {
  test('runs at once when idle, coalesces a burst within the minimum interval into one sync, and starts full', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    try {
      const runs: boolean[] = [];
      const runner = new SyncRunner((full) => void runs.push(full), { minIntervalMs: 1000, fullIntervalMs: 0 });
      runner.start();
      mock.timers.tick(0);
      await Promise.resolve();
      assert.deepEqual(runs, [true], 'the first sync is full');
      for (let i = 0; i < 100; i++) runner.request();
      mock.timers.tick(999);
      await Promise.resolve();
      assert.equal(runs.length, 1, 'nothing before the interval ends');
      mock.timers.tick(1);
      await Promise.resolve();
      assert.deepEqual(runs, [true, false], 'a hundred requests, one sync');
      runner.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('requests before start wait for it: the first sync is the full one, run once', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    try {
      const runs: boolean[] = [];
      const runner = new SyncRunner((full) => void runs.push(full), { minIntervalMs: 0, fullIntervalMs: 0 });
      // The Service informer has listed; the EndpointSlice informer has not yet.
      runner.request();
      mock.timers.tick(100);
      await Promise.resolve();
      assert.deepEqual(runs, [], 'no sync before start');
      runner.start();
      mock.timers.tick(0);
      await Promise.resolve();
      assert.deepEqual(runs, [true]);
      runner.stop();
    } finally {
      mock.timers.reset();
    }
  });

  test('a failed sync is retried with backoff until it succeeds', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    try {
      let attempts = 0;
      const runner = new SyncRunner(
        () => {
          attempts++;
          if (attempts < 3) throw new Error('kernel said no');
        },
        { minIntervalMs: 0, fullIntervalMs: 0, retryInitialMs: 100, retryMaxMs: 1000 },
      );
      runner.start();
      for (let i = 0; i < 20 && attempts < 3; i++) {
        mock.timers.tick(200);
        await Promise.resolve();
        await Promise.resolve();
      }
      assert.equal(attempts, 3);
      runner.stop();
    } finally {
      mock.timers.reset();
    }
  });
});

const port = (protocol: 'UDP' | 'TCP', nodePort?: number): ServicePort => ({
  name: 'ns/dns:dns',
  namespace: 'ns',
  service: 'dns',
  portName: 'dns',
  protocol,
  port: 53,
  clusterIPs: [parseIp('10.96.0.10')],
  externalIPs: [parseIp('198.51.100.1')],
  loadBalancerIPs: [],
  externalPolicyLocal: false,
  internalPolicyLocal: false,
  ...(nodePort ? { nodePort } : {}),
});
const endpoint = (ip: string): Endpoint => ({ ip: parseIp(ip), port: 5353, ready: true, serving: true, terminating: false, local: false });
const entry = (p: ServicePort, ips: string[]): ServiceEntry => ({ ports: [p], endpoints: new Map([[servicePortKey(p), ips.map(endpoint)]]) });
const describeFilters = (filters: ReturnType<typeof staleFlows>): string[] =>
  filters.map((f) => `${f.protocol} dst=${f.origDst ? formatIp(f.origDst) : '*'}:${f.origDstPort} dnat=${f.dnatTo ? formatIp(f.dnatTo) : '*'}`);

describe('staleFlows', () => {
  test('a UDP endpoint that went: its flows to every Service address and the node port', () => {
    const before = entry(port('UDP', 30053), ['10.244.1.5', '10.244.2.5']);
    const after = entry(port('UDP', 30053), ['10.244.2.5']);
    assert.deepEqual(describeFilters(staleFlows(new Map([['ns/dns', { before, after }]]), [4])), [
      'udp dst=10.96.0.10:53 dnat=10.244.1.5',
      'udp dst=198.51.100.1:53 dnat=10.244.1.5',
      'udp dst=*:30053 dnat=10.244.1.5',
    ]);
  });

  test('a UDP Service that had no endpoints and now has some: its undelivered flows', () => {
    const before = entry(port('UDP'), []);
    const after = entry(port('UDP'), ['10.244.1.5']);
    assert.deepEqual(describeFilters(staleFlows(new Map([['ns/dns', { before, after }]]), [4])), ['udp dst=10.96.0.10:53 dnat=*', 'udp dst=198.51.100.1:53 dnat=*']);
  });

  test('TCP needs none; a deleted Service’s endpoints are all stale', () => {
    assert.deepEqual(staleFlows(new Map([['ns/dns', { before: entry(port('TCP'), ['10.244.1.5']), after: entry(port('TCP'), []) }]]), [4]), []);
    assert.equal(staleFlows(new Map([['ns/dns', { before: entry(port('UDP'), ['10.244.1.5']) }]]), [4]).length, 2);
  });
});

describe('ProxyHealth', () => {
  test('unhealthy before the first sync and when a change waits too long; healthy again once synced', () => {
    let now = 1_000;
    const health = new ProxyHealth(5_000, () => now);
    assert.equal(health.healthy(), false);
    health.synced(now);
    assert.equal(health.healthy(), true);
    health.queued();
    now += 6_000;
    assert.equal(health.healthy(), false, 'a change waited longer than allowed');
    const started = now;
    now += 10;
    health.synced(started);
    assert.equal(health.healthy(), true);
  });
});

describe('proxy flags', () => {
  test('cluster CIDRs set the families; bad values name their flag', () => {
    const config = proxyConfigFromFlags({ clusterCidr: '10.244.0.0/16,fd00:10:244::/56', masqueradeBit: '14' });
    assert.deepEqual(config.families, [4, 6]);
    assert.equal(config.masqueradeMark, 0x4000);
    assert.throws(() => proxyConfigFromFlags({ clusterCidr: '10.244.0.0/33', masqueradeBit: '14' }), ProxyFlagError);
    assert.throws(() => proxyConfigFromFlags({ masqueradeBit: '32' }), /--masquerade-bit/);
    assert.throws(() => proxyConfigFromFlags({ ipFamilies: '5', masqueradeBit: '14' }), /--ip-families/);
    assert.deepEqual(parseBindAddress('[::1]:10256', '--x'), { host: '::1', port: 10256 });
    assert.throws(() => parseBindAddress('localhost', '--healthz-bind-address'), /--healthz-bind-address/);
  });
});

describe('EndpointBlockAllocator', () => {
  const claim = (allocator: EndpointBlockAllocator, service: string, chains: string[]): number[] => {
    const { blocks, done } = allocator.forService(service);
    const got = chains.map(blocks);
    done();
    return got;
  };

  test('a full sync keeps the blocks the kernel holds, fills gaps lowest first, and frees what nobody claims', () => {
    const allocator = new EndpointBlockAllocator();
    // The kernel: chain a reads block 3, b and c both claim block 5 (a damaged tag), d block 1.
    allocator.adopt(new Map([['a', 3], ['b', 5], ['c', 5], ['d', 1]]));
    assert.deepEqual(claim(allocator, 's1', ['a']), [3]);
    assert.deepEqual(claim(allocator, 's2', ['b']), [5]);
    // c lost the duplicate: it gets the lowest block no chain holds.
    assert.deepEqual(claim(allocator, 's3', ['c', 'new']), [0, 2]);
    allocator.releaseUnclaimed(); // d is gone: block 1 is free again
    assert.deepEqual(claim(allocator, 's4', ['e', 'f']), [1, 4]);
    assert.deepEqual(claim(allocator, 's5', ['g']), [6]);
  });

  test('a Service that drops a chain frees its block for the next new chain', () => {
    const allocator = new EndpointBlockAllocator();
    allocator.adopt(new Map());
    assert.deepEqual(claim(allocator, 's1', ['a', 'b']), [0, 1]);
    assert.deepEqual(claim(allocator, 's1', ['b']), [1]);
    assert.deepEqual(claim(allocator, 's2', ['c']), [0]);
  });
});
