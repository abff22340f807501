import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatIp,
  formatIpNet,
  formatMac,
  InvalidAddressError,
  ipEqual,
  ipFromBytes,
  ipToBytes,
  lastAddressOf,
  netContains,
  netsOverlap,
  networkOf,
  offsetIp,
  parseIp,
  parseIpNet,
  parseMac,
  tryParseIp,
} from '../../src/lib/ip.js';

const isInvalid = { name: 'InvalidAddressError' };

describe('parse and format', () => {
  test('IPv4 addresses parse to family 4 and a 32-bit value', () => {
    assert.deepEqual(parseIp('10.244.1.5'), { family: 4, value: 0x0af40105n });
    assert.deepEqual(parseIp('0.0.0.0'), { family: 4, value: 0n });
    assert.deepEqual(parseIp('255.255.255.255'), { family: 4, value: 0xffffffffn });
    assert.deepEqual(parseIp(' 192.0.2.1\n'), { family: 4, value: 0xc0000201n }, 'surrounding whitespace is trimmed');
  });

  test('IPv6 addresses parse to family 6 and a 128-bit value', () => {
    assert.deepEqual(parseIp('::1'), { family: 6, value: 1n });
    assert.deepEqual(parseIp('::'), { family: 6, value: 0n });
    assert.deepEqual(parseIp('2001:DB8::A'), { family: 6, value: (0x20010db8n << 96n) | 0xan });
    assert.deepEqual(parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), { family: 6, value: (1n << 128n) - 1n });
  });

  test('invalid addresses are InvalidAddressError, tryParseIp gives undefined', () => {
    for (const text of ['', '1.2.3', '256.1.1.1', '1.2.3.4.5', '010.1.1.1', '10.0.0.1/24', '1::2::3', ':::', 'fe80::/64', 'eth0', '12345::']) {
      assert.throws(() => parseIp(text), isInvalid, text);
      assert.equal(tryParseIp(text), undefined, text);
    }
    assert.ok(new InvalidAddressError('x') instanceof Error);
  });

  test('an address with a zone index is rejected: an Ip cannot carry the zone', () => {
    // ip-address's Address6.isValid accepts "fe80::1%eth0" and even "::1%"; passing them
    // through would silently drop the zone (a link-local gateway would lose its link).
    for (const text of ['fe80::1%eth0', '::1%', 'fe80::1%2']) {
      assert.throws(() => parseIp(text), isInvalid, text);
      assert.equal(tryParseIp(text), undefined, text);
    }
  });

  test('IPv4 formats in dotted quad', () => {
    for (const text of ['0.0.0.0', '10.0.0.1', '192.168.255.254', '255.255.255.255']) {
      assert.equal(formatIp(parseIp(text)), text);
    }
  });

  test('IPv6 formats in RFC 5952 canonical form', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'], // 4.1 no leading zeros
      ['2001:DB8::A', '2001:db8::a'], // 4.3 lower case
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // 4.2.2 "::" never for one 16-bit 0 field
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // 4.2.3 equal runs: the first one
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // 4.2.3 the longest run
      ['1:0:0:0:1:0:0:0', '1::1:0:0:0'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['fe80:0:0:0:0:0:0:0', 'fe80::'],
      ['0:1:1:1:1:1:1:1', '0:1:1:1:1:1:1:1'],
    ];
    for (const [input, canonical] of cases) assert.equal(formatIp(parseIp(input)), canonical, input);
  });

  test('CIDRs keep the host part and format back', () => {
    assert.deepEqual(parseIpNet('10.244.1.5/24'), { family: 4, value: 0x0af40105n, prefixLength: 24 });
    assert.deepEqual(parseIpNet('2001:db8::1/64'), { family: 6, value: (0x20010db8n << 96n) | 1n, prefixLength: 64 });
    assert.equal(formatIpNet(parseIpNet('10.244.1.5/24')), '10.244.1.5/24');
    assert.equal(formatIpNet(parseIpNet('2001:0DB8:0::0/48')), '2001:db8::/48');
    assert.equal(parseIpNet('0.0.0.0/0').prefixLength, 0);
    assert.equal(parseIpNet('::/128').prefixLength, 128);
  });

  test('parseIpNet rejects bad CIDRs with InvalidAddressError', () => {
    for (const text of ['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/2a', '10.0.0.0/ 8', '10.0.0.0/1234', '10.0.0.0/24/1', 'x/24', '/24', '10.0.0/24']) {
      assert.throws(() => parseIpNet(text), isInvalid, text);
    }
  });
});

