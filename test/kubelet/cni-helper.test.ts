/**
 * The kubelet's CNI helper: our plugins run in a long-lived `pontoon cni-server` child,
 * everything else is exec'd. The oracle is the exec'd path: a CniNetwork without the helper
 * (the plugins as separate processes) accepts with CHECK what the helper's ADD set up, and a
 * chained third-party plugin (the reference `tuning`) still runs, exec'd, on the helper's
 * result. The helper's log proves which calls it ran, so a silent fallback cannot pass; a
 * killed helper means exec'd plugins until it is back; one that greets and vanishes gives
 * CNI error 11 and no second run; its child exits when the kubelet holding its stdin dies.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CNI_SERVER_GREETING, callCniServer } from '../../src/cni/thick.js';
import { CniNetwork, CniPluginError, type PodNetworkRef } from '../../src/kubelet/cni.js';
import { CniHelper } from '../../src/kubelet/cni-helper.js';
import { createLogger } from '../../src/lib/log.js';
import { PONTOON_CNI_DIR, REFERENCE_CNI_DIR, ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const lab = new Lab('cnihelp');
const CLI = [process.execPath, join(ROOT, 'dist/cli/pontoon.cjs')];
const log = createLogger('test', { level: 'silent' });
const helpers: CniHelper[] = [];
after(async () => {
  for (const helper of helpers) await helper.stop();
  lab.cleanup();
});

describe('kubelet CNI helper', () => {
  const node = lab.netns('n');
  const root = lab.tempDir('root');
  const confDir = lab.tempDir('conf');
  const ipamDir = lab.tempDir('ipam');
  const cacheDir = join(root, 'cni', 'results');
  writeFileSync(
    join(confDir, '10-pontoon.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'helpnet',
      plugins: [
        { type: 'pontoon-bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'pontoon-ipam', ranges: [[{ subnet: '10.91.0.0/24' }]], dataDir: ipamDir } },
        { type: 'tuning', sysctl: { 'net.core.somaxconn': '321' } },
      ],
    }),
  );
  const helperLog = join(root, 'cni-helper.log');
  const helper = new CniHelper({ command: CLI, socketPath: join(root, 'cni-helper.sock'), logFile: helperLog, hostNetns: node, log });
  helpers.push(helper);
  const binDirs = [PONTOON_CNI_DIR, REFERENCE_CNI_DIR];
  const viaHelper = new CniNetwork({ confDir, binDirs, cacheDir, hostNetns: node, helper });
  const execOnly = new CniNetwork({ confDir, binDirs, cacheDir, hostNetns: node });
  const ranByHelper = (sandboxId: string, command: string): boolean =>
    existsSync(helperLog) && readFileSync(helperLog, 'utf8').split('\n').some((l) => l.includes(`"containerId":"${sandboxId}"`) && l.includes(`"command":"${command}"`) && l.includes('"plugin":"pontoon-bridge"'));
  const sandboxes = new Map<string, string>();
  const ref = (id: string): PodNetworkRef => {
    const sandbox = lab.netns(id);
    sandboxes.set(id, sandbox);
    return { namespace: 'default', name: id, uid: `uid-${id}`, sandboxId: id, netnsPath: lab.path(sandbox) };
  };
  const allocated = (): string[] => readdirSync(join(ipamDir, 'helpnet')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  const helperUp = async (): Promise<void> => {
    await poll('the helper to answer', async () => (await callCniServer(join(root, 'cni-helper.sock'), { plugin: 'pontoon-bridge', env: { CNI_COMMAND: 'VERSION' }, stdin: Buffer.from('{"cniVersion":"1.0.0"}') }, 5000).catch(() => undefined)) !== undefined, { timeoutMs: 20_000 });
  };

  test('ADD runs our plugin in the helper and the chained reference plugin exec\'d; the exec\'d plugins CHECK it; DEL releases all', async () => {
    helper.start();
    await helperUp();
    const pod = ref('p1');
    const result = await viaHelper.add(pod);
    assert.deepEqual(result.ips?.map((ip) => ip.address), ['10.91.0.2/24']);
    assert.ok(ranByHelper('p1', 'ADD'), 'the helper ran the ADD');
    assert.equal(lab.exec(sandboxes.get('p1') ?? '', 'sysctl', ['-n', 'net.core.somaxconn']).trim(), '321', 'tuning ran on the helper\'s result');
    await execOnly.check(pod);
    await viaHelper.del(pod);
    assert.ok(ranByHelper('p1', 'DEL'), 'the helper ran the DEL');
    assert.deepEqual(allocated(), []);
  });

  test('no helper answering: our plugins are exec\'d; a killed helper is back after its backoff', async () => {
    // A helper that is not running (starting, or between a crash and its restart) takes no call.
    const idle = new CniHelper({ command: CLI, socketPath: join(lab.tempDir('idle'), 'cni.sock'), logFile: join(root, 'idle.log'), hostNetns: node, log });
    const fallback = new CniNetwork({ confDir, binDirs, cacheDir, hostNetns: node, helper: idle });
    const pod = ref('p2');
    const result = await fallback.add(pod);
    assert.match(result.ips?.[0]?.address ?? '', /^10\.91\.0\.\d+\/24$/);
    assert.ok(!ranByHelper('p2', 'ADD') && !existsSync(join(root, 'idle.log')), 'the ADD was exec\'d');
    await execOnly.check(pod);
    await fallback.del(pod);

    await helperUp();
    const pid = helper.pid;
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await poll('a new helper', () => helper.pid !== undefined && helper.pid !== pid, { timeoutMs: 20_000 });
    await helperUp();
    const pod3 = ref('p3');
    await viaHelper.add(pod3);
    assert.ok(ranByHelper('p3', 'ADD'), 'the restarted helper runs ADDs again');
    await viaHelper.del(pod3);
    assert.deepEqual(allocated(), []);
  });

  test('a helper that greets and vanishes: CNI error 11 and nothing ran twice', async () => {
    const socket = join(lab.tempDir('fake'), 'fake.sock');
    const fake = createServer((s) => {
      s.write(CNI_SERVER_GREETING);
      s.on('data', () => s.destroy());
    });
    await new Promise<void>((resolve) => fake.listen(socket, resolve));
    try {
      const vanishing = new CniNetwork({ confDir, binDirs, cacheDir: lab.tempDir('cache2'), hostNetns: node, helper: { serves: () => true, call: (request, timeoutMs) => callCniServer(socket, request, timeoutMs) } });
      await assert.rejects(vanishing.add(ref('p4')), (err: unknown) => err instanceof CniPluginError && err.code === 11 && err.plugin === 'pontoon-bridge');
      assert.deepEqual(allocated(), [], 'no address was taken: the plugin was not exec\'d behind the helper\'s back');
    } finally {
      fake.close();
    }
  });

  test('cni-server --exit-with-stdin exits when its parent\'s end of stdin closes', async () => {
    const socket = join(lab.tempDir('orphan'), 'cni.sock');
    const child = spawn(CLI[0] ?? 'node', [...CLI.slice(1), 'cni-server', '--socket', socket, '--exit-with-stdin'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await poll('the server socket', () => existsSync(socket), { timeoutMs: 20_000 });
    child.stdin.destroy();
    assert.equal(await exited, 0);
  });
});
