import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IpamConfigError } from '../../src/ipam/errors.js';
import {
  canonicalizeRange,
  canonicalizeRangeSet,
  canonicalizeRangeSets,
  candidates,
  describeRangeSet,
  type Range,
  rangeContains,
  rangeFor,
  type RangeSet,
  type RangeSpec,
} from '../../src/ipam/range.js';
import { formatIp, formatIpNet, type Ip, parseIp } from '../../src/lib/ip.js';

/** A range as strings, so failures print readable addresses. */
function show(range: Range): Record<string, string | undefined> {
  return {
    subnet: formatIpNet(range.subnet),
    start: formatIp(range.start),
    end: formatIp(range.end),
    gateway: range.gateway && formatIp(range.gateway),
  };
}

/** Asserts an IpamConfigError naming `field`; returns it for further checks. */
function throwsConfigError(fn: () => unknown, field: string): IpamConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof IpamConfigError, `expected IpamConfigError, got ${String(err)}`);
    assert.equal(err.field, field);
    return err;
  }
  return assert.fail(`expected IpamConfigError on ${field}, nothing was thrown`);
}

function list(set: RangeSet, lastReserved: Ip | undefined, limit = 100): string[] {
  const out: string[] = [];
  for (const { ip } of candidates(set, lastReserved)) {
    out.push(formatIp(ip));
    if (out.length >= limit) break;
  }
  return out;
}

describe('canonicalizeRange defaults (as host-local)', () => {
  test('IPv4 /24: gateway .1, start .1, end .254', () => {
    assert.deepEqual(show(canonicalizeRange({ subnet: '10.244.1.0/24' }, 'r')), {
      subnet: '10.244.1.0/24',
      start: '10.244.1.1',
      end: '10.244.1.254',
      gateway: '10.244.1.1',
    });
  });

  test('IPv6: end is the last address, no broadcast to skip', () => {
    assert.deepEqual(show(canonicalizeRange({ subnet: '2001:db8:1::/64' }, 'r')), {
      subnet: '2001:db8:1::/64',
      start: '2001:db8:1::1',
      end: '2001:db8:1:0:ffff:ffff:ffff:ffff', // RFC 5952 4.2.2: one zero field stays
      gateway: '2001:db8:1::1',
    });
  });

  test('explicit start, end and gateway are kept', () => {
    const spec: RangeSpec = { subnet: '10.0.0.0/16', rangeStart: '10.0.1.10', rangeEnd: '10.0.1.20', gateway: '10.0.255.254' };
    assert.deepEqual(show(canonicalizeRange(spec, 'r')), {
      subnet: '10.0.0.0/16',
      start: '10.0.1.10',
      end: '10.0.1.20',
      gateway: '10.0.255.254',
    });
  });

  test('/30 is the smallest IPv4 subnet allowed, /126 for IPv6', () => {
    assert.deepEqual(show(canonicalizeRange({ subnet: '10.0.0.4/30' }, 'r')), {
      subnet: '10.0.0.4/30',
      start: '10.0.0.5',
      end: '10.0.0.6',
      gateway: '10.0.0.5',
    });
    assert.equal(formatIp(canonicalizeRange({ subnet: 'fd00::/126' }, 'r').end), 'fd00::3');
  });

  test('rangeContains and rangeFor use start..end, not the whole subnet', () => {
    const a = canonicalizeRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.19' }, 'r');
    const b = canonicalizeRange({ subnet: '10.0.1.0/24' }, 'r');
    assert.equal(rangeContains(a, parseIp('10.0.0.10')), true);
    assert.equal(rangeContains(a, parseIp('10.0.0.19')), true);
    assert.equal(rangeContains(a, parseIp('10.0.0.9')), false);
    assert.equal(rangeContains(a, parseIp('10.0.0.20')), false);
    assert.equal(rangeContains(a, parseIp('::a00:a')), false, 'same value, IPv6');
    assert.equal(rangeFor([a, b], parseIp('10.0.1.5')), b);
    assert.equal(rangeFor([a, b], parseIp('10.0.0.5')), undefined);
    assert.equal(describeRangeSet([a, b]), '10.0.0.10-10.0.0.19,10.0.1.1-10.0.1.254');
  });
});

