/**
 * kubectl exec, exec -it, attach and port-forward with the real /usr/bin/kubectl (v1.32)
 * against an in-process apiserver and a kubelet whose pods run in namespaces of this test:
 * the apiserver proxies the upgrade to the kubelet's unix socket, the kubelet runs the
 * command inside the container (WebSocket v5.channel.k8s.io) or forwards into the pod's
 * network namespace (SPDY over WebSocket, and plain SPDY).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { RESOURCE } from '../../src/api/resources.js';
import type { Container, Pod } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { Kubelet } from '../../src/kubelet/kubelet.js';
import { createLogger } from '../../src/lib/log.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';
import { BUSYBOX, kubeletNode, type KubeletNode, NODE_IP } from './helpers.js';

const KUBECTL = '/usr/bin/kubectl';
const runFile = promisify(execFile);
const lab = new Lab('kstream');
const log = createLogger('kubelet-streaming-test', { level: process.env['PONTOON_TEST_LOG'] ?? 'silent' });
let apiserver: RunningApiServer;
let api: KubeClient;
let node: KubeletNode;
let kubelet: Kubelet;
let kubeconfig: string;
let webRoot: string;
const children: ChildProcess[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kubectl(args: readonly string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(options.input ?? '');
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** A long-running kubectl whose output we watch (port-forward, attach, a killed exec). */
function kubectlBackground(args: readonly string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string } {
  const child = spawn(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

async function createPod(name: string, containers: Container[], annotations: Record<string, string> = {}): Promise<void> {
  await api.create<Pod>(RESOURCE.pods, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', annotations },
    spec: { nodeName: 'n1', terminationGracePeriodSeconds: 1, containers: containers.map((c) => ({ image: 'busybox', ...c })) },
  });
  await poll(`pod ${name} running`, async () => (await api.get<Pod>(RESOURCE.pods, name, 'default'))?.status?.phase === 'Running', { timeoutMs: 15_000 });
}

/** Pids whose command line is exactly `argv`. */
function pidsRunning(argv: readonly string[]): number[] {
  const wanted = `${argv.join('\0')}\0`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1') === wanted) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('kubectl exec, attach and port-forward through the apiserver to the kubelet', () => {
  before(async () => {
    apiserver = await startApiServer({ store: 'memory:', listen: '127.0.0.1:0', log });
    api = new KubeClient({ server: apiserver.url });
    node = kubeletNode(lab, 'n1', 94);
    const dir = lab.tempDir('kstream');
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      ['apiVersion: v1', 'kind: Config', `clusters: [{name: t, cluster: {server: "${apiserver.url}"}}]`, 'contexts: [{name: t, context: {cluster: t, user: u}}]', 'current-context: t', 'users: [{name: u, user: {}}]', ''].join('\n'),
    );
    webRoot = lab.tempDir('kstream-web');
    writeFileSync(join(webRoot, 'index.html'), `hello from the pod ${process.pid}\n`);
    kubelet = new Kubelet({
      api,
      nodeName: 'n1',
      nodeIP: NODE_IP,
      rootDir: node.rootDir,
      cniConfDir: node.confDir,
      cniBinDirs: node.options.cniBinDirs,
      netnsPrefix: node.options.netnsPrefix ?? '',
      hostNetns: node.netns,
      maxPods: 110,
      statusIntervalMs: 500,
      leaseRenewIntervalMs: 500,
      resyncIntervalMs: 1000,
      log,
    });
    await kubelet.start();
    await createPod('shell', [{ name: 'main', command: [BUSYBOX, 'sleep', '100000'], env: [{ name: 'WHO', value: 'main' }] }]);
    await createPod('two', [
      { name: 'a', command: [BUSYBOX, 'sleep', '100001'], env: [{ name: 'WHO', value: 'a' }] },
      { name: 'b', command: [BUSYBOX, 'sleep', '100002'], env: [{ name: 'WHO', value: 'b' }] },
    ], { 'kubectl.kubernetes.io/default-container': 'b' });
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await kubelet.stop().catch(() => undefined);
    for (const uid of kubelet.runtime.uids()) await kubelet.runtime.killPod(uid, 0).catch(() => undefined);
    await apiserver.close();
    lab.cleanup();
  });

  test('exec: stdout and stderr apart, the exit code, the container env, inside the pod network', async () => {
    const run = await kubectl(['exec', 'shell', '--', 'sh', '-c', 'echo out; echo err >&2; echo "who=$WHO"; exit 3']);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stdout, 'out\nwho=main\n');
    assert.match(run.stderr, /^err\n/);
    const ok = await kubectl(['exec', 'shell', '--', 'true']);
    assert.equal(ok.code, 0, ok.stderr);
    // The pod's own interface: the exec runs in the sandbox, not in the node namespace.
    const pod = await api.get<Pod>(RESOURCE.pods, 'shell', 'default');
    const addrs = await kubectl(['exec', 'shell', '--', BUSYBOX, 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    assert.equal(addrs.code, 0, addrs.stderr);
    assert.ok(pod?.status?.podIP && addrs.stdout.includes(`${pod.status.podIP}/`), addrs.stdout);
    // ...and in the container's own UTS and mount namespaces: its hostname and /etc/hostname.
    const names = await kubectl(['exec', 'shell', '--', 'sh', '-c', 'hostname; cat /etc/hostname']);
    assert.equal(names.stdout, 'shell\nshell\n', names.stderr);
  });

  test('exec -i: piped stdin reaches the command and its end of file ends it', async () => {
    const run = await kubectl(['exec', '-i', 'shell', '--', 'cat'], { input: 'hi\nthere\n' });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hi\nthere\n');
  });

  test('exec picks the container kubectl names: -c, or the default-container annotation', async () => {
    const byFlag = await kubectl(['exec', 'two', '-c', 'a', '--', 'sh', '-c', 'echo $WHO']);
    assert.equal(byFlag.stdout, 'a\n', byFlag.stderr);
    const byDefault = await kubectl(['exec', 'two', '--', 'sh', '-c', 'echo $WHO']);
    assert.equal(byDefault.stdout, 'b\n', byDefault.stderr);
  });

  test('exec errors: a missing container, pod or command gets the server\'s Status and exit 1', async () => {
    const container = await kubectl(['exec', 'shell', '-c', 'nope', '--', 'true']);
    assert.equal(container.code, 1);
    assert.match(container.stderr, /container nope is not valid for pod shell/);
    const pod = await kubectl(['exec', 'ghost', '--', 'true']);
    assert.equal(pod.code, 1);
    assert.match(pod.stderr, /pods "ghost" not found/);
    const missing = await kubectl(['exec', 'shell', '--', 'no-such-binary']);
    assert.notEqual(missing.code, 0);
  });

  test('exec -it: a pseudo-terminal with the client\'s window size', async () => {
    // script(1) gives kubectl a terminal of a size we set; kubectl sends it as a resize.
    const command = `stty cols 123 rows 45; ${KUBECTL} --kubeconfig ${kubeconfig} exec -it shell -- sh -c 'tty; stty size; exit 7'`;
    const run = await runFile('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code?: number; stdout?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '' }),
    );
    assert.match(run.stdout, /\/dev\/pts\/\d+/);
    assert.match(run.stdout, /45 123/);
    assert.equal(run.code, 7);
  });

  test('a client killed mid-exec leaves nothing running', async () => {
    const marker = [BUSYBOX, 'sleep', '4242'];
    const { child, output } = kubectlBackground(['exec', 'shell', '--', 'sh', '-c', `echo started; exec ${marker.join(' ')}`]);
    await poll('the exec to start', () => output().includes('started') && pidsRunning(marker).length > 0, { timeoutMs: 10_000, describe: output });
    child.kill('SIGKILL');
    await poll('the exec\'d process to be gone', () => pidsRunning(marker).length === 0, { timeoutMs: 10_000 });
  });

  test('port-forward: two concurrent connections to a pod\'s server, over WebSocket and over SPDY', async () => {
    await createPod('web', [{ name: 'web', command: [BUSYBOX, 'httpd', '-f', '-p', '8080', '-h', webRoot] }]);
    const expected = readFileSync(join(webRoot, 'index.html'), 'utf8');
    for (const env of [{}, { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' }] as Record<string, string>[]) {
      const { child, output } = kubectlBackground(['port-forward', 'pod/web', ':8080'], env);
      const port = await poll('port-forward to listen', () => Number(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(output())?.[1]) || undefined, { timeoutMs: 10_000, describe: output });
      // httpd answers only once the pod serves; the port-forward works from the first try.
      const bodies = await Promise.all([httpGet(port), httpGet(port)]);
      assert.deepEqual(bodies, [expected, expected], JSON.stringify(env));
      assert.equal(await httpGet(port), expected);
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('close', resolve));
    }
  });

  test('port-forward to a port nobody listens on: kubectl reports the error from the pod', async () => {
    const { child, output } = kubectlBackground(['port-forward', 'pod/web', ':9']);
    const port = await poll('port-forward to listen', () => Number(/Forwarding from 127\.0\.0\.1:(\d+) -> 9/.exec(output())?.[1]) || undefined, { timeoutMs: 10_000, describe: output });
    await httpGet(port).catch(() => undefined);
    await poll('kubectl to report the refused connection', () => /connection refused|ECONNREFUSED/i.test(output()), { timeoutMs: 10_000, describe: output });
    child.kill('SIGKILL');
  });

  test('attach: the running container\'s output as it is written', async () => {
    await createPod('ticker', [{ name: 'tick', command: ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'] }]);
    const { child, output } = kubectlBackground(['attach', 'ticker']);
    const first = await poll('ticks through attach', () => /tick (\d+)/.exec(output())?.[1], { timeoutMs: 10_000, describe: output });
    await poll('later ticks', () => output().includes(`tick ${Number(first) + 2}`), { timeoutMs: 10_000, describe: output });
    child.kill('SIGKILL');
  });

  test('attach -i: input reaches a stdin: true container, output comes back', async () => {
    await createPod('echoer', [{ name: 'echo', stdin: true, command: ['sh', '-c', 'while read line; do echo "got $line"; done'] }]);
    const { child, output } = kubectlBackground(['attach', '-i', 'echoer']);
    // attach streams only what is written after it joined: keep sending until an answer shows.
    await poll('the container to answer through attach', () => {
      child.stdin!.write('hello\n');
      return output().includes('got hello');
    }, { timeoutMs: 10_000, intervalMs: 300, describe: output });
    child.kill('SIGKILL');
    const refused = await kubectl(['attach', '-i', 'ticker']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /not started with stdin: true/);
  });

  test('sessions leave no file descriptors behind in the apiserver and kubelet', async () => {
    // Both run in this process: its fd table is theirs. Warm up once (lazy koffi, pools).
    const fdTargets = (): string[] => readdirSync('/proc/self/fd').map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    });
    const openFds = (): number => fdTargets().length;
    // Terminals are counted apart: other fds (the informers' sockets) may close meanwhile and hide a leak in the total.
    const terminals = (): string[] => fdTargets().filter((t) => t.startsWith('/dev/pts/') || t.includes('ptmx'));
    await kubectl(['exec', 'shell', '--', 'true']);
    const before = openFds();
    for (let i = 0; i < 3; i++) {
      assert.equal((await kubectl(['exec', '-i', 'shell', '--', 'cat'], { input: 'x' })).stdout, 'x');
      await runFile('script', ['-qec', `${KUBECTL} --kubeconfig ${kubeconfig} exec -it shell -- true`, '/dev/null']);
    }
    const { child, output } = kubectlBackground(['port-forward', 'pod/web', ':8080']);
    const port = await poll('port-forward to listen', () => Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(output())?.[1]) || undefined, { timeoutMs: 10_000, describe: output });
    await httpGet(port);
    child.kill('SIGKILL');
    await poll('the fd count to return to where it was, with no terminal left open', () => openFds() <= before && terminals().length === 0, {
      timeoutMs: 10_000,
      describe: () => `${openFds()} open, ${before} before; terminals: ${terminals().join(' ')}`,
    });
  });
});
