/**
 * Partial syncs must leave the kernel exactly as a full sync of the final state would. For
 * both modes: a seeded random walk of Service changes (create, delete, endpoints churn,
 * type and traffic-policy changes, affinity on and off, dual-stack) is applied one sync at
 * a time to one namespace; a fresh sink then does one full sync of the final state into a
 * second namespace, and the two kernels are compared as `nft list` / `iptables-save` print
 * them. A third namespace that held a different, stale state first checks that a restarted
 * proxy's full sync deletes what is no longer wanted.
 *
 * A restarted nftables proxy reconciles instead of rewriting: over an unchanged table its
 * first full sync changes nothing (`nft monitor` sees no event, rule handles stay), and
 * after changes made while it was down it sends the same events a live proxy's partial
 * sync of those changes sends to a twin namespace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { type Ip, parseIp } from '../../src/lib/ip.js';
import { run } from '../../src/lib/exec.js';
import { withNetns } from '../../src/lib/netns.js';
import { Nftables } from '../../src/lib/nftables/nftables.js';
import { IptablesSink } from '../../src/proxy/iptables/sink.js';
import { SystemIptables } from '../../src/proxy/iptables/system.js';
import { servicePortKey, type Endpoint, type ServiceEntry, type ServicePort } from '../../src/proxy/model.js';
import { NftablesSink } from '../../src/proxy/nftables/sink.js';
import type { RuleSink } from '../../src/proxy/sink.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';
import { GOLDEN_CONFIG } from './helpers.js';
import { canonicalIptables, canonicalNft } from './listing.js';

const lab = new Lab('incr');
after(() => lab.cleanup());

/** A small deterministic PRNG (mulberry32), so a failure can be replayed by its seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomEntry(random: () => number, index: number): ServiceEntry {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const dual = random() < 0.2;
  const clusterIPs: Ip[] = [parseIp(`10.96.${index >> 8}.${index & 255}`), ...(dual ? [parseIp(`fd00:10:96::${index.toString(16)}`)] : [])];
  const type = pick(['ClusterIP', 'ClusterIP', 'NodePort', 'LoadBalancer'] as const);
  const ports: ServicePort[] = [];
  const portCount = 1 + Math.floor(random() * 2);
  for (let p = 0; p < portCount; p++) {
    const protocol = pick(['TCP', 'TCP', 'UDP'] as const);
    const name = `p${p}`;
    ports.push({
      name: `ns/s${index}:${name}`,
      namespace: 'ns',
      service: `s${index}`,
      portName: name,
      protocol,
      port: 80 + p,
      clusterIPs,
      ...(type !== 'ClusterIP' ? { nodePort: 30000 + index * 4 + p } : {}),
      externalIPs: random() < 0.2 ? [parseIp(`198.51.100.${index & 255}`)] : [],
      loadBalancerIPs: type === 'LoadBalancer' ? [parseIp(`203.0.113.${index & 255}`)] : [],
      ...(random() < 0.25 ? { affinitySeconds: pick([60, 600]) } : {}),
      externalPolicyLocal: type !== 'ClusterIP' && random() < 0.4,
      internalPolicyLocal: random() < 0.2,
      ...(type === 'LoadBalancer' && random() < 0.5 ? { healthCheckNodePort: 32000 + index } : {}),
    });
  }
  const endpoints = new Map<string, Endpoint[]>();
  for (const port of ports) {
    const count = Math.floor(random() * 5);
    const list: Endpoint[] = [];
    for (let e = 0; e < count; e++) {
      const v6 = dual && random() < 0.5;
      const host = Math.floor(random() * 60) + 2;
      const ip = v6 ? parseIp(`fd00:10:244:${index.toString(16)}::${host.toString(16)}`) : parseIp(`10.244.${index & 255}.${host}`);
      if (list.some((x) => x.ip.value === ip.value)) continue;
      const ready = random() < 0.8;
      list.push({ ip, port: 8080 + (index % 3), ready, serving: ready || random() < 0.5, terminating: !ready && random() < 0.7, local: random() < 0.4 });
    }
    endpoints.set(servicePortKey(port), list);
  }
  return { ports, endpoints };
}

for (const mode of ['nftables', 'iptables'] as const) {
  describe(`incremental syncs equal a full sync (${mode})`, () => {
    const sinkIn = (netns: string, nft: Nftables): RuleSink => (mode === 'nftables' ? new NftablesSink(GOLDEN_CONFIG, nft) : new IptablesSink(GOLDEN_CONFIG, new SystemIptables(nft, netns)));
    const canonical = mode === 'nftables' ? canonicalNft : canonicalIptables;

    for (const seed of [1, 2]) {
      test(`seed ${seed}: 40 partial syncs, then a fresh full sync of the final state`, () => {
        const random = prng(seed);
        const walked = lab.netns(`${mode}-walk${seed}`);
        const fresh = lab.netns(`${mode}-fresh${seed}`);
        const restarted = lab.netns(`${mode}-restart${seed}`);
        const services = new Map<string, ServiceEntry>();
        const nftWalk = withNetns(lab.path(walked), () => new Nftables());
        const nftFresh = withNetns(lab.path(fresh), () => new Nftables());
        const nftRestart = withNetns(lab.path(restarted), () => new Nftables());
        try {
          const sink = sinkIn(walked, nftWalk);
          for (let i = 0; i < 12; i++) services.set(`ns/s${i}`, randomEntry(random, i));
          sink.sync(services, 'all');
          // The restarted namespace first holds an older state with Services since deleted.
          const stale = new Map(services);
          for (let i = 100; i < 105; i++) stale.set(`ns/s${i}`, randomEntry(random, i));
          sinkIn(restarted, nftRestart).sync(stale, 'all');

          for (let step = 0; step < 40; step++) {
            const changed = new Set<string>();
            for (let k = 0; k < 1 + Math.floor(random() * 3); k++) {
              const index = Math.floor(random() * 20);
              const key = `ns/s${index}`;
              if (services.has(key) && random() < 0.3) services.delete(key);
              else services.set(key, randomEntry(random, index));
              changed.add(key);
            }
            sink.sync(services, changed);
          }
          sinkIn(fresh, nftFresh).sync(services, 'all');
          sinkIn(restarted, nftRestart).sync(services, 'all');
          const expected = canonical(fresh);
          assert.equal(canonical(walked), expected, 'the partial syncs left something different from a full sync');
          assert.equal(canonical(restarted), expected, 'a restarted full sync did not remove the stale state');
        } finally {
          nftWalk.close();
          nftFresh.close();
          nftRestart.close();
        }
      });
    }
  });
}

/**
 * What `nft monitor` prints in `netns` while `work` runs: the lines between two sentinel
 * tables created before and after it, so none is missed and none of them is the sentinels'.
 */
