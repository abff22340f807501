import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DEFAULT_DATA_DIR,
  parseHostLocalConfig,
  parseResolvConf,
  requestedIps,
  validAttachments,
} from '../../src/cni-plugin/ipam/hostlocal.js';
import { CniError, CniErrorCode } from '../../src/cni/errors.js';
import { parseCniArgs } from '../../src/cni-plugin/skel/skel.js';
import type { CmdArgs, NetConf } from '../../src/cni/types.js';
import { IpamConfigError } from '../../src/ipam/errors.js';
import { formatIp, InvalidAddressError } from '../../src/lib/ip.js';

function netConf(ipam: unknown, extra: Record<string, unknown> = {}): NetConf {
  return { cniVersion: '1.1.0', name: 'podnet', type: 'pontoon-bridge', ipam: ipam as NetConf['ipam'], ...extra };
}

function cmdArgs(config: NetConf, cniArgs = ''): CmdArgs {
  return {
    command: 'ADD',
    containerId: 'ctr1',
    netns: '/var/run/netns/ctr1',
    ifname: 'eth0',
    args: parseCniArgs(cniArgs),
    path: [],
    stdin: Buffer.from(JSON.stringify(config)),
    config,
  };
}

function throwsConfigError(fn: () => unknown, field: string): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof IpamConfigError, `expected IpamConfigError, got ${String(err)}`);
    assert.equal(err.field, field);
    return;
  }
  assert.fail(`expected IpamConfigError on ${field}, nothing was thrown`);
}

const isDecodingFailure = (err: unknown): boolean => err instanceof CniError && err.code === CniErrorCode.DecodingFailure;

describe('parseHostLocalConfig', () => {
  test('the legacy single-subnet form becomes one range set; dataDir defaults', () => {
    const parsed = parseHostLocalConfig(
      netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.254' }),
    );
    assert.deepEqual(parsed, {
      dataDir: '/var/lib/cni/networks',
      ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.20', gateway: '10.0.0.254' }]],
      routes: [],
    });
    assert.equal(DEFAULT_DATA_DIR, '/var/lib/cni/networks');
  });

  test('ranges, routes, dataDir and resolvConf', () => {
    const parsed = parseHostLocalConfig(
      netConf({
        type: 'pontoon-ipam',
        ranges: [
          [{ subnet: '10.0.0.0/24', rangeStart: '' }, { subnet: '10.0.1.0/24', gateway: '10.0.1.254' }],
          [{ subnet: 'fd00::/64' }],
        ],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }, { dst: '192.168.0.0/16', mtu: 1400 }],
        dataDir: '/run/pontoon/ipam',
        resolvConf: '/etc/pontoon/resolv.conf',
      }),
    );
    assert.deepEqual(parsed, {
      dataDir: '/run/pontoon/ipam',
      ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.1.0/24', gateway: '10.0.1.254' }], [{ subnet: 'fd00::/64' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }, { dst: '192.168.0.0/16', mtu: 1400 }],
      resolvConf: '/etc/pontoon/resolv.conf',
    });
  });

  test('the legacy subnet comes first when ranges are given too', () => {
    const parsed = parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', ranges: [[{ subnet: 'fd00::/64' }]] }));
    assert.deepEqual(parsed.ranges, [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]]);
  });

  test('errors name the field', () => {
    throwsConfigError(() => parseHostLocalConfig(netConf(undefined)), 'ipam');
    throwsConfigError(() => parseHostLocalConfig(netConf(['x'])), 'ipam');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam' })), 'ipam.ranges');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', ranges: {} })), 'ipam.ranges');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', ranges: [] })), 'ipam.ranges');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', ranges: [{ subnet: '10.0.0.0/24' }] })), 'ipam.ranges[0]');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', ranges: [[{ subnet: '10.0.0.0/24' }, 'x']] })), 'ipam.ranges[0][1]');
    throwsConfigError(
      () => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', ranges: [[{ subnet: '10.0.0.0/24', rangeStart: 10 }]] })),
      'ipam.ranges[0][0].rangeStart',
    );
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', gateway: true })), 'ipam.gateway');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', routes: {} })), 'ipam.routes');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', routes: [{ gw: '10.0.0.1' }] })), 'ipam.routes');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', mtu: '1400' }] })), 'ipam.routes');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', dataDir: '' })), 'ipam.dataDir');
    throwsConfigError(() => parseHostLocalConfig(netConf({ type: 'pontoon-ipam', subnet: '10.0.0.0/24', dataDir: 7 })), 'ipam.dataDir');
  });
});

