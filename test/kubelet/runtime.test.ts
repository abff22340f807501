/**
 * The pod runtime against the real kernel: a node namespace, our bridge + IPAM chained with
 * the reference portmap and tuning, busybox processes as containers.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { PodStatus } from '../../src/api/types.js';
import { toTable } from '../../src/apiserver/tables.js';
import { CniNetwork, CniPluginError } from '../../src/kubelet/cni.js';
import { processStartTicks } from '../../src/kubelet/containers.js';
import { LogsServer } from '../../src/kubelet/logs-server.js';
import type { PodRuntime } from '../../src/kubelet/runtime.js';
import { sandboxName } from '../../src/kubelet/sandbox.js';
import type { PodRecord } from '../../src/kubelet/state.js';
import { listNetns } from '../../src/lib/netns.js';
import { PONTOON_CNI_DIR, REFERENCE_CNI_DIR } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';
import { BUSYBOX, condition, kubeletNode, NODE_IP, type KubeletNode, makePod, waitFor, waitForStatus } from './helpers.js';

const lab = new Lab('kubelet');

/** Lines a probe command appended to `file`: how many times it ran (0 before the first). */
const runsOf = (file: string): number => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0);
let node: KubeletNode;
let runtime: PodRuntime;
let logs: LogsServer;
let socketPath: string;
/** Every pod any runtime of this file ran, so a failed test still leaves no process behind. */
const started: { on: PodRuntime; uid: string }[] = [];



function run(pod: ReturnType<typeof makePod>, on: PodRuntime = runtime): string {
  const uid = pod.metadata.uid ?? '';
  started.push({ on, uid });
  on.runPod(pod);
  return uid;
}

function wget(url: string): string {
  return lab.exec(node.netns, BUSYBOX, ['wget', '-q', '-O', '-', url], { timeoutMs: 5000 });
}

function ipamFiles(on: KubeletNode = node): string[] {
  const dir = join(on.ipamDir, `pt${on.options.nodeName}`);
  return existsSync(dir) ? readdirSync(dir).filter((n) => n !== 'lock' && !n.startsWith('last_reserved_ip')) : [];
}

function recordOf(uid: string, on: KubeletNode = node): PodRecord {
  return JSON.parse(readFileSync(join(on.rootDir, 'pods', uid, 'state.json'), 'utf8')) as PodRecord;
}

function netnsInode(name: string): string {
  return `net:[${statSync(`/run/netns/${name}`).ino}]`;
}

function sandboxOf(uid: string): string {
  return sandboxName(node.options.netnsPrefix ?? '', uid);
}

function container(status: PodStatus, index = 0): NonNullable<PodStatus['containerStatuses']>[number] {
  const found = status.containerStatuses?.[index];
  assert.ok(found, 'container status');
  return found;
}

function getLog(path: string, onData?: (text: string) => void): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
        onData?.(body);
      });
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sleepForever = [BUSYBOX, 'sleep', '100000'];