async function monitored(netns: string, work: () => void): Promise<string[]> {
  const monitor = spawn('ip', ['netns', 'exec', netns, 'nft', 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines: string[] = [];
  let partial = '';
  monitor.stdout.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  });
  const sentinel = async (name: string, timeoutMs: number): Promise<number> => {
    run('nft', ['add', 'table', 'ip', name], { netns });
    return poll(`nft monitor to report table ${name}`, () => {
      const at = lines.findIndex((l) => l.includes(`table ip ${name}`));
      return at >= 0 ? at : undefined;
    }, { timeoutMs });
  };
  const made: string[] = [];
  try {
    // The monitor subscribes after it starts: add a fresh start sentinel until one is seen.
    // A fresh name each try, so a late report of an earlier try cannot stand for the start.
    const start = await poll('nft monitor to listen', async () => {
      const name = `sentinel-start-${made.length}`;
      made.push(name);
      try {
        return await sentinel(name, 500);
      } catch {
        return undefined;
      }
    }, { timeoutMs: 30_000 });
    work();
    made.push('sentinel-end');
    const end = await sentinel('sentinel-end', 10_000);
    // Each sentinel's own transaction ends with a generation line naming nft.
    return lines.slice(start + 1, end).filter((l) => !l.includes('table ip sentinel-') && !/^# new generation \d+ by process \d+ \(nft\)$/.test(l));
  } finally {
    monitor.kill('SIGKILL');
    for (const name of made) {
      try {
        run('nft', ['delete', 'table', 'ip', name], { netns });
      } catch {
        // that try's table never got made
      }
    }
  }
}

/**
 * Monitor lines as a sorted list without generations, handles or endpoint block numbers
 * (which block a new chain takes depends on the order blocks were freed), so two
 * namespaces' events compare.
 */
const comparable = (lines: readonly string[]): string[] =>
  lines
    .filter((l) => !l.startsWith('# new generation '))
    .map((l) =>
      l
        .replace(/( #)? handle \d+/g, '')
        .replace(/endpoints-[0-9a-f]{2}/g, 'endpoints-*')
        .replace(/\{ \d+ : /g, '{ * : ')
        .replace(/offset \d+/g, 'offset *'),
    )
    .sort();

describe('a restarted nftables proxy reconciles instead of rewriting', () => {
  test('an unchanged table sees no event; changes made meanwhile are sent as a live partial sync sends them', async () => {
    const random = prng(7);
    const restarted = lab.netns('restart-quiet');
    const twin = lab.netns('restart-twin');
    const nftRestarted = withNetns(lab.path(restarted), () => new Nftables());
    const nftTwin = withNetns(lab.path(twin), () => new Nftables());
    try {
      const services = new Map<string, ServiceEntry>();
      for (let i = 0; i < 16; i++) services.set(`ns/s${i}`, randomEntry(random, i));
      new NftablesSink(GOLDEN_CONFIG, nftRestarted).sync(services, 'all');
      const live = new NftablesSink(GOLDEN_CONFIG, nftTwin);
      live.sync(services, 'all');
      const withHandles = (): string => run('nft', ['-a', 'list', 'table', 'ip', 'pontoon'], { netns: restarted });
      const before = withHandles();

      let report: ReturnType<RuleSink['sync']> | undefined;
      const quiet = await monitored(restarted, () => {
        report = new NftablesSink(GOLDEN_CONFIG, nftRestarted).sync(services, 'all');
      });
      assert.deepEqual(quiet, [], 'the restart over an unchanged table changed something');
      assert.equal(report?.chainsWritten, 0);
      assert.equal(withHandles(), before, 'rule handles changed: rules were deleted and added again');

      // While the proxy is down: a Service goes, one comes, two change.
      const changed = new Set(['ns/s3', 'ns/s20', 'ns/s5', 'ns/s9']);
      services.delete('ns/s3');
      services.set('ns/s20', randomEntry(random, 20));
      services.set('ns/s5', randomEntry(random, 5));
      services.set('ns/s9', randomEntry(random, 9));
      let partial: ReturnType<RuleSink['sync']> | undefined;
      const expected = await monitored(twin, () => {
        partial = live.sync(services, changed);
      });
      const seen = await monitored(restarted, () => {
        report = new NftablesSink(GOLDEN_CONFIG, nftRestarted).sync(services, 'all');
      });
      assert.ok(expected.length > 0, 'the changes changed something');
      // Which endpoint block a new chain takes depends on the order blocks were freed, so
      // endpoint-map elements may move differently; the restart may not move more of them.
      const endpointElement = (l: string): boolean => / element ip6? pontoon endpoints-/.test(l);
      assert.deepEqual(comparable(seen.filter((l) => !endpointElement(l))), comparable(expected.filter((l) => !endpointElement(l))));
      assert.ok(seen.filter(endpointElement).length <= expected.filter(endpointElement).length, `the restart moved more endpoint elements than the live sync:\n${seen.filter(endpointElement).join('\n')}`);
      assert.equal(report?.chainsWritten, partial?.chainsWritten);
      assert.equal(report?.chainsDeleted, partial?.chainsDeleted);
      assert.equal(canonicalNft(restarted), canonicalNft(twin));
    } finally {
      nftRestarted.close();
      nftTwin.close();
    }
  });
});
