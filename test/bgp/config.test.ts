/** `pontoon bgp --config`: every mistake is reported as the field that holds it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BgpConfigError, formatIdentifier, parseBgpConfig } from '../../src/bgp/config.js';
import { formatIp, formatIpNet } from '../../src/lib/ip.js';

const base = { localAsn: 64512, routerId: '198.18.0.11' };

function fieldOf(raw: unknown): string {
  try {
    parseBgpConfig(raw);
  } catch (err) {
    assert.ok(err instanceof BgpConfigError, `a BgpConfigError, got ${String(err)}`);
    return err.field;
  }
  assert.fail('the configuration was accepted');
}

describe('BGP configuration', () => {
  test('a full configuration parses, with defaults for what is left out', () => {
    const config = parseBgpConfig({
      ...base,
      listenAddress: '198.18.0.11',
      clusterId: '198.18.0.11',
      holdTime: 9,
      announce: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      peers: [{ address: '198.18.0.12', asn: 64512, routeReflectorClient: true }, { address: 'fd00::2', asn: 65001, passive: true, port: 1179 }],
    });
    assert.equal(formatIdentifier(config.routerId), '198.18.0.11');
    assert.equal(config.listenPort, 179);
    assert.equal(config.holdTimeSeconds, 9);
    assert.deepEqual(config.announce.map(formatIpNet), ['10.244.1.0/24', 'fd00:10:244:1::/64']);
    assert.deepEqual(config.peers.map((p) => [formatIp(p.address), p.asn, p.port, p.routeReflectorClient, p.passive]), [
      ['198.18.0.12', 64512, 179, true, false],
      ['fd00::2', 65001, 1179, false, true],
    ]);
    assert.equal(config.kernelSync, true);
    assert.deepEqual(config.gracefulRestart, { enabled: true, restartTimeSeconds: 120 });
  });

  test('each mistake names its field', () => {
    assert.equal(fieldOf({ routerId: '1.1.1.1' }), 'localAsn');
    assert.equal(fieldOf({ ...base, localAsn: 0 }), 'localAsn');
    assert.equal(fieldOf({ ...base, localAsn: 2 ** 32 }), 'localAsn');
    assert.equal(fieldOf({ ...base, routerId: '0.0.0.0' }), 'routerId');
    assert.equal(fieldOf({ ...base, routerId: 'fd00::1' }), 'routerId');
    assert.equal(fieldOf({ ...base, holdTime: 2 }), 'holdTime');
    assert.equal(fieldOf({ ...base, holdTime: 70000 }), 'holdTime');
    assert.equal(fieldOf({ ...base, announce: ['10.244.1.1/24'] }), 'announce[0]');
    assert.equal(fieldOf({ ...base, announce: ['10.244.1.0/33'] }), 'announce[0]');
    assert.equal(fieldOf({ ...base, peers: [{ address: '198.18.0.12', asn: 1 }, { address: 'nope', asn: 1 }] }), 'peers[1].address');
    assert.equal(fieldOf({ ...base, peers: [{ address: '198.18.0.12' }] }), 'peers[0].asn');
    assert.equal(fieldOf({ ...base, peers: [{ address: '198.18.0.12', asn: 1, passive: 'yes' }] }), 'peers[0].passive');
    assert.equal(fieldOf({ ...base, peers: [{ address: '198.18.0.12', asn: 1 }, { address: '198.18.0.12', asn: 2 }] }), 'peers[1].address');
    assert.equal(fieldOf({ ...base, peers: [{ address: '198.18.0.12', asn: 64512, routeReflectorClient: true }] }), 'peers[0].routeReflectorClient');
    assert.equal(fieldOf({ ...base, clusterId: '1.1.1.1', peers: [{ address: '198.18.0.12', asn: 65000, routeReflectorClient: true }] }), 'peers[0].routeReflectorClient');
    assert.equal(fieldOf({ ...base, peers: [{ address: '198.18.0.12', asn: 1, color: 'red' }] }), 'peers[0].color');
    assert.equal(fieldOf({ ...base, localASN: 1 }), 'localASN');
    assert.equal(fieldOf({ ...base, metricsAddress: 'localhost' }), 'metricsAddress');
    assert.equal(fieldOf({ ...base, gracefulRestart: { restartTime: 5000 } }), 'gracefulRestart.restartTime');
    assert.equal(fieldOf('just text'), '(top level)');
  });
});
