/**
 * The nf_tables client on a real kernel. The oracle is nft itself: every statement we can
 * express is applied once through our netlink encoding and once as text through `nft -f`,
 * into twin namespaces, and `nft list` must print the two the same.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { run } from '../../src/lib/exec.js';
import { parseIp, parseIpNet } from '../../src/lib/ip.js';
import { withNetns } from '../../src/lib/netns.js';
import { DADDR, DPORT, L4PROTO, MAX_COMMENT_BYTES, SADDR, goto, jump, match, rule, verdict, type NftFamily, type Operation, type Transaction } from '../../src/lib/nftables/ir.js';
import { Nftables, NftTransactionError } from '../../src/lib/nftables/nftables.js';
import { transactionText } from '../../src/lib/nftables/text.js';
import { encodeBatch, NftablesEncodeError } from '../../src/lib/nftables/wire.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('nft');
after(() => lab.cleanup());

function everyStatement(family: NftFamily): Transaction {
  const v4 = family === 'ip';
  const addr = parseIp(v4 ? '10.244.1.5' : 'fd00::5');
  const net = parseIpNet(v4 ? '10.244.0.0/16' : 'fd00::/48');
  const addrType = v4 ? ('ipv4_addr' as const) : ('ipv6_addr' as const);
  const operations: Operation[] = [
    { op: 'add-table' },
    { op: 'add-set', set: { name: 'svcmap', keys: [addrType, 'inet_proto', 'inet_service'], data: 'verdict', comment: 'a verdict map' } },
    { op: 'add-set', set: { name: 'ports', keys: ['inet_proto', 'inet_service'] } },
    { op: 'add-set', set: { name: 'pairs', keys: [addrType, addrType] } },
    { op: 'add-set', set: { name: 'sticky', keys: [addrType], dynamic: true, timeoutSeconds: 90 } },
    { op: 'add-set', set: { name: 'endpoints', keys: ['numgen'], data: 'endpoint' } },
    { op: 'add-chain', chain: { name: 'pre', base: { type: 'nat', hook: 'prerouting', priority: -100 } } },
    { op: 'add-chain', chain: { name: 'in', base: { type: 'filter', hook: 'input', priority: -110, policy: 'accept' }, comment: 'checks' } },
    { op: 'add-chain', chain: { name: 'post', base: { type: 'nat', hook: 'postrouting', priority: 100 } } },
    { op: 'add-chain', chain: { name: 'work' } },
    { op: 'add-chain', chain: { name: 'target' } },
    { op: 'add-rule', chain: 'pre', rule: rule([{ st: 'vmap', keys: [DADDR, L4PROTO, DPORT], map: 'svcmap' }]) },
    { op: 'add-rule', chain: 'pre', rule: rule([match({ sel: 'fib-daddr-type' }, { addrType: 'local' }), { st: 'lookup', keys: [L4PROTO, DPORT], set: 'ports' }, jump('work')]) },
    { op: 'add-rule', chain: 'work', rule: rule([match(SADDR, { net }, '!='), { st: 'set-mark', op: 'or', value: 0x4000 }], 'masquerade from outside') },
    { op: 'add-rule', chain: 'work', rule: rule([match({ sel: 'fib-saddr-type' }, { addrType: 'local' }), goto('target')]) },
    { op: 'add-rule', chain: 'work', rule: rule([{ st: 'lookup', keys: [SADDR], set: 'sticky' }, { st: 'set-update', set: 'sticky', keys: [SADDR] }, match(L4PROTO, { proto: 'tcp' }), { st: 'dnat', addr, port: 8080 }]) },
    { op: 'add-rule', chain: 'work', rule: rule([match({ sel: 'numgen', modulus: 3 }, { number: 0 }), match(L4PROTO, { proto: 'udp' }), { st: 'dnat', addr }]) },
    { op: 'add-rule', chain: 'work', rule: rule([match(L4PROTO, { proto: 'tcp' }), { st: 'dnat-map', key: { sel: 'numgen', modulus: 2, offset: 8192 }, map: 'endpoints' }]) },
    { op: 'add-rule', chain: 'target', rule: rule([{ st: 'counter' }, verdict('return')]) },
    { op: 'add-rule', chain: 'in', rule: rule([match({ sel: 'ct-state' }, { ctState: ['new'] }), match({ sel: 'iifname' }, { name: 'eth0' }), match(L4PROTO, { proto: 'tcp' }), { st: 'reject', tcpReset: true }]) },
    { op: 'add-rule', chain: 'in', rule: rule([match({ sel: 'ct-status' }, { ctStatus: 'dnat' }), { st: 'lookup', keys: [DADDR], set: 'sticky', negate: true }, { st: 'reject' }]) },
    { op: 'add-rule', chain: 'in', rule: rule([match({ sel: 'oifname' }, { name: 'cni0' }), match(DPORT, { port: 53 }), verdict('drop')]) },
    { op: 'add-rule', chain: 'post', rule: rule([{ st: 'lookup', keys: [SADDR, DADDR], set: 'pairs' }, { st: 'masquerade', fullyRandom: false }]) },
    { op: 'add-rule', chain: 'post', rule: rule([{ st: 'match', left: { sel: 'mark' }, op: '==', right: { number: 0 }, mask: 0x4000 }, verdict('return')]) },
    { op: 'add-rule', chain: 'post', rule: rule([{ st: 'set-mark', op: 'xor', value: 0x4000 }, { st: 'masquerade', fullyRandom: true }]) },
    { op: 'add-elements', set: 'svcmap', elements: [{ key: [{ ip: addr }, { proto: 'tcp' }, { port: 80 }], verdict: { kind: 'goto', chain: 'work' } }, { key: [{ ip: addr }, { proto: 'udp' }, { port: 53 }], verdict: { kind: 'drop' } }] },
    { op: 'add-elements', set: 'ports', elements: [{ key: [{ proto: 'tcp' }, { port: 30080 }] }, { key: [{ proto: 'sctp' }, { port: 30081 }] }] },
    { op: 'add-elements', set: 'pairs', elements: [{ key: [{ ip: addr }, { ip: addr }] }] },
    { op: 'add-elements', set: 'endpoints', elements: [{ key: [{ number: 8192 }], endpoint: { ip: addr, port: 80 } }, { key: [{ number: 8193 }], endpoint: { ip: addr, port: 81 } }] },
  ];
  return { family, table: 'pt', operations };
}

function applied(tag: string, transaction: Transaction): { viaNetlink: string; viaNft: string } {
  const viaNft = lab.netns(`${tag}-nft`);
  const viaNetlink = lab.netns(`${tag}-nl`);
  run('nft', ['-f', '-'], { input: transactionText(transaction), netns: viaNft });
  const nft = withNetns(lab.path(viaNetlink), () => new Nftables());
  try {
    nft.apply(transaction);
  } finally {
    nft.close();
  }
  return { viaNetlink: run('nft', ['list', 'ruleset'], { netns: viaNetlink }), viaNft: run('nft', ['list', 'ruleset'], { netns: viaNft }) };
}

describe('nftables netlink encoding', () => {
  for (const family of ['ip', 'ip6'] as const) {
    test(`every statement and set kind lists the same as nft -f builds it (${family})`, () => {
      const { viaNetlink, viaNft } = applied(family, everyStatement(family));
      assert.equal(viaNetlink, viaNft);
      assert.match(viaNetlink, /dnat ip6? to numgen random mod 2 offset 8192 map @endpoints/);
    });
  }

  test('a refused transaction changes nothing, and the error names the operation', () => {
    const ns = lab.netns('atomic');
    const nft = withNetns(lab.path(ns), () => new Nftables());
    try {
      nft.apply({ family: 'ip', table: 'pt', operations: [{ op: 'add-table' }, { op: 'add-chain', chain: { name: 'keep' } }, { op: 'add-rule', chain: 'keep', rule: rule([verdict('accept')]) }] });
      const before = run('nft', ['list', 'ruleset'], { netns: ns });
      assert.throws(
        () =>
          nft.apply({
            family: 'ip',
            table: 'pt',
            operations: [{ op: 'flush-chain', name: 'keep' }, { op: 'add-chain', chain: { name: 'new' } }, { op: 'add-rule', chain: 'new', rule: rule([jump('missing')]) }],
          }),
        (err: unknown) => err instanceof NftTransactionError && err.failures[0]?.code === 'ENOENT' && /jump missing/.test(err.failures[0].operation),
      );
      assert.equal(run('nft', ['list', 'ruleset'], { netns: ns }), before, 'the flush and the new chain were rolled back');
      assert.deepEqual(nft.listChains('ip', 'pt'), ['keep']);
      assert.deepEqual(nft.listChains('ip', 'absent'), []);
      assert.deepEqual(nft.observe('ip6', 'absent').sets, []);
    } finally {
      nft.close();
    }
  });

  test('element lists larger than one netlink attribute go in several messages of one batch', () => {
    const ns = lab.netns('big');
    const nft = withNetns(lab.path(ns), () => new Nftables());
    try {
      const elements = Array.from({ length: 20_000 }, (_, i) => ({ key: [{ ip: { family: 4 as const, value: 0x0a000000n + BigInt(i) } }] }));
      const transaction: Transaction = { family: 'ip', table: 'pt', operations: [{ op: 'add-table' }, { op: 'add-set', set: { name: 's', keys: ['ipv4_addr'] } }, { op: 'add-elements', set: 's', elements }] };
      assert.ok(encodeBatch([transaction], 1).count > 3, 'split over several messages');
      nft.apply(transaction);
      const listed = run('nft', ['-j', 'list', 'set', 'ip', 'pt', 's'], { netns: ns });
      assert.equal((JSON.parse(listed) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((o) => o.set)?.set?.elem?.length, 20_000);
    } finally {
      nft.close();
    }
  });

  test('which chains a chain jumps to, read back from the kernel', () => {
    const ns = lab.netns('jumps');
    run('iptables', ['-t', 'nat', '-N', 'KUBE-SERVICES'], { netns: ns });
    run('iptables', ['-t', 'nat', '-A', 'PREROUTING', '-m', 'comment', '--comment', 'portals', '-j', 'KUBE-SERVICES'], { netns: ns });
    const nft = withNetns(lab.path(ns), () => new Nftables());
    try {
      assert.deepEqual(nft.listJumpTargets('ip', 'nat', 'PREROUTING'), ['KUBE-SERVICES']);
      assert.deepEqual(nft.listJumpTargets('ip', 'nat', 'OUTPUT'), []);
    } finally {
      nft.close();
    }
  });

  test('comments are cut to what the kernel keeps, at a character boundary; impossible values are refused before sending', () => {
    const long = rule([verdict('accept')], `${'é'.repeat(100)}`);
    assert.ok(Buffer.byteLength(long.comment ?? '') <= MAX_COMMENT_BYTES);
    assert.ok(!(long.comment ?? '').includes('\ufffd'));
    assert.throws(() => encodeBatch([{ family: 'ip', table: 't', operations: [{ op: 'add-rule', chain: 'c', rule: rule([match({ sel: 'iifname' }, { name: 'a-name-longer-than-ifnamsiz' })]) }] }], 1), NftablesEncodeError);
  });
});