describe('pod runtime', () => {
  before(async () => {
    node = kubeletNode(lab, 'n1', 91);
    runtime = node.runtime();
    socketPath = join(node.rootDir, 'kubelet.sock');
    logs = new LogsServer(socketPath, runtime.locateLog, node.options.log);
    await logs.start();
  });

  after(async () => {
    await logs.stop();
    for (const { on, uid } of started.reverse()) await on.killPod(uid, 0).catch(() => undefined);
    runtime.detach();
    lab.cleanup();
  });

  test('a pod gets an IP, serves HTTP from its sandbox, turns ready through an httpGet probe; CNI chains portmap and tuning', async () => {
    const www = lab.tempDir('www');
    writeFileSync(join(www, 'index.html'), 'hello from the pod\n');
    const pod = makePod('web', [
      {
        name: 'httpd',
        image: 'busybox',
        command: [BUSYBOX, 'httpd', '-f', '-p', '8080', '-h', www],
        ports: [{ name: 'http', containerPort: 8080, hostPort: 18080 }],
        readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
      },
    ]);
    const uid = run(pod);
    const status = await waitForStatus(runtime, uid, 'Ready', 15_000, (s) => condition(s, 'Ready') === 'True');
    assert.equal(status.phase, 'Running');
    assert.match(status.podIP ?? '', /^10\.91\.0\.\d+$/);
    assert.deepEqual(status.podIPs, [{ ip: status.podIP }]);
    assert.equal(status.hostIP, '198.18.0.11');
    assert.ok(status.startTime);
    assert.equal(container(status).ready, true);
    assert.equal(container(status).started, true);
    assert.equal(container(status).image, 'busybox');
    assert.ok(container(status).state.running?.startedAt);
    assert.equal(condition(status, 'PodReadyToStartContainers'), 'True');
    assert.equal(condition(status, 'ContainersReady'), 'True');

    assert.equal(wget(`http://${status.podIP}:8080/`), 'hello from the pod\n', 'pod answers from the node');
    assert.equal(wget(`http://${node.gateway}:18080/`), 'hello from the pod\n', 'portmap forwards the hostPort (runtimeConfig.portMappings)');
    const sandbox = sandboxOf(uid);
    assert.equal(lab.exec(sandbox, 'cat', ['/proc/sys/net/core/somaxconn']).trim(), '1234', 'tuning set its sysctl in the pod');
    await runtime.cni.check({ namespace: 'default', name: 'web', uid, sandboxId: recordOf(uid).sandboxId, netnsPath: `/run/netns/${sandbox}` });

    const pid = recordOf(uid).containers[0]?.pid ?? 0;
    assert.ok(pid > 0);
    assert.equal(readlinkSync(`/proc/${pid}/ns/net`), netnsInode(sandbox), 'the container process lives in the sandbox');
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /httpd/, 'the pid is the container itself, not a wrapper');
  });

  test('env (value, $(VAR), fieldRef), HOSTNAME, PATH and workingDir reach the process; logs server serves the log', async () => {
    const dir = lab.tempDir('wd');
    const pod = makePod('envpod', [
      {
        name: 'main',
        command: [BUSYBOX, 'sh', '-c'],
        args: ['echo "HOSTNAME=$HOSTNAME"; echo "POD_IP=$POD_IP"; echo "NS=$MY_NS"; echo "NODE=$MY_NODE"; echo "GREETING=$GREETING"; echo "PATH=$PATH"; echo "PWD=$(pwd)"; echo "ARG=$(NAME)"; exec busybox sleep 100000'],
        workingDir: dir,
        env: [
          { name: 'NAME', value: 'pontoon' },
          { name: 'GREETING', value: 'hello $(NAME) $$(NAME)' },
          { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'MY_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'MY_NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        ],
      },
    ]);
    const uid = run(pod);
    const status = await waitForStatus(runtime, uid, 'Running', 15_000, (s) => s.phase === 'Running');
    await waitFor('the log', 5000, () => existsSync(join(node.rootDir, 'pods', uid, 'main', '0.log')) && readFileSync(join(node.rootDir, 'pods', uid, 'main', '0.log'), 'utf8').includes('ARG='));
    const { code, body } = await getLog('/containerLogs/default/envpod/main');
    assert.equal(code, 200);
    const lines = body.trim().split('\n');
    assert.deepEqual(lines, [
      'HOSTNAME=envpod',
      `POD_IP=${status.podIP}`,
      'NS=default',
      'NODE=n1',
      'GREETING=hello pontoon $(NAME)',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `PWD=${dir}`,
      'ARG=pontoon',
    ]);
    assert.deepEqual((await getLog('/containerLogs/default/envpod/main?tailLines=2')).body, `PWD=${dir}\nARG=pontoon\n`);
    assert.equal((await getLog('/containerLogs/default/envpod/main?tailLines=0')).body, '');
    assert.equal((await getLog('/containerLogs/default/envpod/main?limitBytes=8')).body, 'HOSTNAME');
    assert.equal((await getLog('/containerLogs/default/nope/main')).code, 404);
    assert.equal((await getLog('/containerLogs/default/envpod/other')).code, 400);
    assert.equal((await getLog('/containerLogs/default/envpod/main?previous=true')).code, 400, 'no previous run');
  });

  test('a failing liveness exec probe restarts the container; readiness by exec; logs of the previous run', async () => {
    const marker = join(lab.tempDir('live'), 'healthy');
    const pod = makePod('live', [
      {
        name: 'c',
        command: [BUSYBOX, 'sh', '-c', `echo run; touch ${marker}.ready; exec busybox sleep 100000`],
        readinessProbe: { exec: { command: [BUSYBOX, 'test', '-f', `${marker}.ready`] }, periodSeconds: 1 },
        livenessProbe: { exec: { command: [BUSYBOX, 'sh', '-c', `echo >> ${marker}.probes; test -f ${marker}`] }, periodSeconds: 1, failureThreshold: 2, initialDelaySeconds: 1 },
      },
    ]);
    const uid = run(pod);
    await waitForStatus(runtime, uid, 'ready before liveness fails', 10_000, (s) => container(s).ready);
    const restarted = await waitForStatus(runtime, uid, 'a liveness restart', 20_000, (s) => container(s).restartCount >= 1 && container(s).state.running !== undefined);
    const last = container(restarted).lastState.terminated;
    assert.ok(last, 'the killed run is lastState');
    assert.equal(last.exitCode, 143, 'killed by SIGTERM');
    assert.equal(restarted.phase, 'Running');
    const previous = await getLog('/containerLogs/default/live/c?previous=true');
    assert.equal(previous.code, 200);
    assert.equal(previous.body, 'run\n');
    // Healthy from now on: the container stays up through four passing probes (twice the
    // failure threshold), counted as the probe runs rather than waited out on the clock.
    writeFileSync(marker, '');
    const count = container(restarted).restartCount;
    const probesBefore = runsOf(`${marker}.probes`);
    await poll('four liveness probes after the marker', () => runsOf(`${marker}.probes`) >= probesBefore + 5, { timeoutMs: 20_000 });
    const settled = runtime.status(uid);
    assert.ok(settled);
    assert.equal(container(settled).restartCount, count);
    assert.equal(container(settled).ready, true);
  });

  test('a startup probe holds back started, readiness and liveness until it succeeds', async () => {
    const marker = join(lab.tempDir('startup'), 'up');
    const pod = makePod('slow', [
      {
        name: 'c',
        command: sleepForever,
        startupProbe: { exec: { command: [BUSYBOX, 'sh', '-c', `echo >> ${marker}.startup; test -f ${marker}`] }, periodSeconds: 1, failureThreshold: 30 },
        // Would kill the container at once if it ran before startup succeeded.
        livenessProbe: { exec: { command: [BUSYBOX, 'sh', '-c', `echo >> ${marker}.liveness; test -f ${marker}.never`] }, periodSeconds: 1, failureThreshold: 1, initialDelaySeconds: 2 },
        readinessProbe: { exec: { command: [BUSYBOX, 'true'] }, periodSeconds: 1 },
      },
    ]);
    const uid = run(pod);
    await waitForStatus(runtime, uid, 'Running', 10_000, (s) => container(s).state.running !== undefined);
    // Four failed startup probes: past liveness's initialDelaySeconds, where it would have run.
    await poll('four startup probes', () => runsOf(`${marker}.startup`) >= 4, { timeoutMs: 20_000 });
    const held = runtime.status(uid);
    assert.ok(held);
    assert.equal(runsOf(`${marker}.liveness`), 0, 'liveness never ran');
    assert.equal(container(held).started, false);
    assert.equal(container(held).ready, false);
    assert.equal(container(held).restartCount, 0, 'liveness does not run before startup succeeds');
    writeFileSync(marker, '');
    const started = await waitForStatus(runtime, uid, 'started and ready', 10_000, (s) => container(s).started === true && container(s).ready);
    assert.equal(container(started).restartCount, 0);
    // Now liveness runs (and fails on purpose).
    await waitForStatus(runtime, uid, 'the liveness restart', 10_000, (s) => container(s).restartCount >= 1);
  });

  test('restartPolicy Never: a failed container fails the pod, and its network is released at once', async () => {
    const before = ipamFiles().length;
    const uid = run(makePod('never', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', 'exit 3'] }], { restartPolicy: 'Never' }));
    const status = await waitForStatus(runtime, uid, 'Failed', 15_000, (s) => s.phase === 'Failed');
    assert.equal(container(status).state.terminated?.exitCode, 3);
    assert.equal(container(status).state.terminated?.reason, 'Error');
    assert.equal(container(status).restartCount, 0);
    assert.equal(condition(status, 'Ready'), 'False');
    assert.equal(status.conditions?.find((c) => c.type === 'Ready')?.reason, 'PodCompleted');
    assert.ok(status.podIP, 'a finished pod keeps its podIP in status');
    await waitFor('network released', 10_000, () => !listNetns().includes(sandboxOf(uid)) && ipamFiles().length === before);
    await waitForStatus(runtime, uid, 'PodReadyToStartContainers False', 5000, (s) => condition(s, 'PodReadyToStartContainers') === 'False');
  });

  test('restartPolicy OnFailure: success ends the pod, failure restarts it with backoff', async () => {
    const ok = run(makePod('onfail-ok', [{ name: 'c', command: [BUSYBOX, 'true'] }], { restartPolicy: 'OnFailure' }));
    const done = await waitForStatus(runtime, ok, 'Succeeded', 15_000, (s) => s.phase === 'Succeeded');
    assert.equal(container(done).state.terminated?.reason, 'Completed');
    assert.equal(container(done).restartCount, 0);

    const t0 = Date.now();
    const bad = run(makePod('onfail-bad', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', 'exit 7'] }], { restartPolicy: 'OnFailure' }));
    const seen = new Set<string>();
    const looping = await waitFor('three restarts', 20_000, () => {
      const s = runtime.status(bad);
      const reason = s?.containerStatuses?.[0]?.state.waiting?.reason;
      if (reason) seen.add(reason);
      return s && container(s).restartCount >= 3 ? s : undefined;
    });
    // Restarts after 0, 300 and 600 ms of backoff (base 300 ms in these tests).
    assert.ok(Date.now() - t0 >= 900, `backoff doubled (took ${Date.now() - t0} ms)`);
    assert.ok(seen.has('CrashLoopBackOff'), `waiting reasons seen: ${[...seen].join(', ')}`);
    assert.equal(looping.phase, 'Running', 'OnFailure and restarting: Running, as the kubelet reports it');
    assert.equal(container(looping).lastState.terminated?.exitCode, 7);
  });

  test('restartPolicy Always restarts a container that exits 0', async () => {
    const uid = run(makePod('always', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', 'echo once; busybox sleep 0.2'] }]));
    const status = await waitForStatus(runtime, uid, 'a restart', 15_000, (s) => container(s).restartCount >= 2);
    assert.equal(status.phase, 'Running');
    assert.equal(container(status).lastState.terminated?.exitCode, 0);
    assert.equal(container(status).lastState.terminated?.reason, 'Completed');
  });

  test('a container with no command, or a missing binary, fails with a clear reason', async () => {
    const none = run(makePod('nocmd', [{ name: 'c', image: 'nginx' }], { restartPolicy: 'Never' }));
    const status = await waitForStatus(runtime, none, 'Failed', 10_000, (s) => s.phase === 'Failed');
    assert.equal(container(status).state.terminated?.reason, 'StartError');
    assert.equal(container(status).state.terminated?.message, 'no command: images are not pulled, give command');
    assert.equal(container(status).image, 'nginx', 'the image is recorded');

    const missing = run(makePod('nobin', [{ name: 'c', command: ['definitely-not-a-binary'] }], { restartPolicy: 'Never' }));
    const missingStatus = await waitForStatus(runtime, missing, 'Failed', 10_000, (s) => s.phase === 'Failed');
    assert.match(container(missingStatus).state.terminated?.message ?? '', /executable file not found/);
    assert.equal(container(missingStatus).state.terminated?.exitCode, 128);
  });

  test('a container the runtime cannot launch waits in RunContainerError with the reason, gets a Failed event and is retried', async () => {
    const events: { reason: string; message: string }[] = [];
    const watched = node.runtime({ onEvent: (_pod, _type, reason, message) => events.push({ reason, message }) });
    // A NUL byte cannot be passed to execve: spawn refuses it, as runc refuses such a spec.
    const uid = run(makePod('nolaunch', [{ name: 'c', command: [BUSYBOX, 'sleep', '100\u0000'] }]), watched);
    const status = await waitForStatus(watched, uid, 'RunContainerError', 20_000, (s) => s.containerStatuses?.[0]?.state.waiting?.reason === 'RunContainerError');
    assert.match(container(status).state.waiting?.message ?? '', /null bytes/);
    assert.equal(status.phase, 'Pending');
    await waitFor('a Failed event and a retry with backoff', 20_000, () => events.some((e) => e.reason === 'Failed' && /null bytes/.test(e.message)) && events.some((e) => e.reason === 'BackOff'));
    await watched.killPod(uid, 0);
    watched.detach();
  });

  test('follow streams the log until the container ends', async () => {
    const uid = run(makePod('follow', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', 'for i in 1 2 3 4; do echo line$i; busybox sleep 0.3; done'] }], { restartPolicy: 'Never' }));
    await waitForStatus(runtime, uid, 'Running', 10_000, (s) => container(s).state.running !== undefined);
    let firstChunkAt = 0;
    const t0 = Date.now();
    const { code, body } = await getLog('/containerLogs/default/follow/c?follow=true', () => (firstChunkAt ||= Date.now()));
    assert.equal(code, 200);
    assert.equal(body, 'line1\nline2\nline3\nline4\n');
    assert.ok(firstChunkAt - t0 < 800, 'the first line came before the container ended');
    assert.ok(Date.now() - t0 >= 600, 'the response lasted as long as the container');
  });

  test('killPod stops the containers and leaves no sandbox, veth, IPAM reservation, CNI cache or pod directory', { timeout: 120_000 }, async () => {
    const uid = run(makePod('gone', [{ name: 'c', command: sleepForever }, { name: 'd', command: sleepForever }]));
    const status = await waitForStatus(runtime, uid, 'Running', 10_000, (s) => s.phase === 'Running' && s.containerStatuses?.every((c) => c.state.running) === true);
    const pids = recordOf(uid).containers.map((c) => c.pid ?? 0);
    const { sandboxId } = recordOf(uid);
    assert.ok(readdirSync(join(node.rootDir, 'cni', 'results')).some((f) => f.includes(sandboxId)), 'ADD result cached');
    assert.equal(pids.length, 2);
    assert.ok(ipamFiles().includes(status.podIP ?? ''));
    // A 600 s grace period: were SIGTERM not enough, killPod would outlast the test's timeout.
    await runtime.killPod(uid, 600);
    for (const pid of pids) assert.equal(existsSync(`/proc/${pid}`), false, `pid ${pid} is gone`);
    assert.equal(listNetns().includes(sandboxOf(uid)), false);
    assert.equal(ipamFiles().includes(status.podIP ?? ''), false);
    assert.equal(existsSync(join(node.rootDir, 'pods', uid)), false);
    const cache = readdirSync(join(node.rootDir, 'cni', 'results'));
    assert.equal(cache.some((f) => f.includes(sandboxId)), false, 'cached result removed');
    assert.equal(runtime.get(uid), undefined);
  });

  test('SIGKILL after the grace period for a container that ignores SIGTERM', async () => {
    const uid = run(makePod('stubborn', [{ name: 'c', command: [BUSYBOX, 'sh', '-c', "trap '' TERM; echo trapped; while :; do busybox sleep 0.1; done"] }]));
    await waitFor('the trap to be set', 10_000, () => existsSync(join(node.rootDir, 'pods', uid, 'c', '0.log')) && readFileSync(join(node.rootDir, 'pods', uid, 'c', '0.log'), 'utf8').includes('trapped'));
    const t0 = Date.now();
    await runtime.killPod(uid, 1);
    const took = Date.now() - t0;
    assert.ok(took >= 1000 && took < 4000, `killed after the 1 s grace period (took ${took} ms)`);
  });

  test('a restarted kubelet adopts running containers and tears down pods it no longer has', async () => {
    const keep = makePod('keep', [{ name: 'c', command: sleepForever, readinessProbe: { exec: { command: [BUSYBOX, 'true'] }, periodSeconds: 1 } }]);
    const drop = makePod('drop', [{ name: 'c', command: sleepForever }]);
    // A node of its own: the orphan sweep must not see the other tests' pods.
    const n2 = kubeletNode(lab, 'n2', 92);
    const first = n2.runtime();
    const keepUid = run(keep, first);
    const dropUid = run(drop, first);
    await waitForStatus(first, keepUid, 'ready', 10_000, (s) => condition(s, 'Ready') === 'True');
    const dropStatus = await waitForStatus(first, dropUid, 'Running', 10_000, (s) => s.phase === 'Running');
    const keepPid = recordOf(keepUid, n2).containers[0]?.pid ?? 0;
    const dropPid = recordOf(dropUid, n2).containers[0]?.pid ?? 0;
    first.detach(); // the kubelet exits; its pods keep running

    const second = n2.runtime();
    assert.deepEqual(new Set(second.recoveredPods().map((r) => r.uid)), new Set([keepUid, dropUid]));
    assert.deepEqual(await second.cleanupOrphans((uid) => uid === keepUid), [dropUid]);
    // Here the process is still this test's child, so it may linger as a zombie until reaped.
    assert.equal(processStartTicks(dropPid), undefined, 'the orphan was killed');
    assert.equal(listNetns().includes(sandboxOf(dropUid)), false);
    assert.equal(ipamFiles(n2).includes(dropStatus.podIP ?? ''), false);
    assert.ok(ipamFiles(n2).length === 1, 'the kept pod still holds its address');

    run(keep, second);
    const adopted = await waitForStatus(second, keepUid, 'ready again', 10_000, (s) => condition(s, 'Ready') === 'True');
    assert.equal(recordOf(keepUid, n2).containers[0]?.pid, keepPid, 'same process');
    assert.equal(container(adopted).restartCount, 0);
    // The adopted process is not our child: its exit is noticed by polling, exit code unknown.
    process.kill(keepPid, 'SIGKILL');
    const lost = await waitForStatus(second, keepUid, 'restart after the adopted process died', 10_000, (s) => container(s).restartCount === 1 && container(s).state.running !== undefined);
    assert.equal(container(lost).lastState.terminated?.reason, 'ContainerStatusUnknown');
    await second.killPod(keepUid, 0);
    second.detach();
  });

  test('init containers run one at a time, in order, in the sandbox, before the containers; the pod is Pending and not Initialized meanwhile', async () => {
    const dir = lab.tempDir('init');
    const trace = join(dir, 'trace');
    const step = (name: string, pause: string): string => `readlink /proc/self/ns/net > ${dir}/${name}.net; echo ${name}-start >> ${trace}; busybox sleep ${pause}; echo ${name}-end >> ${trace}`;
    const pod = makePod(
      'inits',
      [{ name: 'main', command: [BUSYBOX, 'sh', '-c', `echo main >> ${trace}; exec busybox sleep 100000`] }],
      { initContainers: [
        { name: 'first', image: 'busybox', command: [BUSYBOX, 'sh', '-c', step('first', '0.3')] },
        { name: 'second', image: 'busybox', command: [BUSYBOX, 'sh', '-c', step('second', '1')] },
      ] },
    );
    const uid = run(pod);
    const waiting = await waitForStatus(runtime, uid, 'the second init container running', 10_000, (s) => s.initContainerStatuses?.[1]?.state.running !== undefined);
    assert.equal(waiting.phase, 'Pending');
    assert.equal(condition(waiting, 'Initialized'), 'False');
    const initialized = waiting.conditions?.find((c) => c.type === 'Initialized');
    assert.equal(initialized?.reason, 'ContainersNotInitialized');
    assert.equal(initialized?.message, 'containers with incomplete status: [second]');
    assert.equal(waiting.initContainerStatuses?.[0]?.state.terminated?.exitCode, 0);
    assert.equal(waiting.initContainerStatuses?.[0]?.ready, true);
    assert.equal(waiting.initContainerStatuses?.[0]?.image, 'busybox');
    assert.equal(container(waiting).state.waiting?.reason, 'PodInitializing');
    assert.ok(waiting.podIP, 'the sandbox and its address come before the init containers');
    const printed = toTable(RESOURCE.pods, [{ ...pod, status: waiting }], { includeObject: 'None', now: new Date() }).rows[0]?.cells[2];
    assert.equal(printed, 'Init:1/2', 'kubectl get pods STATUS');

    const running = await waitForStatus(runtime, uid, 'Running', 10_000, (s) => s.phase === 'Running' && container(s).state.running !== undefined);
    assert.equal(condition(running, 'Initialized'), 'True');
    assert.deepEqual(running.initContainerStatuses?.map((c) => c.state.terminated?.reason), ['Completed', 'Completed']);
    await waitFor('main to write', 5000, () => readFileSync(trace, 'utf8').includes('main'));
    assert.deepEqual(readFileSync(trace, 'utf8').trim().split('\n'), ['first-start', 'first-end', 'second-start', 'second-end', 'main']);
    for (const name of ['first', 'second']) assert.equal(readFileSync(join(dir, `${name}.net`), 'utf8').trim(), netnsInode(sandboxOf(uid)), `${name} ran in the sandbox`);
    const logs = await getLog('/containerLogs/default/inits/first');
    assert.equal(logs.code, 200, 'init container logs are served');
  });

  test('a failing init container is restarted with backoff (restartPolicy Always), and the containers wait for it', async () => {
    const dir = lab.tempDir('initfail');
    // Fails twice, then succeeds.
    const flaky = `echo x >> ${dir}/runs; [ $(busybox wc -l < ${dir}/runs) -ge 3 ]`;
    const uid = run(makePod('initretry', [{ name: 'main', command: sleepForever }], { initContainers: [{ name: 'flaky', command: [BUSYBOX, 'sh', '-c', flaky] }] }));
    const seen = new Set<string>();
    const running = await waitFor('Running after the init container succeeded', 20_000, () => {
      const s = runtime.status(uid);
      const init = s?.initContainerStatuses?.[0];
      if (s && init?.state.waiting?.reason === 'CrashLoopBackOff') {
        seen.add(s.phase ?? '');
        assert.equal(container(s).state.running, undefined, 'the container waits for init');
      }
      return s?.phase === 'Running' && container(s).state.running ? s : undefined;
    });
    assert.deepEqual([...seen], ['Pending'], 'backing off init: Pending');
    const init = running.initContainerStatuses?.[0];
    assert.equal(init?.restartCount, 2);
    assert.equal(init?.state.terminated?.exitCode, 0);
    assert.equal(init?.lastState.terminated?.exitCode, 1);
  });

  test('a failing init container under restartPolicy Never fails the pod; the containers never start', async () => {
    const before = ipamFiles().length;
    const uid = run(makePod('initnever', [{ name: 'main', command: sleepForever }], { restartPolicy: 'Never', initContainers: [{ name: 'bad', command: [BUSYBOX, 'sh', '-c', 'exit 4'] }, { name: 'never', command: [BUSYBOX, 'true'] }] }));
    const failed = await waitForStatus(runtime, uid, 'Failed', 10_000, (s) => s.phase === 'Failed');
    assert.equal(failed.initContainerStatuses?.[0]?.state.terminated?.exitCode, 4);
    assert.equal(failed.initContainerStatuses?.[0]?.restartCount, 0);
    assert.equal(failed.initContainerStatuses?.[1]?.state.waiting?.reason, 'PodInitializing');
    assert.equal(container(failed).state.waiting?.reason, 'PodInitializing');
    assert.equal(condition(failed, 'Initialized'), 'False');
    assert.equal(recordOf(uid).containers[0]?.containerId, undefined, 'main never ran');
    await waitFor('network released', 10_000, () => !listNetns().includes(sandboxOf(uid)) && ipamFiles().length === before);
  });

  test('a restarted kubelet does not re-run the init containers of a running pod', async () => {
    const n3 = kubeletNode(lab, 'n3', 93);
    const dir = lab.tempDir('initadopt');
    const pod = makePod('initonce', [{ name: 'main', command: sleepForever }], { initContainers: [{ name: 'once', command: [BUSYBOX, 'sh', '-c', `echo ran >> ${dir}/runs`] }] });
    const first = n3.runtime();
    const uid = run(pod, first);
    await waitForStatus(first, uid, 'Running', 10_000, (s) => s.phase === 'Running' && container(s).state.running !== undefined);
    const pid = recordOf(uid, n3).containers[0]?.pid;
    first.detach();

    const second = n3.runtime();
    run(pod, second);
    const adopted = await waitForStatus(second, uid, 'Running again', 10_000, (s) => s.phase === 'Running' && container(s).state.running !== undefined);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(readFileSync(join(dir, 'runs'), 'utf8'), 'ran\n', 'the init container ran once');
    assert.equal(condition(adopted, 'Initialized'), 'True');
    assert.equal(recordOf(uid, n3).containers[0]?.pid, pid, 'same process');
    assert.equal(adopted.initContainerStatuses?.[0]?.state.terminated?.exitCode, 0);
    await second.killPod(uid, 0);
    second.detach();
  });

  test('hostNetwork: no sandbox and no CNI; containers run in the node namespace with the node IP; probes reach it there; deletion leaves the node network alone', async () => {
    const n4 = kubeletNode(lab, 'n4', 94);
    lab.exec(n4.netns, 'ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', 'lo']);
    // A conflist that fails any ADD or DEL: a hostNetwork pod must call neither.
    const confDir = lab.tempDir('hostnet-conf');
    writeFileSync(join(confDir, '10-bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'no-such-plugin' }] }));
    const hostRuntime = n4.runtime({ cniConfDir: confDir });
    const www = lab.tempDir('hostnet-www');
    writeFileSync(join(www, 'index.html'), 'hello from the node\n');
    // Only this kubelet's namespaces: other test files create theirs concurrently.
    const ours = (): number => listNetns().filter((name) => name.startsWith(n4.options.netnsPrefix ?? '')).length;
    const netnsBefore = ours();
    const pod = makePod(
      'hostnet',
      [
        {
          name: 'httpd',
          command: [BUSYBOX, 'sh', '-c', `echo "$HOSTNAME $MY_IP" > ${www}/env; exec busybox httpd -f -p 18181 -h ${www}`],
          env: [{ name: 'MY_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
          ports: [{ name: 'http', containerPort: 18181 }],
          readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
          livenessProbe: { exec: { command: [BUSYBOX, 'sh', '-c', `busybox wget -q -O /dev/null http://${NODE_IP}:18181/ && echo >> ${www}/probes`] }, periodSeconds: 1 },
        },
      ],
      { hostNetwork: true, initContainers: [{ name: 'init', command: [BUSYBOX, 'true'] }] },
    );
    const uid = run(pod, hostRuntime);
    const ready = await waitForStatus(hostRuntime, uid, 'Ready', 15_000, (s) => condition(s, 'Ready') === 'True');
    assert.equal(ready.podIP, NODE_IP);
    assert.deepEqual(ready.podIPs, [{ ip: NODE_IP }]);
    assert.equal(ready.hostIP, NODE_IP);
    assert.equal(condition(ready, 'PodReadyToStartContainers'), 'True');
    assert.equal(ours(), netnsBefore, 'no sandbox namespace');
    assert.equal(listNetns().includes(sandboxName(n4.options.netnsPrefix ?? '', uid)), false);
    const pid = recordOf(uid, n4).containers[0]?.pid ?? 0;
    assert.equal(readlinkSync(`/proc/${pid}/ns/net`), netnsInode(n4.netns), 'the container lives in the node namespace');
    assert.equal(lab.exec(n4.netns, BUSYBOX, ['wget', '-q', '-O', '-', `http://${NODE_IP}:18181/`], { timeoutMs: 5000 }), 'hello from the node\n');
    assert.equal(readFileSync(join(www, 'env'), 'utf8'), `n4 ${NODE_IP}\n`, 'HOSTNAME is the node name, status.podIP the node IP');
    await poll('two passing liveness probes', () => runsOf(join(www, 'probes')) >= 2, { timeoutMs: 20_000 });
    assert.equal(container(hostRuntime.status(uid) ?? ready).restartCount, 0, 'the exec liveness probe passes in the node namespace');

    await hostRuntime.killPod(uid, 2); // a CNI DEL would fail with the broken conflist
    assert.equal(existsSync(`/proc/${pid}`), false);
    assert.equal(existsSync(join(n4.rootDir, 'pods', uid)), false);
    assert.equal(lab.exec(n4.netns, 'ip', ['-o', 'addr', 'show', 'dev', 'lo']).includes(NODE_IP), true, 'the node network is untouched');
    hostRuntime.detach();
  });

  test('hostNetwork on a kubelet in its own node namespace: the container runs where the kubelet runs, without ip netns exec', async () => {
    const n5 = kubeletNode(lab, 'n5', 95);
    const own = n5.runtime({ hostNetns: undefined });
    const uid = run(makePod('hostown', [{ name: 'c', command: sleepForever }], { hostNetwork: true }), own);
    await waitForStatus(own, uid, 'Running', 10_000, (s) => container(s).state.running !== undefined);
    const pid = recordOf(uid, n5).containers[0]?.pid ?? 0;
    assert.equal(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^\/bin\/busybox\0sleep/, 'spawned as it is');
    await own.killPod(uid, 0);
    own.detach();
  });

  test('CNI failures surface with the plugin and its CNI error code', async () => {
    const confDir = lab.tempDir('badconf');
    writeFileSync(join(confDir, '10-bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'pontoon-bridge', bridge: 'cni0' }] }));
    const cni = new CniNetwork({ confDir, binDirs: [PONTOON_CNI_DIR, REFERENCE_CNI_DIR], cacheDir: lab.tempDir('cache'), hostNetns: node.netns });
    const sandbox = lab.netns('badpod');
    const ref = { namespace: 'default', name: 'x', uid: 'u', sandboxId: 'bad1', netnsPath: `/run/netns/${sandbox}` };
    await assert.rejects(cni.add(ref), (err: unknown) => err instanceof CniPluginError && err.plugin === 'pontoon-bridge' && err.code === 7 && err.command === 'ADD');
    writeFileSync(join(confDir, '10-bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'no-such-plugin' }] }));
    await assert.rejects(cni.add(ref), (err: unknown) => err instanceof CniPluginError && err.plugin === 'no-such-plugin' && err.code === 4);

    // The runtime keeps the pod Pending and retries.
    let sandboxFailures = 0;
    const broken = node.runtime({ cniConfDir: confDir, onEvent: (_pod, _type, reason) => void (reason === 'FailedCreatePodSandBox' && sandboxFailures++) });
    const uid = run(makePod('nonet', [{ name: 'c', command: sleepForever }]), broken);
    await poll('a second sandbox attempt (a retry)', () => sandboxFailures >= 2, { timeoutMs: 20_000 });
    const status = broken.status(uid);
    assert.equal(status?.phase, 'Pending');
    assert.equal(status && condition(status, 'PodReadyToStartContainers'), 'False');
    assert.equal(status && container(status).state.waiting?.reason, 'ContainerCreating');
    await broken.killPod(uid, 0);
    broken.detach();
  });

  test('measure: pod handed to the runtime → Running with an IP (median of 10)', async () => {
    const times: number[] = [];
    let onChange = (): void => undefined;
    const timed = node.runtime({ onStatusChange: () => onChange() });
    for (let i = 0; i < 10; i++) {
      const pod = makePod(`m${i}`, [{ name: 'c', command: sleepForever }]);
      const uid = pod.metadata.uid ?? '';
      const running = new Promise<void>((resolve) => {
        onChange = () => {
          const s = timed.status(uid);
          if (s?.phase === 'Running' && s.podIP !== undefined) resolve();
        };
      });
      const t0 = performance.now();
      run(pod, timed);
      await running;
      times.push(performance.now() - t0);
    }
    await Promise.all(timed.uids().map((uid) => timed.killPod(uid, 0)));
    timed.detach();
    times.sort((a, b) => a - b);
    const median = ((times[4] ?? 0) + (times[5] ?? 0)) / 2;
    console.log(`# pod start → Running with IP: median ${median.toFixed(1)} ms, min ${times[0]?.toFixed(1)} ms, max ${times[9]?.toFixed(1)} ms`);
    assert.ok(median < 5000);
  });
});