describe('network arithmetic', () => {
  test('networkOf clears the host bits', () => {
    assert.equal(formatIpNet(networkOf(parseIpNet('10.244.1.5/24'))), '10.244.1.0/24');
    assert.equal(formatIpNet(networkOf(parseIpNet('10.244.1.5/0'))), '0.0.0.0/0');
    assert.equal(formatIpNet(networkOf(parseIpNet('10.244.1.5/32'))), '10.244.1.5/32');
    assert.equal(formatIpNet(networkOf(parseIpNet('2001:db8:1:2:3::4/64'))), '2001:db8:1:2::/64');
  });

  test('lastAddressOf is the broadcast address for IPv4 and all-ones host part for IPv6', () => {
    assert.equal(formatIp(lastAddressOf(parseIpNet('10.244.1.5/24'))), '10.244.1.255');
    assert.equal(formatIp(lastAddressOf(parseIpNet('10.0.0.0/31'))), '10.0.0.1');
    assert.equal(formatIp(lastAddressOf(parseIpNet('0.0.0.0/0'))), '255.255.255.255');
    assert.equal(formatIp(lastAddressOf(parseIpNet('2001:db8::/64'))), '2001:db8::ffff:ffff:ffff:ffff');
    assert.equal(lastAddressOf(parseIpNet('10.0.0.0/8')).family, 4);
  });

  test('netContains checks family and prefix', () => {
    const net = parseIpNet('10.244.1.0/24');
    assert.equal(netContains(net, parseIp('10.244.1.0')), true);
    assert.equal(netContains(net, parseIp('10.244.1.255')), true);
    assert.equal(netContains(net, parseIp('10.244.2.0')), false);
    assert.equal(netContains(net, parseIp('10.244.0.255')), false);
    assert.equal(netContains(parseIpNet('10.244.1.77/24'), parseIp('10.244.1.3')), true, 'host bits of the net are ignored');
    assert.equal(netContains(parseIpNet('::/0'), parseIp('10.0.0.1')), false, 'no IPv4 in an IPv6 net');
    assert.equal(netContains(parseIpNet('0.0.0.0/0'), parseIp('::1')), false);
    assert.equal(netContains(parseIpNet('2001:db8::/32'), parseIp('2001:db8:ffff::1')), true);
  });

  test('netsOverlap is symmetric and family aware', () => {
    const overlap = (a: string, b: string): boolean => {
      const result = netsOverlap(parseIpNet(a), parseIpNet(b));
      assert.equal(netsOverlap(parseIpNet(b), parseIpNet(a)), result, `${a} vs ${b} symmetric`);
      return result;
    };
    assert.equal(overlap('10.0.0.0/16', '10.0.5.0/24'), true);
    assert.equal(overlap('10.0.0.0/24', '10.0.0.0/24'), true);
    assert.equal(overlap('10.0.0.0/24', '10.0.1.0/24'), false);
    assert.equal(overlap('10.0.1.0/24', '10.0.0.9/16'), true, 'host bits set on the bigger net');
    assert.equal(overlap('10.0.0.0/25', '10.0.0.128/25'), false);
    assert.equal(overlap('0.0.0.0/0', '::/0'), false);
    assert.equal(overlap('2001:db8::/32', '2001:db8:1::/48'), true);
  });

  test('offsetIp and ipEqual', () => {
    assert.equal(formatIp(offsetIp(parseIp('10.0.0.255'), 1n)), '10.0.1.0');
    assert.equal(formatIp(offsetIp(parseIp('2001:db8::1'), -1n)), '2001:db8::');
    assert.equal(ipEqual(parseIp('10.0.0.1'), parseIp('10.0.0.1')), true);
    assert.equal(ipEqual(parseIp('0.0.0.1'), parseIp('::1')), false, 'same value, other family');
  });
});

describe('bytes', () => {
  test('ipToBytes is network byte order', () => {
    assert.deepEqual(ipToBytes(parseIp('10.244.1.5')), Buffer.from([10, 244, 1, 5]));
    assert.deepEqual(ipToBytes(parseIp('0.0.0.1')), Buffer.from([0, 0, 0, 1]));
    assert.deepEqual(ipToBytes(parseIp('2001:db8::1')), Buffer.from('20010db8000000000000000000000001', 'hex'));
    assert.deepEqual(ipToBytes(parseIp('::')), Buffer.alloc(16));
  });

  test('ipFromBytes is the inverse and rejects other lengths', () => {
    for (const text of ['10.244.1.5', '255.255.255.255', '::', '2001:db8::1', 'fe80::a8bb:ccff:fedd:eeff']) {
      const ip = parseIp(text);
      assert.deepEqual(ipFromBytes(ipToBytes(ip)), ip, text);
    }
    assert.deepEqual(ipFromBytes(new Uint8Array([192, 0, 2, 1])), { family: 4, value: 0xc0000201n });
    for (const length of [0, 3, 5, 6, 15, 17]) assert.throws(() => ipFromBytes(new Uint8Array(length)), isInvalid, `${length} bytes`);
  });

  test('MAC addresses parse from either case and format lower case', () => {
    assert.deepEqual(parseMac('00:11:22:AA:bb:Cc'), Buffer.from([0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc]));
    assert.equal(formatMac(Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x05])), '0a:58:0a:f4:01:05');
    assert.equal(formatMac(parseMac('FE:FF:FF:FF:FF:FF')), 'fe:ff:ff:ff:ff:ff');
  });

  test('parseMac rejects anything but six colon-separated hex pairs', () => {
    for (const text of ['', '00:11:22:33:44', '00:11:22:33:44:55:66', '00-11-22-33-44-55', '0:11:22:33:44:55', '00:11:22:33:44:5g', '001122334455', ' 00:11:22:33:44:55']) {
      assert.throws(() => parseMac(text), isInvalid, text);
    }
  });
});
