import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CidrSet, CidrSetError, CidrSetFullError } from '../../src/controllers/cidr-set.js';

describe('CidrSet', () => {
  test('hands out distinct /24s of the cluster CIDR in order', () => {
    const set = new CidrSet('10.244.0.0/16', 24);
    assert.equal(set.subnetCount, 256);
    assert.deepEqual([set.allocateNext(), set.allocateNext(), set.allocateNext()], ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24']);
  });

  test('skips subnets already on nodes (rebuild after restart)', () => {
    const set = new CidrSet('10.244.0.0/16', 24);
    assert.equal(set.occupy('10.244.0.0/24'), true);
    assert.equal(set.occupy('10.244.1.0/24'), true);
    assert.equal(set.occupy('192.168.0.0/24'), false, 'outside the cluster CIDR');
    assert.equal(set.allocateNext(), '10.244.2.0/24');
  });

  test('released subnets are reused only after the others (round robin)', () => {
    const set = new CidrSet('10.0.0.0/30', 31);
    const a = set.allocateNext();
    const b = set.allocateNext();
    assert.deepEqual([a, b], ['10.0.0.0/31', '10.0.0.2/31']);
    assert.throws(() => set.allocateNext(), CidrSetFullError);
    set.release(a);
    assert.equal(set.isUsed(a), false);
    assert.equal(set.allocateNext(), a);
  });

  test('a larger CIDR occupies every subnet it covers', () => {
    const set = new CidrSet('10.244.0.0/16', 24);
    set.occupy('10.244.0.0/23');
    assert.equal(set.allocateNext(), '10.244.2.0/24');
  });

  test('exhaustion and bad configuration are typed errors', () => {
    const set = new CidrSet('10.244.0.0/23', 24);
    set.allocateNext();
    set.allocateNext();
    assert.throws(() => set.allocateNext(), CidrSetFullError);
    assert.throws(() => new CidrSet('10.244.0.0/16', 8), CidrSetError);
    assert.throws(() => new CidrSet('10.0.0.0/8', 30), CidrSetError);
  });

  test('IPv6 cluster CIDRs work the same way', () => {
    const set = new CidrSet('fd00:10:244::/56', 64);
    assert.deepEqual([set.allocateNext(), set.allocateNext()], ['fd00:10:244::/64', 'fd00:10:244:1::/64']);
  });
});
