/**
 * Partial syncs must leave the kernel exactly as a full sync of the final state would. For
 * both modes: a seeded random walk of Service changes (create, delete, endpoints churn,
 * type and traffic-policy changes, affinity on and off, dual-stack) is applied one sync at
 * a time to one namespace; a fresh sink then does one full sync of the final state into a
 * second namespace, and the two kernels are compared as `nft list` / `iptables-save` print
 * them. A third namespace that held a different, stale state first checks that a restarted
 * proxy's full sync deletes what is no longer wanted.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { type Ip, parseIp } from '../../src/lib/ip.js';
import { withNetns } from '../../src/lib/netns.js';
import { Nftables } from '../../src/lib/nftables/nftables.js';
import { IptablesSink } from '../../src/proxy/iptables/sink.js';
import { SystemIptables } from '../../src/proxy/iptables/system.js';
import { servicePortKey, type Endpoint, type ServiceEntry, type ServicePort } from '../../src/proxy/model.js';
import { NftablesSink } from '../../src/proxy/nftables/sink.js';
import type { RuleSink } from '../../src/proxy/sink.js';
import { Lab } from '../helpers/lab.js';
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
