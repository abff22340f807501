/**
 * Allocation logic against both stores: every behaviour test runs on MemoryStore and on a
 * DiskStore in a temp directory, then DiskStore's on-disk format is checked byte for byte
 * against what the reference host-local plugin writes and reads.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Allocation, Allocator } from '../../src/ipam/allocator.js';
import { AddressUnavailableError, IpamConfigError, IpamStoreError, RangeExhaustedError } from '../../src/ipam/errors.js';
import { canonicalizeRangeSets, type RangeSet, type RangeSpec } from '../../src/ipam/range.js';
import { DiskStore, type IpamStore, MemoryStore, type Owner, parseOwner, sameOwner } from '../../src/ipam/store.js';
import { formatIp, formatIpNet, type Ip, parseIp } from '../../src/lib/ip.js';

let dataDir = '';
before(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'pontoon-ipam-test-'));
});
after(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

let networkCounter = 0;
function freshNetwork(): string {
  networkCounter += 1;
  return `net${networkCounter}`;
}

const owner = (containerId: string, ifname = 'eth0'): Owner => ({ containerId, ifname });
const sets = (...specs: RangeSpec[][]): RangeSet[] => canonicalizeRangeSets(specs);
const addresses = (allocations: Allocation[]): string[] => allocations.map((a) => formatIpNet(a.address));
const texts = (ips: Ip[]): string[] => ips.map(formatIp).sort();
const held = (store: IpamStore): string[] => texts(store.reservations().map((r) => r.ip));

const V4 = [{ subnet: '10.0.0.0/29' }]; // gateway .1; .2 .. .6 allocatable
const V6 = [{ subnet: 'fd00::/126' }]; // gateway ::1; ::2, ::3 allocatable

interface StoreKind {
  name: string;
  make(): IpamStore;
}

const kinds: StoreKind[] = [
  { name: 'MemoryStore', make: () => new MemoryStore() },
  { name: 'DiskStore', make: () => new DiskStore(dataDir, freshNetwork()) },
];

for (const kind of kinds) {
  describe(`Allocator with ${kind.name}`, () => {
    test('hands out .2 first, then .3, and does not reuse a just-freed address', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4));
      const first = allocator.allocate(owner('a'));
      assert.deepEqual(first, [
        { address: { family: 4, value: parseIp('10.0.0.2').value, prefixLength: 29 }, gateway: parseIp('10.0.0.1'), rangeSetIndex: 0 },
      ]);
      assert.deepEqual(addresses(allocator.allocate(owner('b'))), ['10.0.0.3/29']);
      assert.deepEqual(texts(allocator.release(owner('a'))), ['10.0.0.2']);
      assert.deepEqual(addresses(allocator.allocate(owner('c'))), ['10.0.0.4/29']);
      assert.deepEqual(addresses(allocator.allocate(owner('d'))), ['10.0.0.5/29']);
      assert.deepEqual(addresses(allocator.allocate(owner('e'))), ['10.0.0.6/29']);
      assert.deepEqual(addresses(allocator.allocate(owner('f'))), ['10.0.0.2/29'], 'wraps around to the freed address');
    });

    test('a requested IP is honoured and moves the round robin on', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4));
      assert.deepEqual(addresses(allocator.allocate(owner('a'), [parseIp('10.0.0.5')])), ['10.0.0.5/29']);
      assert.deepEqual(addresses(allocator.allocate(owner('b'))), ['10.0.0.6/29']);
      assert.deepEqual(addresses(allocator.allocate(owner('c'))), ['10.0.0.2/29']);
    });

    test('requesting the gateway or an address outside the ranges is a config error; a taken one is AddressUnavailableError', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4, V6));
      assert.throws(() => allocator.allocate(owner('a'), [parseIp('10.0.0.1')]), IpamConfigError);
      assert.throws(() => allocator.allocate(owner('a'), [parseIp('10.0.0.7')]), IpamConfigError, 'broadcast');
      assert.throws(() => allocator.allocate(owner('a'), [parseIp('10.0.1.2')]), IpamConfigError);
      assert.throws(() => allocator.allocate(owner('a'), [parseIp('10.0.0.2'), parseIp('10.0.0.3')]), IpamConfigError, 'two in one set');
      assert.deepEqual(held(store), [], 'failed requests leave nothing behind');
      allocator.allocate(owner('a'), [parseIp('10.0.0.3')]);
      assert.throws(() => allocator.allocate(owner('b'), [parseIp('10.0.0.3')]), AddressUnavailableError);
      assert.deepEqual(held(store), ['10.0.0.3', 'fd00::2']);
    });

    test('a second ADD for the same container and interface is rejected; another interface is fine', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4));
      allocator.allocate(owner('a', 'eth0'));
      assert.throws(() => allocator.allocate(owner('a', 'eth0')), AddressUnavailableError);
      assert.deepEqual(addresses(allocator.allocate(owner('a', 'net1'))), ['10.0.0.3/29']);
      assert.deepEqual(held(store), ['10.0.0.2', '10.0.0.3']);
    });

    test('dual stack gives one address per range set, each with its gateway', () => {
      const allocator = new Allocator(kind.make(), sets(V4, V6));
      const allocations = allocator.allocate(owner('a'));
      assert.deepEqual(addresses(allocations), ['10.0.0.2/29', 'fd00::2/126']);
      assert.deepEqual(allocations.map((a) => [a.rangeSetIndex, a.gateway && formatIp(a.gateway)]), [
        [0, '10.0.0.1'],
        [1, 'fd00::1'],
      ]);
      assert.deepEqual(texts(allocator.addressesOf(owner('a'))), ['10.0.0.2', 'fd00::2']);
    });

    test('exhaustion is RangeExhaustedError and all or nothing across range sets', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4, V6));
      allocator.allocate(owner('a'));
      allocator.allocate(owner('b'));
      assert.deepEqual(allocator.exhaustedRangeSets(), [1]);
      // set 0 still has .4 .. .6: it is reserved, then released when set 1 fails
      assert.throws(() => allocator.allocate(owner('c')), RangeExhaustedError);
      assert.deepEqual(held(store), ['10.0.0.2', '10.0.0.3', 'fd00::2', 'fd00::3']);
      assert.deepEqual(allocator.addressesOf(owner('c')), []);
      allocator.release(owner('b'));
      // the failed attempt moved set 0's round robin past .4, as host-local's does
      assert.deepEqual(addresses(allocator.allocate(owner('c'))), ['10.0.0.5/29', 'fd00::3/126']);
    });

    test('a requested IP that is taken in the second range set releases the first', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4, V6));
      allocator.allocate(owner('a'));
      assert.throws(() => allocator.allocate(owner('b'), [parseIp('fd00::2')]), AddressUnavailableError);
      assert.deepEqual(held(store), ['10.0.0.2', 'fd00::2']);
    });

    test('exhaustion of the first range set reserves nothing in the second', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets([{ subnet: '10.0.0.0/30' }], V6)); // only .2
      allocator.allocate(owner('a'));
      assert.throws(() => allocator.allocate(owner('b')), RangeExhaustedError);
      assert.deepEqual(held(store), ['10.0.0.2', 'fd00::2']);
      assert.deepEqual(allocator.exhaustedRangeSets(), [0]);
    });

    test('release frees only the owner, and is empty for an unknown owner', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4, [{ subnet: 'fd00::/120' }]));
      allocator.allocate(owner('a', 'eth0'));
      allocator.allocate(owner('a', 'net1'));
      allocator.allocate(owner('b'));
      assert.deepEqual(allocator.release(owner('nobody')), []);
      assert.deepEqual(texts(allocator.release(owner('a', 'net1'))), ['10.0.0.3', 'fd00::3']);
      assert.deepEqual(held(store), ['10.0.0.2', '10.0.0.4', 'fd00::2', 'fd00::4']);
      assert.deepEqual(allocator.release(owner('a', 'net1')), [], 'a second DEL is a no-op');
    });

    test('collectGarbage keeps valid owners and frees the rest', () => {
      const store = kind.make();
      const allocator = new Allocator(store, sets(V4));
      allocator.allocate(owner('keep', 'eth0'));
      allocator.allocate(owner('keep', 'net1'));
      allocator.allocate(owner('gone'));
      allocator.allocate(owner('other-if', 'eth0'));
      const released = allocator.collectGarbage([owner('keep', 'eth0'), owner('keep', 'net1'), owner('other-if', 'eth1')]);
      assert.deepEqual(texts(released), ['10.0.0.4', '10.0.0.5']);
      assert.deepEqual(held(store), ['10.0.0.2', '10.0.0.3']);
      assert.deepEqual(texts(allocator.collectGarbage([])), ['10.0.0.2', '10.0.0.3']);
      assert.deepEqual(held(store), []);
    });

    test('exhaustedRangeSets follows allocation and release', () => {
      const allocator = new Allocator(kind.make(), sets([{ subnet: '10.0.0.0/30' }], [{ subnet: '10.0.1.0/30' }]));
      assert.deepEqual(allocator.exhaustedRangeSets(), []);
      allocator.allocate(owner('a'));
      assert.deepEqual(allocator.exhaustedRangeSets(), [0, 1]);
      allocator.release(owner('a'));
      assert.deepEqual(allocator.exhaustedRangeSets(), []);
    });
  });
}

describe('DiskStore on-disk format (host-local compatible)', () => {
  test('writes <dir>/<network>/<ip> as "<id>\\r\\n<ifname>", last_reserved_ip.<N> and a lock file', () => {
    const network = freshNetwork();
    const allocator = new Allocator(new DiskStore(dataDir, network), sets(V4, V6));
    allocator.allocate(owner('0123456789abcdef', 'eth0'));
    allocator.allocate(owner('second', 'net1'));
    const dir = join(dataDir, network);
    assert.deepEqual(readdirSync(dir).sort(), ['10.0.0.2', '10.0.0.3', 'fd00::2', 'fd00::3', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    assert.deepEqual(readFileSync(join(dir, '10.0.0.2')), Buffer.from('0123456789abcdef\r\neth0'));
    assert.deepEqual(readFileSync(join(dir, 'fd00::3')), Buffer.from('second\r\nnet1'));
    assert.deepEqual(readFileSync(join(dir, 'last_reserved_ip.0')), Buffer.from('10.0.0.3'));
    assert.deepEqual(readFileSync(join(dir, 'last_reserved_ip.1')), Buffer.from('fd00::3'));
    allocator.release(owner('0123456789abcdef', 'eth0'));
    assert.deepEqual(readdirSync(dir).sort(), ['10.0.0.3', 'fd00::3', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  });

  test('continues after the last_reserved_ip host-local left, and respects its reservations', () => {
    const network = freshNetwork();
    const dir = join(dataDir, network);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.2'), 'hostlocal-a\r\neth0');
    writeFileSync(join(dir, '10.0.0.5'), 'hostlocal-b\r\neth0');
    writeFileSync(join(dir, 'last_reserved_ip.0'), '10.0.0.4');
    const store = new DiskStore(dataDir, network);
    const allocator = new Allocator(store, sets(V4));
    assert.deepEqual(addresses(allocator.allocate(owner('new'))), ['10.0.0.6/29']);
    assert.deepEqual(addresses(allocator.allocate(owner('newer'))), ['10.0.0.3/29']);
    assert.deepEqual(texts(allocator.release(owner('hostlocal-b'))), ['10.0.0.5']);
    assert.equal(existsSync(join(dir, '10.0.0.5')), false);
  });

  test('reads a legacy file holding only the container id; it belongs to that container on any interface', () => {
    const network = freshNetwork();
    const dir = join(dataDir, network);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.3'), 'legacy-id');
    writeFileSync(join(dir, '10.0.0.4'), 'legacy-nl\n');
    const store = new DiskStore(dataDir, network);
    assert.deepEqual(
      store.reservations().map((r) => ({ ip: formatIp(r.ip), owner: r.owner })).sort((a, b) => a.ip.localeCompare(b.ip)),
      [
        { ip: '10.0.0.3', owner: { containerId: 'legacy-id', ifname: '' } },
        { ip: '10.0.0.4', owner: { containerId: 'legacy-nl', ifname: '' } },
      ],
    );
    const allocator = new Allocator(store, sets(V4));
    assert.deepEqual(texts(allocator.addressesOf(owner('legacy-id', 'eth0'))), ['10.0.0.3']);
    assert.deepEqual(texts(allocator.release(owner('legacy-id', 'eth0'))), ['10.0.0.3']);
    assert.equal(existsSync(join(dir, '10.0.0.3')), false);
  });

  test('a corrupt address file keeps its address out of allocation until GC frees it', () => {
    const network = freshNetwork();
    const dir = join(dataDir, network);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '10.0.0.2'), Buffer.from('\0\0\xff garbage\nline two\nline three', 'latin1'));
    writeFileSync(join(dir, '10.0.0.3'), '');
    writeFileSync(join(dir, 'last_reserved_ip.0'), 'not an address');
    writeFileSync(join(dir, 'stray.txt'), 'not a reservation');
    const store = new DiskStore(dataDir, network);
    assert.deepEqual(
      store.reservations().map((r) => [formatIp(r.ip), r.owner]).sort(),
      [
        ['10.0.0.2', undefined],
        ['10.0.0.3', undefined],
      ],
    );
    const allocator = new Allocator(store, sets(V4));
    assert.deepEqual(addresses(allocator.allocate(owner('a'))), ['10.0.0.4/29'], 'unreadable last_reserved_ip: from the start, skipping held files');
    assert.deepEqual(texts(allocator.collectGarbage([owner('a')])), ['10.0.0.2', '10.0.0.3']);
    assert.deepEqual(readdirSync(dir).sort(), ['10.0.0.4', 'last_reserved_ip.0', 'lock', 'stray.txt']);
  });

  test('a file not in canonical form is not a reservation (host-local names files by canonical IP)', () => {
    const network = freshNetwork();
    const dir = join(dataDir, network);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'FD00:0::2'), 'x\r\neth0');
    assert.deepEqual(new DiskStore(dataDir, network).reservations(), []);
  });

  test('network names that cannot be a directory are IpamStoreError', () => {
    for (const network of ['', '.', '..', 'a/b']) {
      assert.throws(() => new DiskStore(dataDir, network), IpamStoreError, JSON.stringify(network));
    }
  });
});

describe('owners', () => {
  test('parseOwner reads host-local content and rejects garbage', () => {
    assert.deepEqual(parseOwner('abc\r\neth0'), { containerId: 'abc', ifname: 'eth0' });
    assert.deepEqual(parseOwner('abc\neth0\n'), { containerId: 'abc', ifname: 'eth0' });
    assert.deepEqual(parseOwner('abc'), { containerId: 'abc', ifname: '' });
    for (const content of ['', '\r\n', 'a b\r\neth0', 'abc\r\neth0\r\nmore', 'abc\r\ne/th0', 'a\0c']) {
      assert.equal(parseOwner(content), undefined, JSON.stringify(content));
    }
  });

  test('sameOwner matches a legacy (no ifname) owner to any interface of the container', () => {
    assert.equal(sameOwner(owner('a', 'eth0'), owner('a', 'eth0')), true);
    assert.equal(sameOwner(owner('a', 'eth0'), owner('a', 'eth1')), false);
    assert.equal(sameOwner(owner('a', ''), owner('a', 'eth1')), true);
    assert.equal(sameOwner(owner('a', 'eth0'), owner('b', 'eth0')), false);
  });
});
