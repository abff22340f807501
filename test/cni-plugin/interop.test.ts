/**
 * Interop with the reference CNI plugins (Debian's containernetworking-plugins in
 * /usr/lib/cni), both ways: our bridge over their IPAM, their bridge over our IPAM, their
 * portmap chained after our bridge, and one IPAM data directory shared by both IPAMs.
 * The reference plugins here speak CNI up to 1.0.0, so the configs use 1.0.0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cniOk } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('interop');
after(() => lab.cleanup());

const VERSION = '1.0.0';

function netconf(type: string, ipamType: string, dataDir: string, subnet: string): Record<string, unknown> {
  return {
    cniVersion: VERSION,
    name: 'ptinterop',
    type,
    bridge: 'cni0',
    isGateway: true,
    ipam: { type: ipamType, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir },
  };
}

function reservations(dataDir: string): Record<string, string> {
  const dir = join(dataDir, 'ptinterop');
  const found: Record<string, string> = {};
  for (const name of readdirSync(dir)) {
    if (name === 'lock' || name.startsWith('last_reserved_ip')) continue;
    found[name] = readFileSync(join(dir, name), 'utf8');
  }
  return found;
}

function addDelRoundTrip(type: string, ipamType: string, subnet: string, tag: string): void {
  const node = lab.netns(`${tag}n`);
  const container = lab.netns(`${tag}c`);
  const dataDir = lab.tempDir('ipam');
  const config = netconf(type, ipamType, dataDir, subnet);
  const base = { plugin: type, config, containerId: `${tag}-ctr`, netns: lab.path(container), ifname: 'eth0', nodeNetns: node };
  const result = cniOk({ ...base, command: 'ADD' });
  const address = (result['ips'] as { address: string }[])[0]?.address ?? '';
  const ip = address.split('/')[0] ?? '';
  assert.equal(result['cniVersion'], VERSION);
  assert.deepEqual(reservations(dataDir), { [ip]: `${tag}-ctr\r\neth0` }, 'host-local on-disk format');
  lab.exec(container, 'ping', ['-c', '1', '-W', '2', subnet.replace(/0\/\d+$/, '1')]);
  cniOk({ ...base, command: 'CHECK', config: { ...config, prevResult: result } });
  cniOk({ ...base, command: 'DEL' });
  assert.deepEqual(reservations(dataDir), {});
}

test('pontoon-bridge delegates to reference host-local', () => {
  addDelRoundTrip('pontoon-bridge', 'host-local', '10.80.0.0/24', 'pb-hl');
});

test('reference bridge delegates to pontoon-ipam', () => {
  addDelRoundTrip('bridge', 'pontoon-ipam', '10.81.0.0/24', 'rb-pi');
});

test('one data directory used alternately by host-local and pontoon-ipam', () => {
  const dataDir = lab.tempDir('shared');
  const container = lab.netns('sharedc');
  const config = (ipam: string) => netconf('pontoon-bridge', ipam, dataDir, '10.82.0.0/24')['ipam'] as Record<string, unknown>;
  const ipamCall = (plugin: string, command: string, id: string) =>
    cniOk({ plugin, command, config: { cniVersion: VERSION, name: 'ptinterop', type: plugin, ipam: config(plugin) }, containerId: id, netns: lab.path(container), ifname: 'eth0' });
  const first = ipamCall('host-local', 'ADD', 'a');
  const second = ipamCall('pontoon-ipam', 'ADD', 'b');
  const third = ipamCall('host-local', 'ADD', 'c');
  const addresses = [first, second, third].map((r) => (r['ips'] as { address: string }[])[0]?.address);
  assert.deepEqual(addresses, ['10.82.0.2/24', '10.82.0.3/24', '10.82.0.4/24'], 'each continues after the other’s last_reserved_ip');
  ipamCall('pontoon-ipam', 'DEL', 'a'); // ours releases theirs
  ipamCall('host-local', 'DEL', 'b'); // theirs releases ours
  assert.deepEqual(Object.keys(reservations(dataDir)), ['10.82.0.4']);
  const fourth = ipamCall('pontoon-ipam', 'ADD', 'd');
  assert.equal((fourth['ips'] as { address: string }[])[0]?.address, '10.82.0.5/24', 'round robin, not the freed .2');
  ipamCall('host-local', 'DEL', 'c');
  ipamCall('pontoon-ipam', 'DEL', 'd');
  assert.deepEqual(reservations(dataDir), {});
});

test('reference portmap chained after pontoon-bridge forwards real traffic', async () => {
  const node = lab.netns('pmn');
  const container = lab.netns('pmc');
  const dataDir = lab.tempDir('ipam');
  const bridge = netconf('pontoon-bridge', 'pontoon-ipam', dataDir, '10.83.0.0/24');
  const base = { containerId: 'pm-ctr', netns: lab.path(container), ifname: 'eth0', nodeNetns: node };
  const result = cniOk({ ...base, plugin: 'pontoon-bridge', command: 'ADD', config: bridge });
  const portmap = {
    cniVersion: VERSION,
    name: 'ptinterop',
    type: 'portmap',
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
    prevResult: result,
  };
  const chained = cniOk({ ...base, plugin: 'portmap', command: 'ADD', config: portmap });
  assert.deepEqual(chained['ips'], result['ips'], 'portmap passes our result through');
  assert.match(lab.exec(node, 'iptables-save', ['-t', 'nat']), /--to-destination 10\.83\.0\.2:80/);

  const server = spawn('ip', ['netns', 'exec', container, 'socat', 'TCP-LISTEN:80,reuseaddr,fork', 'SYSTEM:echo pontoon-portmap'], { stdio: 'ignore' });
  try {
    let reply = '';
    for (let attempt = 0; attempt < 20 && !reply.includes('pontoon-portmap'); attempt++) {
      await sleep(100);
      try {
        reply = lab.exec(node, 'socat', ['-t', '2', '-T', '3', '-', 'TCP:10.83.0.1:8080'], { input: '' });
      } catch {
        reply = '';
      }
    }
    assert.match(reply, /pontoon-portmap/, 'node:8080 reaches the container’s port 80');
  } finally {
    server.kill('SIGKILL');
  }

  cniOk({ ...base, plugin: 'portmap', command: 'DEL', config: portmap });
  cniOk({ ...base, plugin: 'pontoon-bridge', command: 'DEL', config: bridge });
  assert.doesNotMatch(lab.exec(node, 'iptables-save', ['-t', 'nat']), /10\.83\.0\.2/);
});
