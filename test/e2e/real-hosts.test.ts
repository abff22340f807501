/**
 * README "Run on real machines", followed as written: the `control-plane`, `worker` and
 * `verify` blocks are read from README.md and run, line by line, on three "hosts" — network
 * namespaces on a fabric bridge (ctl 198.18.0.2, w1 .11, w2 .12), each with its own state dir
 * and nothing shared but the network. `systemctl enable --now U` spawns the ExecStart of
 * deploy/systemd/U.service with its EnvironmentFile, since systemd cannot run here. Because
 * the three hosts share this machine's filesystem, paths are mapped per host
 * (/var/lib/pontoon → <host>/var/lib/pontoon, /opt/pontoon → this checkout) and the worker's
 * kubelet gets its own host root, CNI dirs and pod-namespace prefix (README says so too).
 * Shown: both workers Ready, a pod on each, a ping between them, `kubectl logs` of each
 * through its kubelet's TLS port; the units pass `systemd-analyze verify`.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { cliPath } from '../../src/cli/cluster/cluster.js';
import { makeFabric, plug } from '../../src/cli/cluster/topology.js';
import { startDetached } from '../../src/lib/exec.js';
import { parseIpNet } from '../../src/lib/ip.js';
import { unmountUnder } from '../../src/lib/mounts.js';
import { deleteNetnsWithPrefix } from '../../src/lib/netns.js';
import { ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { expandExecStart, markdownBlocks, parseEnvironmentFile, parseUnit, unitValue } from '../helpers/units.js';
import { poll } from '../helpers/wait.js';

const execFileAsync = promisify(execFile);
const README = join(ROOT, 'README.md');
const UNITS_DIR = join(ROOT, 'deploy', 'systemd');
const UNITS = ['pontoon-apiserver', 'pontoon-controller-manager', 'pontoon-scheduler', 'pontoon-kubelet'];

interface Host {
  name: string;
  netns: string;
  ip: string;
  dir: string;
}

const lab = new Lab('rh');
let top = '';
const hosts = new Map<string, Host>();
const logs: string[] = [];

function mapPaths(word: string, host: Host): string {
  return word.replaceAll('/var/lib/pontoon', join(host.dir, 'var/lib/pontoon')).replaceAll('/opt/pontoon/', `${ROOT}/`);
}

/** What a worker needs because the hosts share one filesystem (README's last paragraph). */
function perHostKubeletFlags(host: Host): string[] {
  const root = join(host.dir, 'root');
  return ['--host-path-root', root, '--cni-conf-dir', join(root, 'etc/cni/net.d'), '--cni-bin-dir', join(root, 'opt/cni/bin'), '--netns-prefix', `${host.netns}-pod-`];
}

function startUnit(host: Host, unit: string): void {
  const parsed = parseUnit(readFileSync(join(UNITS_DIR, `${unit}.service`), 'utf8'));
  const execStart = unitValue(parsed, 'Service', 'ExecStart');
  assert.ok(execStart, `${unit} has an ExecStart`);
  const envFile = unitValue(parsed, 'Service', 'EnvironmentFile');
  const env = envFile ? parseEnvironmentFile(readFileSync(mapPaths(envFile, host), 'utf8')) : {};
  const argv = expandExecStart(execStart, env).map((word) => mapPaths(word, host));
  if (unit === 'pontoon-kubelet') argv.push(...perHostKubeletFlags(host));
  const log = join(host.dir, `${unit}.log`);
  logs.push(log);
  startDetached(['nsenter', `--net=/run/netns/${host.netns}`, '--', ...argv], log);
}

/** Runs one README line on `host`; returns its stdout. */
async function runLine(host: Host, line: string): Promise<string> {
  const words = line.split(/\s+/);
  if (words[0] === 'systemctl' && words[1] === 'enable' && words[2] === '--now') {
    for (const unit of words.slice(3)) startUnit(host, unit);
    return '';
  }
  let argv: string[];
  if (words[0] === 'pontoon') {
    // Its default would be this machine's own /var/lib/pontoon, shared by all three hosts.
    if ((words[1] === 'init' || words[1] === 'join') && !words.includes('--dir')) throw new Error(`README line without --dir: ${line}`);
    argv = [process.execPath, cliPath(), ...words.slice(1).map((w) => mapPaths(w, host))];
    if (words[1] === 'init') argv.push('--host-root', join(top, '$(NODE_NAME)', 'root'));
  } else if (words[0] === 'kubectl') {
    argv = ['kubectl', ...words.slice(1).map((w) => mapPaths(w, host))];
  } else {
    throw new Error(`the test does not know how to run README line: ${line}`);
  }
  const { stdout } = await execFileAsync('nsenter', [`--net=/run/netns/${host.netns}`, '--', ...argv], {
    env: { ...process.env, KUBECACHEDIR: join(host.dir, 'kube-cache') },
    timeout: 180_000,
  });
  return stdout;
}

