/**
 * Golden files: the full-sync transaction of both modes for the fixed Services of
 * fixtures/proxy/services.ts, compared with the committed nft script and iptables-restore
 * input (`UPDATE_GOLDEN=1` rewrites them; review the diff like kube-proxy's goldens). Each
 * golden is also loaded by the real tool into a fresh namespace, so a golden the kernel
 * would refuse cannot pass; and the nftables table built from our netlink encoding must
 * list exactly as the one `nft -f` builds from the script.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run } from '../../src/lib/exec.js';
import { withNetns } from '../../src/lib/netns.js';
import { Nftables } from '../../src/lib/nftables/nftables.js';
import { IptablesSink } from '../../src/proxy/iptables/sink.js';
import { SystemIptables } from '../../src/proxy/iptables/system.js';
import { NftablesSink } from '../../src/proxy/nftables/sink.js';
import { Lab } from '../helpers/lab.js';
import { fixtureEntries, GOLDEN_CONFIG, problemsOf } from './helpers.js';

const lab = new Lab('golden');
after(() => lab.cleanup());

const GOLDEN_DIR = join(process.cwd(), 'test', 'fixtures', 'proxy');

function golden(name: string, actual: string): void {
  const path = join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN) writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `${name} differs from the generated rules; rerun with UPDATE_GOLDEN=1 and review the diff`);
}

/** The rendering a sink gives for a full sync, no kernel touched. */
const offline = {
  apply: (): void => assert.fail('render must not apply'),
  observe: () => ({ chains: [], sets: [] }),
};

describe('golden files', () => {
  test('the fixtures report their bad input, and only that', () => {
    assert.deepEqual(problemsOf(), [
      'Service demo/bad-ports: spec.ports[1]: port 70000 is not 1-65535; port skipped; spec.ports[2]: duplicate port "again" 80/TCP; port skipped',
      'EndpointSlice demo/bad-ports-a: endpoint address fd00::95 is not IPv4 as the slice says; ignored',
    ]);
  });

  test('nftables: the full sync matches golden.nft, loads with nft -f and lists the same as our netlink encoding', () => {
    const script = new NftablesSink(GOLDEN_CONFIG, offline).render(fixtureEntries());
    golden('golden.nft', script);
    const viaNft = lab.netns('nft');
    run('nft', ['-f', '-'], { input: script, netns: viaNft });
    const viaNetlink = lab.netns('netlink');
    const nft = withNetns(lab.path(viaNetlink), () => new Nftables());
    try {
      new NftablesSink(GOLDEN_CONFIG, nft).sync(fixtureEntries(), 'all');
    } finally {
      nft.close();
    }
    const listed = (ns: string): string => run('nft', ['list', 'ruleset'], { netns: ns });
    assert.equal(listed(viaNetlink), listed(viaNft));
  });

  test('iptables: the full sync matches golden.iptables, loads with iptables-restore, and iptables-save prints our rules back', () => {
    const script = new IptablesSink(GOLDEN_CONFIG, { restore: () => assert.fail(), listChains: () => [], jumpTargets: () => [], deleteRule: () => undefined }).render(fixtureEntries());
    golden('golden.iptables', script);
    const ns = lab.netns('ipt');
    const nft = withNetns(lab.path(ns), () => new Nftables());
    try {
      new IptablesSink(GOLDEN_CONFIG, new SystemIptables(nft, ns)).sync(fixtureEntries(), 'all');
    } finally {
      nft.close();
    }
    // Every -A line of the golden is in iptables-save's output verbatim (its canonical form).
    for (const [family, save] of [
      ['iptables-restore', 'iptables-save'],
      ['ip6tables-restore', 'ip6tables-save'],
    ] as const) {
      const section = script.split(/^# /m).find((part) => part.startsWith(family)) ?? '';
      const saved = run(save, [], { netns: ns });
      const savedLines = new Set(saved.split('\n'));
      for (const line of section.split('\n').filter((l) => l.startsWith('-A '))) {
        assert.ok(savedLines.has(line), `${save} does not print back\n  ${line}\n(it has ${saved.split('\n').filter((l) => l.includes(line.split(' ')[1] ?? '')).join('\n  ')})`);
      }
    }
  });
});
