/** The kubelet's pure parts: phase, env expansion, argv, config parsing, log tails, taints. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseTaints } from '../../src/cli/kubelet.js';
import { CniConfigError, loadNetworkConfig, parseNetworkConfig } from '../../src/kubelet/cni.js';
import type { ContainerRecord } from '../../src/kubelet/containers.js';
import { ContainerConfigError, containerArgv, containerEnv, expandVars } from '../../src/kubelet/env.js';
import { tailOffset } from '../../src/kubelet/logs-server.js';
import { sandboxName } from '../../src/kubelet/sandbox.js';
import { computePodStatus, podPhase, sameJson } from '../../src/kubelet/status.js';
import { makePod } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'pontoon-kubelet-units-'));

describe('kubelet units', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  const running: ContainerRecord = { name: 'a', restartCount: 0, state: { running: { startedAt: 'x' } }, lastState: {}, backoffMs: 0 };
  const waiting: ContainerRecord = { name: 'a', restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } }, lastState: {}, backoffMs: 0 };
  const done = (exitCode: number): ContainerRecord => ({ name: 'a', restartCount: 0, state: { terminated: { exitCode } }, lastState: {}, backoffMs: 0 });
  const crashLooping: ContainerRecord = { name: 'a', restartCount: 1, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1 } }, backoffMs: 0 };

  test('podPhase follows the kubelet getPhase table', () => {
    assert.equal(podPhase('Always', [waiting]), 'Pending');
    assert.equal(podPhase('Always', [running, waiting]), 'Pending');
    assert.equal(podPhase('Always', [running]), 'Running');
    assert.equal(podPhase('Always', [running, done(0)]), 'Running');
    assert.equal(podPhase('Always', [done(0)]), 'Running', 'Always: restarting');
    assert.equal(podPhase('Always', [crashLooping]), 'Running');
    assert.equal(podPhase('Never', [done(0), done(0)]), 'Succeeded');
    assert.equal(podPhase('Never', [done(0), done(1)]), 'Failed');
    assert.equal(podPhase('OnFailure', [done(0)]), 'Succeeded');
    assert.equal(podPhase('OnFailure', [crashLooping]), 'Running');
    assert.equal(podPhase('Never', []), 'Pending');
  });

  test('podPhase with init containers: Pending until all exited 0, Failed on a failure under Never', () => {
    assert.equal(podPhase('Always', [waiting], [done(0), running]), 'Pending');
    assert.equal(podPhase('Always', [waiting], [crashLooping]), 'Pending');
    assert.equal(podPhase('OnFailure', [waiting], [done(1)]), 'Pending', 'OnFailure: the init container will run again');
    assert.equal(podPhase('Never', [waiting], [done(1), waiting]), 'Failed');
    assert.equal(podPhase('Always', [running], [done(0), done(0)]), 'Running');
    assert.equal(podPhase('Never', [done(0)], [done(0)]), 'Succeeded');
  });

  test('computePodStatus keeps transition times while a condition holds', () => {
    const pod = makePod('p', [{ name: 'a', command: ['x'] }]);
    const observed = { sandboxReady: true, podIPs: ['10.0.0.2'], hostIPs: ['198.18.0.11'], startTime: 's', initContainers: [], containers: [{ name: 'a', image: '', record: running, ready: true, started: true }] };
    const first = computePodStatus(pod, observed, 'T1');
    assert.equal(first.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime, 'T1');
    const second = computePodStatus({ ...pod, status: first }, observed, 'T2');
    assert.equal(second.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime, 'T1');
    assert.ok(sameJson(first, second));
    const unready = computePodStatus({ ...pod, status: first }, { ...observed, containers: [{ name: 'a', image: '', record: running, ready: false, started: true }] }, 'T3');
    const ready = unready.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.lastTransitionTime, 'T3');
    assert.equal(ready?.message, 'containers with unready status: [a]');
    assert.equal(unready.qosClass, 'BestEffort');
  });

  test('$(VAR) expansion: known names, unknown left alone, $$ escapes', () => {
    const vars = new Map([['A', '1'], ['B', 'two']]);
    assert.equal(expandVars('$(A)-$(B)', vars), '1-two');
    assert.equal(expandVars('$(C)', vars), '$(C)');
    assert.equal(expandVars('$$(A)', vars), '$(A)');
    assert.equal(expandVars('cost $5 $', vars), 'cost $5 $');
    assert.equal(expandVars('$(A', vars), '$(A');
  });

  test('env and argv: order, fieldRef, configMapKeyRef, missing keys', async () => {
    const pod = makePod('p', [{ name: 'a' }]);
    const ctx = { pod, podIPs: ['10.0.0.2'], hostIPs: ['198.18.0.11'], nodeName: 'n1',
      objects: { configMap: async (_ns: string, name: string) => (name === 'cm' ? { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: 'v' } } : undefined), secret: async () => undefined },
    };
    const env = await containerEnv(
      {
        name: 'a',
        env: [
          { name: 'X', value: 'x' },
          { name: 'Y', value: '$(X)$(Z)' },
          { name: 'Z', value: 'z' },
          { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: 'CM', valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } },
          { name: 'OPT', valueFrom: { configMapKeyRef: { name: 'cm', key: 'nope', optional: true } } },
        ],
      },
      ctx,
    );
    assert.deepEqual(env, { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOSTNAME: 'p', X: 'x', Y: 'x$(Z)', Z: 'z', IP: '10.0.0.2', APP: 'p', CM: 'v' });
    await assert.rejects(containerEnv({ name: 'a', env: [{ name: 'M', valueFrom: { configMapKeyRef: { name: 'cm', key: 'missing' } } }] }, ctx), ContainerConfigError);
    await assert.rejects(containerEnv({ name: 'a', env: [{ name: 'M', valueFrom: { fieldRef: { fieldPath: 'spec.bogus' } } }] }, ctx), ContainerConfigError);
    assert.deepEqual(containerArgv({ name: 'a', command: ['echo'], args: ['$(X)'] }, env), ['echo', 'x']);
    assert.deepEqual(containerArgv({ name: 'a', args: ['sleep', '1'] }, env), ['sleep', '1']);
    assert.equal(containerArgv({ name: 'a' }, env), undefined);
  });

  test('CNI config: lexically first file, .conf as a list of one, clear errors', async () => {
    const conf = join(dir, 'net.d');
    await assert.rejects(loadNetworkConfig(conf), CniConfigError);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(conf);
    await assert.rejects(loadNetworkConfig(conf), /no CNI network config/);
    writeFileSync(join(conf, '20-b.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'b', plugins: [{ type: 'bridge' }] }));
    writeFileSync(join(conf, '10-a.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'a', type: 'ptp' }));
    writeFileSync(join(conf, 'README'), 'not a config');
    const list = await loadNetworkConfig(conf);
    assert.equal(list.name, 'a');
    assert.deepEqual(list.plugins.map((p) => p.type), ['ptp']);
    assert.throws(() => parseNetworkConfig('{', 'x'), CniConfigError);
    assert.throws(() => parseNetworkConfig('{"name":"n","plugins":[{}]}', 'x'), /has no "type"/);
    assert.throws(() => parseNetworkConfig('{"plugins":[{"type":"a"}]}', 'x'), /has no "name"/);
  });

  test('tailOffset finds where the last N lines begin', async () => {
    const file = join(dir, 'log');
    writeFileSync(file, 'a\nbb\nccc\n');
    assert.equal(await tailOffset(file, 1), 5);
    assert.equal(await tailOffset(file, 2), 2);
    assert.equal(await tailOffset(file, 3), 0);
    assert.equal(await tailOffset(file, 10), 0);
    assert.equal(await tailOffset(file, 0), 9);
    writeFileSync(file, 'a\nno newline at end');
    assert.equal(await tailOffset(file, 1), 2);
    const big = Array.from({ length: 50_000 }, (_, i) => `line ${i}`).join('\n') + '\n';
    writeFileSync(file, big);
    assert.equal(big.slice(await tailOffset(file, 2)), 'line 49998\nline 49999\n');
  });

  test('sandbox names and taint flags', () => {
    assert.equal(sandboxName('pfx-', '0123ABCD-4567-89ab-cdef-0123456789ab'), 'pfx-0123abcd4567');
    assert.deepEqual(parseTaints('a=b:NoSchedule, c:NoExecute'), [
      { key: 'a', value: 'b', effect: 'NoSchedule' },
      { key: 'c', effect: 'NoExecute' },
    ]);
    assert.throws(() => parseTaints('a=b:Sometimes'), /NoSchedule/);
  });
});