function kubectl(...args: string[]): string {
  const ctl = hosts.get('ctl')!;
  return execFileSync('nsenter', [`--net=/run/netns/${ctl.netns}`, '--', 'kubectl', '--kubeconfig', join(ctl.dir, 'var/lib/pontoon/admin.kubeconfig'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, KUBECACHEDIR: join(ctl.dir, 'kube-cache') },
    timeout: 60_000,
  });
}

function logTails(): string {
  return logs.map((file) => `--- ${file}\n${existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-8).join('\n') : '(none)'}`).join('\n');
}

describe('README "Run on real machines" on three hosts', () => {
  before(() => {
    top = lab.tempDir('real-hosts');
    const fabric = lab.netns('fab');
    makeFabric(fabric, 1);
    for (const [name, ip] of [['ctl', '198.18.0.2'], ['w1', '198.18.0.11'], ['w2', '198.18.0.12']] as const) {
      const host: Host = { name, netns: lab.netns(name), ip, dir: join(top, name) };
      mkdirSync(join(host.dir, 'var/lib/pontoon'), { recursive: true });
      plug(fabric, 0, `rh-${name}`, host.netns, 'eth0', parseIpNet(`${ip}/24`));
      execFileSync('ip', ['netns', 'exec', host.netns, 'ip', 'link', 'set', 'lo', 'up']);
      hosts.set(name, host);
    }
  });

  after(() => {
    // Every daemon, agent and pod runs in one of this lab's namespaces (pods' carry its prefix).
    deleteNetnsWithPrefix(lab.prefix, { killProcesses: true });
    // Pod volumes (service-account token tmpfs) outlive the killed kubelets.
    if (top) unmountUnder(top);
    lab.cleanup();
  });

  test('the units pass systemd-analyze verify', () => {
    const which = spawnSync('which', ['systemd-analyze'], { encoding: 'utf8' });
    const files = UNITS.map((u) => join(UNITS_DIR, `${u}.service`));
    assert.deepEqual(readdirSync(UNITS_DIR).filter((f) => f.endsWith('.service')).sort(), UNITS.map((u) => `${u}.service`).sort());
    if (which.status === 0) {
      const result = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });
      assert.equal(result.status, 0, `systemd-analyze verify: ${result.stderr}${result.stdout}`);
      assert.equal(result.stderr.trim(), '', `systemd-analyze verify warned: ${result.stderr}`);
    }
    // Parsed here either way: what the test runs below is what the files say.
    for (const file of files) {
      const unit = parseUnit(readFileSync(file, 'utf8'));
      assert.ok(unitValue(unit, 'Unit', 'Description'), `${file}: Description`);
      assert.match(unitValue(unit, 'Service', 'ExecStart') ?? '', /^\/usr\/bin\/node \/opt\/pontoon\/dist\/cli\/pontoon\.cjs \S+/, `${file}: ExecStart`);
      assert.equal(unitValue(unit, 'Install', 'WantedBy'), 'multi-user.target', `${file}: WantedBy`);
    }
  });

  test('control plane, two workers, pods on each, ping and logs across', async () => {
    const ctl = hosts.get('ctl')!;
    const controlPlane = markdownBlocks(README, 'control-plane');
    const worker = markdownBlocks(README, 'worker');
    const verify = markdownBlocks(README, 'verify');
    assert.ok(controlPlane.length >= 3 && worker.length >= 2 && verify.length >= 1, 'README has the blocks');

    let joinLine = '';
    for (const line of controlPlane) {
      if (line.startsWith('kubectl')) {
        // The apiserver the unit started must be up before the first kubectl, as after systemctl's start.
        await poll('apiserver ready', () => runLine(ctl, 'kubectl --kubeconfig /var/lib/pontoon/admin.kubeconfig get --raw /readyz').then((out) => out.trim() === 'ok'), { timeoutMs: 60_000, retryErrors: true, describe: logTails });
      }
      const out = await runLine(ctl, line);
      if (line.includes('--print-join-command')) joinLine = out.trim();
    }
    const printed = /^pontoon join --server (\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]{64})$/.exec(joinLine);
    assert.ok(printed, `a join command: ${joinLine}`);
    assert.equal(printed[1], 'https://198.18.0.2:6443');

    for (const name of ['w1', 'w2']) {
      const host = hosts.get(name)!;
      for (const template of worker) {
        const line = template
          .replace('<token>', printed[2]!)
          .replace('<hash>', printed[3]!)
          .replace('--node-name w1', `--node-name ${name}`)
          .replace('--node-ip 198.18.0.11', `--node-ip ${host.ip}`);
        await runLine(host, line);
      }
      assert.ok(existsSync(stateFile(host, 'pki/kubelet.crt')), `${name}: serving certificate`);
    }

    await poll('w1 and w2 Ready', () => {
      const nodes = JSON.parse(kubectl('get', 'nodes', '-o', 'json')) as { items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] };
      const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name).sort();
      return ready.join(',') === 'w1,w2';
    }, { timeoutMs: 180_000, retryErrors: true, describe: () => `${kubectl('get', 'pods', '-A', '-o', 'wide')}\n${logTails()}` });
    for (const line of verify) await runLine(ctl, line);

    const podsManifest = ['w1', 'w2']
      .map((name) => JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `on-${name}`, namespace: 'default' },
        spec: { nodeName: name, containers: [{ name: 'main', image: 'busybox', command: ['/bin/busybox', 'sh', '-c', `echo hello from ${name}; exec /bin/busybox sleep 100000`] }] },
      }))
      .join('\n');
    execFileSync('nsenter', [`--net=/run/netns/${ctl.netns}`, '--', 'kubectl', '--kubeconfig', stateFile(ctl, 'admin.kubeconfig'), 'apply', '-f', '-'], { input: podsManifest, env: { ...process.env, KUBECACHEDIR: join(ctl.dir, 'kube-cache') } });
    const ips = new Map<string, string>();
    for (const name of ['w1', 'w2']) {
      ips.set(name, await poll(`on-${name} Running`, () => {
        const pod = JSON.parse(kubectl('get', 'pod', `on-${name}`, '-o', 'json')) as { status?: { phase?: string; podIP?: string } };
        return pod.status?.phase === 'Running' && pod.status.podIP ? pod.status.podIP : undefined;
      }, { timeoutMs: 120_000, retryErrors: true, describe: logTails }));
    }
    assert.notEqual(ips.get('w1')!.split('.')[2], ips.get('w2')!.split('.')[2], 'pods in different node subnets');

    // Through the apiserver to each kubelet's TLS port: the Nodes advertise 10250 and no
    // socket (the shared filesystem would otherwise let the apiserver use one).
    const nodes = JSON.parse(kubectl('get', 'nodes', '-o', 'json')) as { items: { metadata: { name: string; annotations?: Record<string, string> }; status?: { daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } } }[] };
    for (const node of nodes.items) {
      assert.equal(node.status?.daemonEndpoints?.kubeletEndpoint?.Port, 10250, `${node.metadata.name} advertises the TLS port`);
      assert.equal(node.metadata.annotations?.['pontoon.dev/kubelet-socket'], undefined, `${node.metadata.name} advertises no socket`);
    }
    for (const name of ['w1', 'w2']) {
      const log = await poll(`logs of on-${name}`, () => {
        const text = kubectl('logs', `on-${name}`);
        return text.includes(`hello from ${name}`) ? text : undefined;
      }, { timeoutMs: 30_000, retryErrors: true });
      assert.equal(log.trim(), `hello from ${name}`);
    }
    // Pod to pod across the overlay (exec also goes through w1's kubelet TLS port).
    await poll('on-w1 pings on-w2', () => {
      const result = spawnSync('nsenter', [`--net=/run/netns/${ctl.netns}`, '--', 'kubectl', '--kubeconfig', stateFile(ctl, 'admin.kubeconfig'), 'exec', 'on-w1', '--', '/bin/busybox', 'ping', '-c', '1', '-W', '2', ips.get('w2')!], {
        encoding: 'utf8',
        env: { ...process.env, KUBECACHEDIR: join(ctl.dir, 'kube-cache') },
      });
      return result.status === 0 && / 0% packet loss/.test(result.stdout);
    }, { timeoutMs: 60_000, describe: logTails });
  });
});

function stateFile(host: Host, path: string): string {
  return join(host.dir, 'var/lib/pontoon', path);
}
