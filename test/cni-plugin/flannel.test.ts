/** pontoon-flannel: subnet.env in, a delegated bridge network out. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cni, cniOk } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('flannel');
after(() => lab.cleanup());

function setup(tag: string, delegate: Record<string, unknown> = {}, cniVersion = '1.1.0') {
  const node = lab.netns(`${tag}n`);
  const pod = lab.netns(`${tag}p`);
  const dir = lab.tempDir(tag);
  const subnetFile = join(dir, 'subnet.env');
  const config = {
    cniVersion,
    name: 'ptflannel',
    type: 'pontoon-flannel',
    subnetFile,
    dataDir: join(dir, 'flannel'),
    delegate: { ...delegate, ipam: { dataDir: join(dir, 'ipam') } },
  };
  const call = { plugin: 'pontoon-flannel', config, containerId: `${tag}-ctr`, netns: lab.path(pod), ifname: 'eth0', nodeNetns: node };
  return { node, pod, dir, subnetFile, config, call };
}

const SUBNET_ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

test('without subnet.env, ADD says "try again later" (11) naming the file, and STATUS says not available (50)', () => {
  const { call, subnetFile } = setup('missing');
  const add = cni({ ...call, command: 'ADD' });
  assert.equal(add.json?.['code'], 11);
  assert.ok(String(add.json?.['msg']).includes(subnetFile));
  const status = cni({ ...call, command: 'STATUS' });
  assert.equal(status.json?.['code'], 50);
});

test('ADD derives the bridge network from subnet.env; DEL uses the saved config even after subnet.env changed', () => {
  const { call, subnetFile, pod, dir } = setup('derive');
  writeFileSync(subnetFile, SUBNET_ENV);
  cniOk({ ...call, command: 'STATUS' });
  const result = cniOk({ ...call, command: 'ADD' });
  assert.deepEqual((result['ips'] as { address: string }[]).map((ip) => ip.address), ['10.244.7.2/24']);
  assert.match(lab.exec(pod, 'ip', ['link', 'show', 'eth0']), /mtu 1450/);
  assert.match(lab.exec(pod, 'ip', ['route']), /10\.244\.0\.0\/16 via 10\.244\.7\.1 dev eth0/);
  assert.deepEqual(readdirSync(join(dir, 'flannel')), ['derive-ctr']);
  cniOk({ ...call, command: 'CHECK', config: { ...call.config, prevResult: result } });
  writeFileSync(subnetFile, SUBNET_ENV.replace('10.244.7.1/24', '10.244.9.1/24'));
  cniOk({ ...call, command: 'DEL' });
  cniOk({ ...call, command: 'DEL' });
  assert.deepEqual(readdirSync(join(dir, 'flannel')), []);
  assert.deepEqual(readdirSync(join(dir, 'ipam', 'ptflannel')).filter((f) => /^\d/.test(f)), [], 'address released from the original subnet');
});

test('a malformed subnet.env is an invalid config (7) that says what is missing', () => {
  const { call, subnetFile } = setup('malformed');
  writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\n');
  const add = cni({ ...call, command: 'ADD' });
  assert.equal(add.json?.['code'], 7);
  assert.match(String(add.json?.['msg']), /FLANNEL_SUBNET|FLANNEL_MTU/);
});

test('delegates to the reference bridge plugin when asked', () => {
  const { call, subnetFile, dir } = setup('refbr', { type: 'bridge', bridge: 'cni0' }, '1.0.0');
  writeFileSync(subnetFile, SUBNET_ENV);
  const result = cniOk({ ...call, command: 'ADD' });
  assert.equal((result['ips'] as { address: string }[])[0]?.address, '10.244.7.2/24');
  cniOk({ ...call, command: 'DEL' });
  assert.equal(existsSync(join(dir, 'flannel', 'refbr-ctr')), false);
});

test('dual-stack subnet.env: the pod gets an address and a route of each family, DAD off, the node forwards both', () => {
  const { call, subnetFile, pod, node, dir } = setup('dual');
  writeFileSync(subnetFile, `${SUBNET_ENV}FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:7::1/64\n`);
  const result = cniOk({ ...call, command: 'ADD' });
  assert.deepEqual((result['ips'] as { address: string }[]).map((ip) => ip.address), ['10.244.7.2/24', 'fd00:10:244:7::2/64'], 'the CNI result lists both');
  assert.match(lab.exec(pod, 'ip', ['-6', 'route']), /fd00:10:244::\/56 via fd00:10:244:7::1 dev eth0/);
  assert.match(lab.exec(pod, 'ip', ['route']), /10\.244\.0\.0\/16 via 10\.244\.7\.1 dev eth0/);
  assert.equal(lab.exec(pod, 'sysctl', ['-n', 'net.ipv6.conf.eth0.accept_dad']).trim(), '0');
  assert.doesNotMatch(lab.exec(pod, 'ip', ['-6', 'addr', 'show', 'eth0']), /tentative/, 'no address waits for DAD');
  assert.match(lab.exec(node, 'ip', ['-6', 'addr', 'show', 'cni0']), /fd00:10:244:7::1\/64/, 'the bridge is the IPv6 gateway');
  assert.equal(lab.exec(node, 'sysctl', ['-n', 'net.ipv6.conf.all.forwarding']).trim(), '1');
  assert.equal(lab.exec(node, 'sysctl', ['-n', 'net.ipv4.ip_forward']).trim(), '1');
  lab.exec(pod, 'ping', ['-6', '-c', '1', '-W', '2', 'fd00:10:244:7::1']);
  cniOk({ ...call, command: 'DEL' });
  assert.deepEqual(readdirSync(join(dir, 'ipam', 'ptflannel')).filter((f) => /^[\dfd]/.test(f) && f !== 'lock' && !f.startsWith('last_reserved')), [], 'both addresses released');
});

test('IPv6-only subnet.env (no FLANNEL_NETWORK) gives the pod only IPv6', () => {
  const { call, subnetFile } = setup('v6only');
  writeFileSync(subnetFile, 'FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:8::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n');
  const result = cniOk({ ...call, command: 'ADD' });
  assert.deepEqual((result['ips'] as { address: string }[]).map((ip) => ip.address), ['fd00:10:244:8::2/64']);
  cniOk({ ...call, command: 'DEL' });
});