describe('canonicalizeRange errors name the field', () => {
  test('host bits set', () => {
    throwsConfigError(() => canonicalizeRange({ subnet: '10.244.1.5/24' }, 'ranges[0][0]'), 'ranges[0][0].subnet');
    throwsConfigError(() => canonicalizeRange({ subnet: '2001:db8::1/64' }, 'x'), 'x.subnet');
  });

  test('subnet missing or not a CIDR', () => {
    throwsConfigError(() => canonicalizeRange({} as RangeSpec, 'r'), 'r.subnet');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0' }, 'r'), 'r.subnet');
    throwsConfigError(() => canonicalizeRange({ subnet: 'nope/24' }, 'r'), 'r.subnet');
  });

  test('/31, /32 and /127 are too small', () => {
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/31' }, 'r'), 'r.subnet');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/32' }, 'r'), 'r.subnet');
    throwsConfigError(() => canonicalizeRange({ subnet: 'fd00::/127' }, 'r'), 'r.subnet');
  });

  test('start, end or gateway outside the subnet, or not an address', () => {
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }, 'r'), 'r.rangeStart');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', rangeEnd: '10.0.1.1' }, 'r'), 'r.rangeEnd');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }, 'r'), 'r.gateway');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', rangeStart: 'fd00::1' }, 'r'), 'r.rangeStart');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', rangeStart: 'ten' }, 'r'), 'r.rangeStart');
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', gateway: '10.0.0.1/24' }, 'r'), 'r.gateway');
  });

  test('start after end', () => {
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.50', rangeEnd: '10.0.0.40' }, 'r'), 'r.rangeStart');
    // a start past the default end (.254) is after it too
    throwsConfigError(() => canonicalizeRange({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.255' }, 'r'), 'r.rangeStart');
  });
});

describe('range sets', () => {
  test('a set of one family with ranges that do not overlap is fine', () => {
    const set = canonicalizeRangeSet([{ subnet: '10.0.0.0/24' }, { subnet: '10.0.1.0/24' }], 'ranges[0]');
    assert.equal(set.length, 2);
  });

  test('an empty set is an error', () => {
    throwsConfigError(() => canonicalizeRangeSet([], 'ranges[0]'), 'ranges[0]');
    throwsConfigError(() => canonicalizeRangeSets([]), 'ranges');
  });

  test('mixed families in one set', () => {
    throwsConfigError(() => canonicalizeRangeSet([{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }], 'ranges[0]'), 'ranges[0][1]');
  });

  test('overlapping ranges within a set name both', () => {
    const err = throwsConfigError(
      () =>
        canonicalizeRangeSet(
          [
            { subnet: '10.0.0.0/24' },
            { subnet: '10.0.1.0/24' },
            { subnet: '10.0.0.0/16', rangeStart: '10.0.0.200', rangeEnd: '10.0.0.210' },
          ],
          'ranges[0]',
        ),
      'ranges[0][2]',
    );
    assert.match(err.message, /ranges\[0\]\[0\]/);
  });

  test('ranges in one subnet that do not overlap are fine', () => {
    canonicalizeRangeSet(
      [
        { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.19' },
        { subnet: '10.0.0.0/24', rangeStart: '10.0.0.20', rangeEnd: '10.0.0.29' },
      ],
      'ranges[0]',
    );
  });

  test('range sets that overlap each other name both', () => {
    const err = throwsConfigError(
      () => canonicalizeRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }], [{ subnet: '10.0.0.128/25' }]]),
      'ranges[2]',
    );
    assert.match(err.message, /range set 0/);
    assert.match(err.message, /range set 2/);
  });

  test('dual stack sets do not overlap each other', () => {
    const sets = canonicalizeRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]], 'ipam.ranges');
    assert.deepEqual(
      sets.map((set) => set.map((r) => r.subnet.family)),
      [[4], [6]],
    );
  });

  test('errors inside a set carry the full path of the field', () => {
    throwsConfigError(() => canonicalizeRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.1.0/24' }, { subnet: '10.0.2.0/31' }]], 'ipam.ranges'), 'ipam.ranges[1][1].subnet');
  });
});