describe('requestedIps', () => {
  const ipam = { type: 'pontoon-ipam', subnet: '10.0.0.0/24' };
  const asText = (args: CmdArgs): string[] => requestedIps(args).map(formatIp);

  test('none requested', () => {
    assert.deepEqual(requestedIps(cmdArgs(netConf(ipam))), []);
  });

  test('runtimeConfig.ips, then args.cni.ips, then CNI_ARGS IP=, prefix lengths stripped, duplicates dropped', () => {
    const config = netConf(ipam, {
      runtimeConfig: { ips: ['10.0.0.5/24', 'fd00::5/64'] },
      args: { cni: { ips: ['10.0.0.5', '10.0.0.6'] } },
    });
    assert.deepEqual(asText(cmdArgs(config, 'IgnoreUnknown=1;IP=10.0.0.6,10.0.0.7/24,FD00:0::5;K8S_POD_NAME=x')), [
      '10.0.0.5',
      'fd00::5',
      '10.0.0.6',
      '10.0.0.7',
    ]);
  });

  test('each source works alone', () => {
    assert.deepEqual(asText(cmdArgs(netConf(ipam, { runtimeConfig: { ips: ['10.0.0.9/24'] } }))), ['10.0.0.9']);
    assert.deepEqual(asText(cmdArgs(netConf(ipam, { args: { cni: { ips: ['10.0.0.8'] } } }))), ['10.0.0.8']);
    assert.deepEqual(asText(cmdArgs(netConf(ipam), 'IP=10.0.0.4')), ['10.0.0.4']);
    assert.deepEqual(asText(cmdArgs(netConf(ipam), 'IP=')), []);
  });

  test('lists that are not lists of strings name their field; bad addresses are InvalidAddressError', () => {
    throwsConfigError(() => requestedIps(cmdArgs(netConf(ipam, { runtimeConfig: { ips: '10.0.0.5' } }))), 'runtimeConfig.ips');
    throwsConfigError(() => requestedIps(cmdArgs(netConf(ipam, { args: { cni: { ips: [5] } } }))), 'args.cni.ips');
    assert.throws(() => requestedIps(cmdArgs(netConf(ipam, { runtimeConfig: { ips: ['not-an-ip'] } }))), InvalidAddressError);
    assert.throws(() => requestedIps(cmdArgs(netConf(ipam), 'IP=10.0.0.300')), InvalidAddressError);
  });
});

describe('parseResolvConf', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-resolv-test-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('reads nameserver, domain, search and options lines', () => {
    const path = join(dir, 'resolv.conf');
    writeFileSync(
      path,
      [
        '# generated',
        '; also a comment',
        'nameserver 10.96.0.10',
        '  nameserver\tfd00::10  ',
        'domain cluster.local',
        'search old.example',
        'search svc.cluster.local cluster.local',
        'options ndots:5',
        'options timeout:1 attempts:2\r',
        'sortlist 10.0.0.0/255.0.0.0',
        'nameserver',
        '',
      ].join('\n'),
    );
    assert.deepEqual(parseResolvConf(path), {
      nameservers: ['10.96.0.10', 'fd00::10'],
      domain: 'cluster.local',
      search: ['svc.cluster.local', 'cluster.local'],
      options: ['ndots:5', 'timeout:1', 'attempts:2'],
    });
  });

  test('an empty file is empty DNS; a missing file names ipam.resolvConf', () => {
    const path = join(dir, 'empty.conf');
    writeFileSync(path, '');
    assert.deepEqual(parseResolvConf(path), {});
    throwsConfigError(() => parseResolvConf(join(dir, 'missing.conf')), 'ipam.resolvConf');
  });
});

describe('validAttachments', () => {
  test('reads containerID/ifname pairs; absent means none', () => {
    const config = netConf(undefined, {
      'cni.dev/valid-attachments': [
        { containerID: 'a', ifname: 'eth0' },
        { containerID: 'b', ifname: 'net1', extra: true },
      ],
    });
    assert.deepEqual(validAttachments(config), [
      { containerId: 'a', ifname: 'eth0' },
      { containerId: 'b', ifname: 'net1' },
    ]);
    assert.deepEqual(validAttachments(netConf(undefined)), []);
  });

  test('malformed lists are CniError code 6', () => {
    for (const value of [{}, 'a', [{ containerID: 'a' }], [{ ifname: 'eth0' }], ['a'], [null], [{ containerId: 'a', ifname: 'eth0' }]]) {
      assert.throws(() => validAttachments(netConf(undefined, { 'cni.dev/valid-attachments': value })), isDecodingFailure, JSON.stringify(value));
    }
  });
});
