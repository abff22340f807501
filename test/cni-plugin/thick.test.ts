/**
 * The thick plugin: `pontoon-bridge-shim` exec'd as a runtime execs any plugin, with `pontoon
 * cni-server` running in the node's namespace. The oracle is the exec'd `pontoon-bridge`: what
 * the shim sets up, the plain plugin's CHECK accepts; for bad input both print the same CNI
 * error and exit code. Without a server (no socket, a stale socket) the shim is the plain
 * plugin; a server that greets and goes away gets CNI's "try again later" (11), never a
 * second run. Concurrent ADDs through one server get distinct addresses.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CNI_SERVER_GREETING } from '../../src/cni/thick.js';
import { cni, cniOk, ROOT } from '../helpers/cni.js';
import { cniAsync } from '../helpers/cni-async.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const lab = new Lab('thick');

function conf(type: string, dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', name: 'thnet', type, bridge: 'cni0', isGateway: true, ipam: { type: 'pontoon-ipam', ranges: [[{ subnet: '10.89.0.0/24' }]], dataDir }, ...extra };
}

const ipsOf = (result: Record<string, unknown>): string[] => (result['ips'] as { address: string }[]).map((ip) => ip.address);

const linkNames = (netns: string): string[] => lab.linkNames(netns);

describe('pontoon-bridge-shim with pontoon cni-server', () => {
  const node = lab.netns('n');
  const socket = join(lab.tempDir('sock'), 'cni.sock');
  const dataDir = lab.tempDir('ipam');
  let server: ChildProcess | undefined;
  /** The server's log (stderr): which invocations it ran (a shim that fell back leaves none). */
  let served = '';
  const servedBy = (containerId: string, command: string): boolean => served.split('\n').some((l) => l.includes(`"containerId":"${containerId}"`) && l.includes(`"command":"${command}"`));
  const env = { PONTOON_CNI_SOCKET: socket };
  const shim = conf('pontoon-bridge-shim', dataDir);
  const plain = conf('pontoon-bridge', dataDir);

  before(async () => {
    server = spawn('ip', ['netns', 'exec', node, process.execPath, join(ROOT, 'dist/cli/pontoon.cjs'), 'cni-server', '--socket', socket], { stdio: ['ignore', 'inherit', 'pipe'] });
    server.stderr?.on('data', (chunk: Buffer) => (served += chunk.toString()));
    await poll('the cni-server socket', () => existsSync(socket), { timeoutMs: 20_000 });
  });
  after(() => {
    server?.kill('SIGKILL');
    lab.cleanup();
  });

  test('ADD through the server sets up what the plain plugin checks; DEL through it removes everything', async () => {
    const c1 = lab.netns('c1');
    const call = (plugin: string, command: string, config: Record<string, unknown>) => cniOk({ plugin, command, config, containerId: 'thick1', netns: lab.path(c1), ifname: 'eth0', nodeNetns: node, env });
    const result = call('pontoon-bridge-shim', 'ADD', shim);
    assert.deepEqual(ipsOf(result), ['10.89.0.2/24']);
    await poll('the server to log the ADD it ran', () => servedBy('thick1', 'ADD'), { timeoutMs: 10_000 });
    assert.ok(linkNames(c1).includes('eth0'));
    // The plain plugin (another process, no server) agrees the container is as it must be.
    call('pontoon-bridge', 'CHECK', { ...plain, prevResult: result });
    call('pontoon-bridge-shim', 'DEL', shim);
    await poll('the server to log the DEL it ran', () => servedBy('thick1', 'DEL'), { timeoutMs: 10_000 });
    assert.deepEqual(linkNames(c1), ['lo']);
    assert.deepEqual(readdirSync(join(dataDir, 'thnet')).filter((f) => /^\d/.test(f)), []);
  });

  test('bad input: the same CNI error and exit code as the plain plugin', () => {
    const c2 = lab.netns('c2');
    for (const [what, config] of [
      ['a bad subnet', { ...shim, ipam: { type: 'pontoon-ipam', ranges: [[{ subnet: '10.89.0.0/33' }]], dataDir } }],
      ['no bridge name type', { ...shim, bridge: 42 }],
      ['not JSON', '{"cniVersion": "1.1.0", "name": '],
    ] as const) {
      const via = (plugin: string) => cni({ plugin, command: 'ADD', config: typeof config === 'string' ? config : { ...config, type: plugin }, containerId: 'bad', netns: lab.path(c2), ifname: 'eth0', nodeNetns: node, env });
      const thick = via('pontoon-bridge-shim');
      const reference = via('pontoon-bridge');
      assert.notEqual(reference.status, 0, `${what}: the plain plugin refuses it`);
      assert.deepEqual([thick.status, thick.json], [reference.status, reference.json], what);
    }
  });

  test('concurrent ADDs through one server get distinct addresses', async () => {
    const containers = ['p1', 'p2', 'p3', 'p4'].map((name) => lab.netns(name));
    const results = await Promise.all(containers.map((c, i) => cniAsync({ plugin: 'pontoon-bridge-shim', command: 'ADD', config: shim, containerId: `par${i}`, netns: lab.path(c), ifname: 'eth0', nodeNetns: node, env })));
    for (const r of results) assert.equal(r.status, 0, r.stdout + r.stderr);
    await poll('the server to log all four', () => [0, 1, 2, 3].every((i) => servedBy(`par${i}`, 'ADD')), { timeoutMs: 10_000 });
    const ips = results.flatMap((r) => ipsOf(r.json ?? {}));
    assert.equal(new Set(ips).size, 4, ips.join(' '));
    for (const [i, c] of containers.entries()) cniOk({ plugin: 'pontoon-bridge-shim', command: 'DEL', config: shim, containerId: `par${i}`, netns: lab.path(c), ifname: 'eth0', nodeNetns: node, env });
  });

  test('no server: no socket or a stale one, the shim runs the plain plugin', () => {
    const c3 = lab.netns('c3');
    const stale = join(lab.tempDir('stale'), 'cni.sock');
    // A socket file nobody listens on: a server killed with -9 leaves one behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.ok(existsSync(stale), 'the stale socket file is there');
    for (const [what, path] of [['no socket', join(lab.tempDir('none'), 'cni.sock')], ['a stale socket', stale]] as const) {
      const call = (command: string) => cniOk({ plugin: 'pontoon-bridge-shim', command, config: shim, containerId: 'nosrv', netns: lab.path(c3), ifname: 'eth0', nodeNetns: node, env: { PONTOON_CNI_SOCKET: path } });
      const result = call('ADD');
      assert.equal(ipsOf(result).length, 1, what);
      call('DEL');
    }
  });

  test('a server that takes the request and goes away: error 11, try again later', async () => {
    const c4 = lab.netns('c4');
    const vanishing = join(lab.tempDir('vanish'), 'cni.sock');
    const fake = createServer((s) => {
      s.write(CNI_SERVER_GREETING);
      s.on('data', () => s.destroy());
    });
    await new Promise<void>((resolve) => fake.listen(vanishing, resolve));
    try {
      const outcome = await cniAsync({ plugin: 'pontoon-bridge-shim', command: 'ADD', config: shim, containerId: 'gone', netns: lab.path(c4), ifname: 'eth0', nodeNetns: node, env: { PONTOON_CNI_SOCKET: vanishing } });
      assert.equal(outcome.status, 1);
      assert.equal(outcome.json?.['code'], 11, outcome.stdout);
      assert.deepEqual(linkNames(c4), ['lo'], 'nothing ran');
    } finally {
      fake.close();
    }
  });
});