describe('candidates: round robin', () => {
  const small = canonicalizeRangeSet([{ subnet: '10.0.0.0/29' }], 's'); // .1 (gateway) .. .6

  test('from the start, skipping the gateway', () => {
    assert.deepEqual(list(small, undefined), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  test('after lastReserved, wrapping once, lastReserved itself last', () => {
    assert.deepEqual(list(small, parseIp('10.0.0.4')), ['10.0.0.5', '10.0.0.6', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
  });

  test('lastReserved at the end of the only range starts over', () => {
    assert.deepEqual(list(small, parseIp('10.0.0.6')), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  test('lastReserved outside every range starts from the first range', () => {
    assert.deepEqual(list(small, parseIp('192.168.0.1')), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    assert.deepEqual(list(small, parseIp('fd00::1')), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  test('a gateway outside start..end is not skipped from anything, a gateway inside is', () => {
    const set = canonicalizeRangeSet([{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.13', gateway: '10.0.0.12' }], 's');
    assert.deepEqual(list(set, undefined), ['10.0.0.10', '10.0.0.11', '10.0.0.13']);
  });

  const multi = canonicalizeRangeSet(
    [
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.12' },
      { subnet: '10.0.1.0/24', rangeStart: '10.0.1.1', rangeEnd: '10.0.1.3' }, // .1 is the gateway
      { subnet: '10.0.2.0/24', rangeStart: '10.0.2.20', rangeEnd: '10.0.2.21' },
    ],
    'm',
  );

  test('several ranges in a set: in order, each range skipping its own gateway', () => {
    assert.deepEqual(list(multi, undefined), ['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.1.2', '10.0.1.3', '10.0.2.20', '10.0.2.21']);
  });

  test('several ranges: from the middle range, across the last, wrapping to the first and back', () => {
    assert.deepEqual(list(multi, parseIp('10.0.1.2')), ['10.0.1.3', '10.0.2.20', '10.0.2.21', '10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.1.2']);
  });

  test('several ranges: lastReserved at the end of the last range wraps to the first', () => {
    assert.deepEqual(list(multi, parseIp('10.0.2.21')), ['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.1.2', '10.0.1.3', '10.0.2.20', '10.0.2.21']);
  });

  test('several ranges: lastReserved at the end of a middle range goes on with the next', () => {
    assert.deepEqual(list(multi, parseIp('10.0.0.12')), ['10.0.1.2', '10.0.1.3', '10.0.2.20', '10.0.2.21', '10.0.0.10', '10.0.0.11', '10.0.0.12']);
  });

  test('every candidate comes with its range', () => {
    const ranges = [...candidates(multi, undefined)].map(({ ip, range }) => `${formatIp(ip)} in ${formatIpNet(range.subnet)}`);
    assert.deepEqual(ranges.slice(2, 4), ['10.0.0.12 in 10.0.0.0/24', '10.0.1.2 in 10.0.1.0/24']);
  });

  test('IPv6 candidates', () => {
    const set = canonicalizeRangeSet([{ subnet: 'fd00::/64', rangeStart: 'fd00::ffff', rangeEnd: 'fd00::1:1' }], 's');
    assert.deepEqual(list(set, parseIp('fd00::1:0')), ['fd00::1:1', 'fd00::ffff', 'fd00::1:0']);
  });
});
