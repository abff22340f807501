import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('install');
after(() => lab.cleanup());

test('pontoon cni install puts self-contained plugins into a bin dir a runtime can exec', () => {
  const dir = join(lab.tempDir('bin'), 'opt-cni-bin');
  const install = spawnSync('node', [join(ROOT, 'dist/cli/pontoon.cjs'), 'cni', 'install', '--dir', dir], { encoding: 'utf8' });
  assert.equal(install.status, 0, install.stderr);
  for (const file of ['pontoon-bridge', 'pontoon-ipam', 'pontoon-koffi.node']) assert.ok(existsSync(join(dir, file)), file);

  // Run the installed copy from a directory with no node_modules anywhere above it.
  const node = lab.netns('n');
  const container = lab.netns('c');
  const config = { cniVersion: '1.1.0', name: 'ptinstall', type: 'pontoon-bridge', ipam: { type: 'pontoon-ipam', subnet: '10.79.0.0/24', dataDir: lab.tempDir('ipam') } };
  const add = spawnSync('ip', ['netns', 'exec', node, join(dir, 'pontoon-bridge')], {
    input: JSON.stringify(config),
    encoding: 'utf8',
    cwd: '/',
    env: { PATH: process.env['PATH'], CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'inst', CNI_NETNS: lab.path(container), CNI_IFNAME: 'eth0', CNI_PATH: dir },
  });
  assert.equal(add.status, 0, add.stdout + add.stderr);
  assert.equal((JSON.parse(add.stdout) as { ips: { address: string }[] }).ips[0]?.address, '10.79.0.2/24');
});
