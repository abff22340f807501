/**
 * pontoon-bridge + pontoon-ipam on a real kernel: every test builds a node namespace (where
 * the plugin runs, as a runtime would run it on a node) and container namespaces.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cni, cniOk } from '../helpers/cni.js';
import { cniAsync } from '../helpers/cni-async.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('bridge');
after(() => lab.cleanup());

interface NetOptions {
  name?: string;
  subnet?: string;
  ranges?: unknown;
  extra?: Record<string, unknown>;
  ipam?: Record<string, unknown>;
  cniVersion?: string;
}

function bridgeConf(dataDir: string, options: NetOptions = {}): Record<string, unknown> {
  return {
    cniVersion: options.cniVersion ?? '1.1.0',
    name: options.name ?? 'ptnet',
    type: 'pontoon-bridge',
    bridge: 'cni0',
    isGateway: true,
    ipam: {
      type: 'pontoon-ipam',
      ranges: options.ranges ?? [[{ subnet: options.subnet ?? '10.88.0.0/24' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir,
      ...options.ipam,
    },
    ...options.extra,
  };
}

const linkNames = (netns: string): string[] => lab.linkNames(netns);

function allocatedIps(dataDir: string, network = 'ptnet'): string[] {
  const dir = join(dataDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
}

function ping(netns: string, target: string): void {
  lab.exec(netns, 'ping', ['-c', '1', '-W', '2', target]);
}

function ipsOf(result: Record<string, unknown>): string[] {
  return (result['ips'] as { address: string }[]).map((ip) => ip.address);
}

describe('ADD, CHECK, DEL', () => {
  test('two containers get addresses, reach the gateway and each other; DEL removes everything, twice', () => {
    const node = lab.netns('n1');
    const c1 = lab.netns('n1c1');
    const c2 = lab.netns('n1c2');
    const dataDir = lab.tempDir('ipam');
    const config = bridgeConf(dataDir, { extra: { ipMasq: true } });
    const call = (command: string, container: string, id: string, cfg: Record<string, unknown> = config) =>
      cniOk({ plugin: 'pontoon-bridge', command, config: cfg, containerId: id, netns: lab.path(container), ifname: 'eth0', nodeNetns: node });

    const r1 = call('ADD', c1, 'ctr1');
    const r2 = call('ADD', c2, 'ctr2');
    assert.deepEqual(ipsOf(r1), ['10.88.0.2/24']);
    assert.deepEqual(ipsOf(r2), ['10.88.0.3/24']);
    const interfaces = r1['interfaces'] as { name: string; mac: string; sandbox?: string }[];
    assert.equal(interfaces[0]?.name, 'cni0');
    assert.equal(interfaces[2]?.name, 'eth0');
    assert.equal(interfaces[2]?.sandbox, lab.path(c1));
    assert.match(interfaces[2]?.mac ?? '', /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.equal((r1['ips'] as { gateway: string }[])[0]?.gateway, '10.88.0.1');

    ping(c1, '10.88.0.1');
    ping(c1, '10.88.0.3');
    ping(c2, '10.88.0.2');
    assert.match(lab.exec(c1, 'ip', ['route']), /default via 10\.88\.0\.1 dev eth0/);
    assert.match(lab.exec(node, 'iptables-save', ['-t', 'nat']), /-A POSTROUTING -s 10\.88\.0\.2\/32 .* -j PONTOON-/);

    call('CHECK', c1, 'ctr1', { ...config, prevResult: r1 });

    call('DEL', c1, 'ctr1');
    call('DEL', c1, 'ctr1'); // the spec: DEL of something already gone succeeds
    assert.deepEqual(linkNames(c1), ['lo']);
    assert.deepEqual(allocatedIps(dataDir), ['10.88.0.3']);
    assert.doesNotMatch(lab.exec(node, 'iptables-save', ['-t', 'nat']), /10\.88\.0\.2/);
    call('DEL', c2, 'ctr2');
    assert.deepEqual(linkNames(node), ['cni0', 'lo'], 'only the shared bridge stays on the node');
    assert.deepEqual(allocatedIps(dataDir), []);
    assert.doesNotMatch(lab.exec(node, 'iptables-save', ['-t', 'nat']), /PONTOON-/);
  });

  test('CHECK fails when the container lost its address', () => {
    const node = lab.netns('n2');
    const c1 = lab.netns('n2c1');
    const config = bridgeConf(lab.tempDir('ipam'));
    const base = { plugin: 'pontoon-bridge', containerId: 'chk', netns: lab.path(c1), ifname: 'eth0', nodeNetns: node };
    const result = cniOk({ ...base, command: 'ADD', config });
    lab.exec(c1, 'ip', ['addr', 'flush', 'dev', 'eth0']);
    const outcome = cni({ ...base, command: 'CHECK', config: { ...config, prevResult: result } });
    assert.equal(outcome.status, 1);
    assert.match(String(outcome.json?.['msg']), /10\.88\.0\.2\/24 is missing/);
  });

  test('dual stack, mtu, hairpin, promisc and isDefaultGateway', () => {
    const node = lab.netns('n3');
    const c1 = lab.netns('n3c1');
    const config = bridgeConf(lab.tempDir('ipam'), {
      ranges: [[{ subnet: '10.89.0.0/24' }], [{ subnet: 'fd89::/64' }]],
      extra: { mtu: 1400, hairpinMode: true, promiscMode: true, isDefaultGateway: true },
      ipam: { routes: [] },
    });
    const result = cniOk({ plugin: 'pontoon-bridge', command: 'ADD', config, containerId: 'ds', netns: lab.path(c1), ifname: 'net1', nodeNetns: node });
    assert.deepEqual(ipsOf(result), ['10.89.0.2/24', 'fd89::2/64']);
    assert.deepEqual((result['routes'] as { dst: string }[]).map((r) => r.dst), ['0.0.0.0/0', '::/0']);
    const link = lab.exec(c1, 'ip', ['-d', 'link', 'show', 'net1']);
    assert.match(link, /mtu 1400/);
    assert.match(lab.exec(c1, 'ip', ['-6', 'route']), /default via fd89::1 dev net1/);
    ping(c1, '10.89.0.1');
    lab.exec(c1, 'ping', ['-6', '-c', '1', '-W', '2', 'fd89::1']);
    const hostVeth = (result['interfaces'] as { name: string }[])[1]?.name ?? '';
    assert.match(lab.exec(node, 'ip', ['-d', 'link', 'show', hostVeth]), /hairpin on/);
    assert.match(lab.exec(node, 'ip', ['link', 'show', 'cni0']), /PROMISC/);
  });

  test('forceAddress replaces a conflicting bridge address; without it ADD fails cleanly', () => {
    const node = lab.netns('n4');
    const c1 = lab.netns('n4c1');
    lab.exec(node, 'ip', ['link', 'add', 'cni0', 'type', 'bridge']);
    lab.exec(node, 'ip', ['addr', 'add', '10.90.0.200/24', 'dev', 'cni0']);
    const dataDir = lab.tempDir('ipam');
    const base = { plugin: 'pontoon-bridge', command: 'ADD', containerId: 'fa', netns: lab.path(c1), ifname: 'eth0', nodeNetns: node };
    const refused = cni({ ...base, config: bridgeConf(dataDir, { subnet: '10.90.0.0/24' }) });
    assert.equal(refused.status, 1);
    assert.equal(refused.json?.['code'], 7);
    assert.match(String(refused.json?.['msg']), /forceAddress/);
    assert.deepEqual(linkNames(c1), ['lo'], 'the failed ADD removed its veth');
    assert.deepEqual(allocatedIps(dataDir), [], 'and released its address');
    cniOk({ ...base, config: bridgeConf(dataDir, { subnet: '10.90.0.0/24', extra: { forceAddress: true } }) });
    const addresses = lab.exec(node, 'ip', ['-4', '-o', 'addr', 'show', 'cni0']);
    assert.match(addresses, /10\.90\.0\.1\/24/);
    assert.doesNotMatch(addresses, /10\.90\.0\.200/);
  });
});

describe('crash and garbage collection', () => {
  test('ADD killed after IPAM leaks nothing once GC runs', () => {
    const node = lab.netns('n5');
    const c1 = lab.netns('n5c1');
    const c2 = lab.netns('n5c2');
    const dataDir = lab.tempDir('ipam');
    const config = bridgeConf(dataDir);
    const keep = cniOk({ plugin: 'pontoon-bridge', command: 'ADD', config, containerId: 'alive', netns: lab.path(c2), ifname: 'eth0', nodeNetns: node });
    const crashed = cni({
      plugin: 'pontoon-bridge',
      command: 'ADD',
      config,
      containerId: 'doomed',
      netns: lab.path(c1),
      ifname: 'eth0',
      nodeNetns: node,
      env: { PONTOON_CNI_CRASH_AT: 'after-ipam' },
    });
    // ip netns exec reports the child's SIGKILL as exit status 137
    assert.ok(crashed.signal === 'SIGKILL' || crashed.status === 137, `expected a kill, got ${crashed.status}/${crashed.signal}`);
    assert.deepEqual(allocatedIps(dataDir).sort(), ['10.88.0.2', '10.88.0.3'], 'the crash left its address behind');
    assert.equal(linkNames(node).filter((n) => n.startsWith('veth')).length, 2, 'and its veth');

    cniOk({
      plugin: 'pontoon-bridge',
      command: 'GC',
      config: { ...config, 'cni.dev/valid-attachments': [{ containerID: 'alive', ifname: 'eth0' }] },
      nodeNetns: node,
    });
    assert.deepEqual(allocatedIps(dataDir), [(keep['ips'] as { address: string }[])[0]?.address.split('/')[0]]);
    assert.equal(linkNames(node).filter((n) => n.startsWith('veth')).length, 1);
    assert.deepEqual(linkNames(c1), ['lo']);
    ping(c2, '10.88.0.1');
  });
});

describe('DEL order', () => {
  test('a DEL killed between its steps never lets an ADD take an address the old veth still answers for', () => {
    const node = lab.netns('n9');
    const oldPod = lab.netns('n9old');
    const newPod = lab.netns('n9new');
    const dataDir = lab.tempDir('ipam');
    // One address in the range: whoever holds the reservation holds the only address.
    const config = bridgeConf(dataDir, { ranges: [[{ subnet: '10.86.0.0/24', rangeStart: '10.86.0.2', rangeEnd: '10.86.0.2' }]] });
    const call = (command: string, netns: string, id: string, env?: Record<string, string>) =>
      cni({ plugin: 'pontoon-bridge', command, config, containerId: id, netns: lab.path(netns), ifname: 'eth0', nodeNetns: node, ...(env ? { env } : {}) });
    const first = call('ADD', oldPod, 'old');
    assert.equal(first.status, 0, first.stdout + first.stderr);
    const address = ipsOf(first.json ?? {})[0]?.split('/')[0] ?? '';
    assert.equal(address, '10.86.0.2');

    const killed = call('DEL', oldPod, 'old', { PONTOON_CNI_CRASH_AT: 'del-between-link-and-ipam' });
    assert.ok(killed.signal === 'SIGKILL' || killed.status === 137, `expected a kill, got ${killed.status}/${killed.signal}`);

    const second = call('ADD', newPod, 'new');
    const oldAddresses = lab.exec(oldPod, 'ip', ['-o', '-4', 'addr', 'show']);
    if (second.status === 0) {
      const given = ipsOf(second.json ?? {})[0]?.split('/')[0] ?? '';
      assert.ok(!oldAddresses.includes(`inet ${given}/`), `ADD handed out ${given} while the old pod still has it:\n${oldAddresses}`);
    } else {
      // The range is exhausted until the runtime retries the DEL: a leak, not a duplicate.
      assert.equal(second.json?.['code'], 11, `ADD failed for another reason: ${second.stdout}${second.stderr}`);
    }

    // The runtime retries the DEL; the address comes back and the new pod gets it.
    const retried = call('DEL', oldPod, 'old');
    assert.equal(retried.status, 0, retried.stdout + retried.stderr);
    assert.deepEqual(linkNames(oldPod), ['lo']);
    if (second.status !== 0) {
      const third = call('ADD', newPod, 'new');
      assert.equal(third.status, 0, third.stdout + third.stderr);
      assert.deepEqual(ipsOf(third.json ?? {}), ['10.86.0.2/24']);
    }
    ping(newPod, '10.86.0.1');
  });
});

describe('concurrency', () => {
  test('50 parallel ADDs get 50 distinct addresses; 50 parallel DELs leave no files', async () => {
    const node = lab.netns('n6');
    const dataDir = lab.tempDir('ipam');
    const config = bridgeConf(dataDir, { subnet: '10.87.0.0/24' });
    const containers = Array.from({ length: 50 }, (_, i) => lab.netns(`n6c${i}`));
    const adds = await Promise.all(
      containers.map((c, i) => cniAsync({ plugin: 'pontoon-bridge', command: 'ADD', config, containerId: `par${i}`, netns: lab.path(c), ifname: 'eth0', nodeNetns: node })),
    );
    adds.forEach((outcome, i) => assert.equal(outcome.status, 0, `ADD ${i} (signal ${outcome.signal}): ${outcome.stdout}${outcome.stderr}`));
    const addresses = adds.map((outcome) => ipsOf(outcome.json ?? {})[0]);
    assert.equal(new Set(addresses).size, 50);
    assert.equal(allocatedIps(dataDir).length, 50);
    const dels = await Promise.all(
      containers.map((c, i) => cniAsync({ plugin: 'pontoon-bridge', command: 'DEL', config, containerId: `par${i}`, netns: lab.path(c), ifname: 'eth0', nodeNetns: node })),
    );
    dels.forEach((outcome, i) => assert.equal(outcome.status, 0, `DEL ${i}: ${outcome.stdout}${outcome.stderr}`));
    assert.deepEqual(allocatedIps(dataDir), []);
    assert.deepEqual(linkNames(node), ['cni0', 'lo']);
  });
});

describe('bad input', () => {
  const node = lab.netns('bad');
  const container = lab.netns('badc');
  const base = { plugin: 'pontoon-bridge', command: 'ADD', containerId: 'bad', netns: lab.path(container), ifname: 'eth0', nodeNetns: node };

  function assertUntouched(dataDir?: string): void {
    assert.deepEqual(linkNames(container), ['lo'], 'container namespace untouched');
    assert.deepEqual(linkNames(node).filter((n) => n.startsWith('veth')), [], 'no veth left on the node');
    if (dataDir) assert.deepEqual(allocatedIps(dataDir), [], 'no address held');
  }

  test('malformed JSON is a decoding error (6)', () => {
    const outcome = cni({ ...base, config: '{"cniVersion": "1.1.0", "name": ' });
    assert.equal(outcome.status, 1);
    assert.equal(outcome.json?.['code'], 6);
    assertUntouched();
  });

  test('an unknown cniVersion is incompatible (1) and lists what is supported', () => {
    const outcome = cni({ ...base, config: { ...bridgeConf(lab.tempDir()), cniVersion: '9.9.9' } });
    assert.equal(outcome.json?.['code'], 1);
    assert.match(String(outcome.json?.['msg']), /1\.1\.0/);
  });

  test('missing environment variables are code 4 and name the variable', () => {
    const outcome = cni({ plugin: 'pontoon-bridge', command: 'ADD', config: bridgeConf(lab.tempDir()), containerId: 'x', ifname: 'eth0', nodeNetns: node });
    assert.equal(outcome.json?.['code'], 4);
    assert.match(String(outcome.json?.['msg']), /CNI_NETNS/);
  });

  test('a netns path that does not exist is code 4', () => {
    const outcome = cni({ ...base, netns: '/run/netns/ptest-nowhere', config: bridgeConf(lab.tempDir()) });
    assert.equal(outcome.json?.['code'], 4);
    assert.match(String(outcome.json?.['msg']), /does not exist/);
  });

  test('an exhausted range is "try again later" (11) and leaves nothing configured', () => {
    const dataDir = lab.tempDir('ipam');
    const config = bridgeConf(dataDir, { subnet: '10.86.0.0/30' }); // one usable address beside the gateway
    const other = lab.netns('badfull');
    cniOk({ ...base, netns: lab.path(other), containerId: 'first', config });
    const outcome = cni({ ...base, config });
    assert.equal(outcome.json?.['code'], 11);
    assert.match(String(outcome.json?.['msg']), /no IP addresses available/);
    assert.deepEqual(linkNames(container), ['lo']);
    assert.deepEqual(allocatedIps(dataDir), ['10.86.0.2']);
    cniOk({ ...base, command: 'DEL', netns: lab.path(other), containerId: 'first', config });
  });

  test('overlapping ranges are an invalid config (7)', () => {
    const dataDir = lab.tempDir('ipam');
    const outcome = cni({ ...base, config: bridgeConf(dataDir, { ranges: [[{ subnet: '10.85.0.0/24' }], [{ subnet: '10.85.0.0/25' }]] }) });
    assert.equal(outcome.json?.['code'], 7);
    assert.match(String(outcome.json?.['msg']), /overlaps/);
    assertUntouched(dataDir);
  });

  test('corrupt files in dataDir do not stop allocation and are never handed out', () => {
    const dataDir = lab.tempDir('ipam');
    const dir = join(dataDir, 'ptnet');
    cniOk({ plugin: 'pontoon-ipam', command: 'ADD', config: bridgeConf(dataDir), containerId: 'seed', netns: lab.path(container), ifname: 'eth0' });
    cniOk({ plugin: 'pontoon-ipam', command: 'DEL', config: bridgeConf(dataDir), containerId: 'seed', ifname: 'eth0' });
    writeFileSync(join(dir, '10.88.0.3'), '\u0000\u0001garbage\n\n\nmore');
    writeFileSync(join(dir, 'last_reserved_ip.0'), 'not an address');
    writeFileSync(join(dir, 'lock'), 'stale lock content from a dead process');
    const result = cniOk({ ...base, config: bridgeConf(dataDir) });
    assert.deepEqual(ipsOf(result), ['10.88.0.2/24']);
    const second = lab.netns('badc2');
    const result2 = cniOk({ ...base, containerId: 'bad2', netns: lab.path(second), config: bridgeConf(dataDir) });
    assert.deepEqual(ipsOf(result2), ['10.88.0.4/24'], 'the corrupt reservation of .3 is respected');
    cniOk({ ...base, command: 'DEL', config: bridgeConf(dataDir) });
    cniOk({ ...base, command: 'DEL', containerId: 'bad2', netns: lab.path(second), config: bridgeConf(dataDir) });
    assert.equal(readFileSync(join(dir, '10.88.0.3'), 'utf8').includes('garbage'), true, 'DEL of others keeps it');
  });

  test('a dataDir that is a file is an I/O error (5)', () => {
    const file = join(lab.tempDir('ipam'), 'not-a-dir');
    writeFileSync(file, '');
    const outcome = cni({ ...base, config: bridgeConf(file) });
    assert.equal(outcome.json?.['code'], 5);
    assertUntouched();
  });
});
