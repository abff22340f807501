/** TableBook and IptablesBook: what a change costs, and what survives a restart. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IptablesBook } from '../../src/lib/iptables-book.js';
import { parseIp } from '../../src/lib/ip.js';
import { type Contribution, TableBook } from '../../src/lib/nftables/book.js';
import { goto, jump, rule, type Operation } from '../../src/lib/nftables/ir.js';
import { transactionText } from '../../src/lib/nftables/text.js';

const vmap = { name: 'service-ips', keys: ['ipv4_addr' as const], data: 'verdict' as const };
const hairpin = { name: 'hairpin', keys: ['ipv4_addr' as const] };
const affinity = { name: 'affinity-a', keys: ['ipv4_addr' as const], dynamic: true, timeoutSeconds: 60 };

function service(name: string, ip: string, endpoint: string): Contribution {
  return {
    sets: [vmap, hairpin],
    chains: [{ def: { name: `svc-${name}` }, rules: [rule([jump('mark')], name)] }],
    elements: [
      { set: 'service-ips', element: { key: [{ ip: parseIp(ip) }], verdict: { kind: 'goto', chain: `svc-${name}` } } },
      { set: 'hairpin', element: { key: [{ ip: parseIp(endpoint) }] } },
    ],
  };
}

const ops = (operations: readonly Operation[]): string[] => operations.map((o) => transactionText({ family: 'ip', table: 't', operations: [o] }).trim());

describe('TableBook', () => {
  test('a one-owner change touches only that owner’s chains and elements', () => {
    const book = new TableBook('ip', 't');
    book.plan(new Map([['a', service('a', '10.96.0.1', '10.244.0.1')], ['b', service('b', '10.96.0.2', '10.244.0.2')]]), true).commit();
    const plan = book.plan(new Map([['b', service('b', '10.96.0.3', '10.244.0.2')]]));
    assert.deepEqual(ops(plan.transaction.operations), [
      'add table ip t',
      'delete element ip t service-ips { 10.96.0.2 }',
      'add element ip t service-ips { 10.96.0.3 : goto svc-b }',
    ]);
  });

  test('an owner that re-points an element at a new chain replaces it before deleting the old chain', () => {
    // Found by the incremental test: a Service switched to internalTrafficPolicy Local kept
    // its map element aimed at the chain being deleted (EBUSY).
    const book = new TableBook('ip', 't');
    book.plan(new Map([['a', service('a', '10.96.0.1', '10.244.0.1')]]), true).commit();
    const local: Contribution = { ...service('a', '10.96.0.1', '10.244.0.1'), chains: [{ def: { name: 'local-a' }, rules: [rule([jump('mark')], 'a')] }] };
    const repointed: Contribution = { ...local, elements: [{ set: 'service-ips', element: { key: [{ ip: parseIp('10.96.0.1') }], verdict: { kind: 'goto', chain: 'local-a' } } }, ...(local.elements ?? []).slice(1)] };
    const plan = book.plan(new Map([['a', repointed]]));
    const text = ops(plan.transaction.operations);
    const added = text.indexOf('add element ip t service-ips { 10.96.0.1 : goto local-a }');
    assert.ok(added >= 0, `the element points at the new chain: ${text.join('; ')}`);
    assert.ok(text.indexOf('delete element ip t service-ips { 10.96.0.1 }') < added);
    assert.ok(added < text.indexOf('delete chain ip t svc-a'));
  });

  test('an unchanged contribution plans nothing at all', () => {
    const book = new TableBook('ip', 't');
    book.plan(new Map([['a', service('a', '10.96.0.1', '10.244.0.1')]]), true).commit();
    assert.deepEqual(book.plan(new Map([['a', service('a', '10.96.0.1', '10.244.0.1')]])).transaction.operations, []);
  });

  test('an element two owners contribute stays until both are gone', () => {
    const book = new TableBook('ip', 't');
    book.plan(new Map([['a', service('a', '10.96.0.1', '10.244.0.9')], ['b', service('b', '10.96.0.2', '10.244.0.9')]]), true).commit();
    const first = book.plan(new Map([['a', undefined]]));
    assert.ok(!ops(first.transaction.operations).some((o) => o.includes('hairpin')), 'the shared endpoint stays while b wants it');
    assert.ok(ops(first.transaction.operations).includes('delete chain ip t svc-a'));
    first.commit();
    const second = book.plan(new Map([['b', undefined]]));
    assert.ok(ops(second.transaction.operations).includes('delete element ip t hairpin { 10.244.0.9 }'));
    assert.ok(ops(second.transaction.operations).includes('delete set ip t hairpin'), 'a set nobody contributes goes');
  });

  test('after a restart: known chains are rewritten, stale ones deleted, plain sets refilled, dynamic sets kept', () => {
    const book = new TableBook('ip', 't');
    book.reset({ chains: ['svc-a', 'svc-gone'], sets: ['service-ips', 'affinity-a', 'old-set'] });
    const withAffinity: Contribution = { ...service('a', '10.96.0.1', '10.244.0.1'), sets: [vmap, hairpin, affinity] };
    const text = ops(book.plan(new Map([['a', withAffinity]]), true).transaction.operations);
    assert.ok(text.includes('flush set ip t service-ips'), 'a plain set of unknown contents is refilled');
    assert.ok(!text.includes('flush set ip t affinity-a'), 'affinity state survives the restart');
    assert.ok(text.includes('flush chain ip t svc-a'), 'a chain of unknown contents is rewritten');
    assert.ok(text.indexOf('flush chain ip t svc-gone') < text.indexOf('delete chain ip t svc-gone'), 'a stale chain is flushed, then deleted');
    assert.ok(text.includes('delete set ip t old-set'));
    assert.ok(text.indexOf('delete set ip t old-set') > text.indexOf('flush chain ip t svc-gone'), 'sets go after the rules that might use them');
  });

  test('the fast full plan and the general plan agree: nothing left to do after either', () => {
    const contributions = new Map([['a', service('a', '10.96.0.1', '10.244.0.1')], ['b', service('b', '10.96.0.2', '10.244.0.1')]]);
    const book = new TableBook('ip', 't');
    book.plan(contributions, true).commit();
    assert.deepEqual(book.plan(contributions).transaction.operations, []);
    assert.deepEqual(book.size, { chains: 2, rules: 2, elements: 3 });
  });

  test('new chains are declared before any rule refers to them', () => {
    const book = new TableBook('ip', 't');
    const contribution: Contribution = { chains: [{ def: { name: 'first' }, rules: [rule([goto('second')])] }, { def: { name: 'second' }, rules: [] }] };
    const text = ops(book.plan(new Map([['x', contribution]]), true).transaction.operations);
    assert.ok(text.indexOf('add chain ip t second') < text.indexOf('add rule ip t first goto second'));
  });
});

describe('IptablesBook', () => {
  const shared = [{ table: 'nat', name: 'KUBE-SERVICES', trailer: ['-j KUBE-NODEPORTS'] }, { table: 'nat', name: 'KUBE-NODEPORTS' }];
  const contribution = (name: string) => ({
    chains: [{ table: 'nat', name: `KUBE-SVC-${name}`, rules: [`-j KUBE-SEP-${name}`] }],
    lines: [{ table: 'nat', chain: 'KUBE-SERVICES', rule: `-d 10.96.0.${name.length}/32 -j KUBE-SVC-${name}` }],
  });

  test('a full plan declares every chain and rewrites the shared ones whole, trailer last', () => {
    const book = new IptablesBook(shared);
    const plan = book.plan(new Map([['a', contribution('A')]]), true);
    assert.equal(plan.script, '*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-A\n-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-A\n-A KUBE-SERVICES -j KUBE-NODEPORTS\nCOMMIT\n');
  });

  test('a partial plan inserts new dispatch rules above the trailer and deletes removed ones before their chains', () => {
    const book = new IptablesBook(shared);
    book.plan(new Map([['a', contribution('A')]]), true).commit();
    const added = book.plan(new Map([['b', contribution('BB')]]));
    assert.equal(added.script, '*nat\n:KUBE-SVC-BB - [0:0]\n-A KUBE-SVC-BB -j KUBE-SEP-BB\n-I KUBE-SERVICES 1 -d 10.96.0.2/32 -j KUBE-SVC-BB\nCOMMIT\n');
    added.commit();
    const removed = book.plan(new Map([['a', undefined]]));
    assert.equal(removed.script, '*nat\n:KUBE-SVC-A - [0:0]\n-D KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-A\n-X KUBE-SVC-A\nCOMMIT\n');
  });

  test('after a reset, the first plan is full even when asked for a partial one, and removes stale KUBE chains', () => {
    const book = new IptablesBook(shared);
    book.reset([{ table: 'nat', name: 'KUBE-SVC-OLD' }, { table: 'nat', name: 'KUBE-SERVICES' }]);
    const plan = book.plan(new Map([['a', contribution('A')]]));
    assert.equal(plan.full, true);
    assert.match(plan.script, /:KUBE-SVC-OLD - \[0:0\][\s\S]*-X KUBE-SVC-OLD\nCOMMIT/);
    assert.doesNotMatch(plan.script, /-X KUBE-SERVICES/);
  });
});
