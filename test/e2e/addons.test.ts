/**
 * Issue 12's "Must hold" list, through kubectl against `cluster up` with the node agents as
 * DaemonSets (deploy/pontoon.yaml): the classic manifests (nginx-deployment, an exec liveness
 * probe, the `pi` Job, a DaemonSet), names from inside pods, an agent pod deleted while
 * traffic flows, a node added to the running cluster, in-cluster config from client-python,
 * and bad input answered with Kubernetes Status errors.
 *
 * Parts whose pieces have not landed on this branch are `todo` with the reason, never
 * silently skipped: cluster DNS needs deploy/dns.yaml (the dns branch).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { RESOURCE } from '../../src/api/resources.js';
import type { Endpoints, Event, Node, Pod } from '../../src/api/types.js';
import { addNode } from '../../src/cli/cluster/add-node.js';
import { AGENT_NAMESPACE, agentPods, deployFile, isPodReady } from '../../src/cli/cluster/agents.js';
import { adminClient, clusterDown, clusterUp, type ClusterState } from '../../src/cli/cluster/cluster.js';
import { restartAgentPod } from '../../src/cli/cluster/daemonset-mode.js';
import type { KubeClient } from '../../src/client/client.js';
import { TEST_NETNS_PREFIX } from '../helpers/lab.js';
import { waitUntil } from '../helpers/cluster.js';
import { poll } from '../helpers/wait.js';

const DNS_TODO = existsSync(deployFile('dns.yaml')) ? undefined : 'cluster DNS: deploy/dns.yaml (dns branch) has not landed on this branch';
const BUSYBOX = '/bin/busybox';

let state: ClusterState;
let client: KubeClient;
let home: string;

function kubectlResult(args: readonly string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('/usr/bin/kubectl', args, {
    input,
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home },
  });
}

function kubectl(...args: string[]): string {
  const result = kubectlResult(args);
  assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

function apply(objects: readonly object[]): void {
  const result = kubectlResult(['apply', '-f', '-'], objects.map((o) => toYaml(o)).join('---\n'));
  assert.equal(result.status, 0, result.stderr);
}

async function podsOf(selector: string, namespace = 'default'): Promise<Pod[]> {
  return (await client.list<Pod>(RESOURCE.pods, namespace, { labelSelector: selector })).items;
}

/** Pings from a pod through kubectl exec; resolves with the summary's counts. */
function pingFrom(pod: string, ip: string, count: number): Promise<{ transmitted: number; received: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/kubectl', ['exec', pod, '--', BUSYBOX, 'ping', '-i', '0.2', '-c', String(count), ip], {
      env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', () => {
      const match = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
      resolve({ transmitted: Number(match?.[1] ?? 0), received: Number(match?.[2] ?? 0), output });
    });
  });
}

const sleeper = (name: string, extra: Record<string, unknown> = {}): object => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: name } },
  spec: { containers: [{ name: 'main', image: 'busybox', command: [BUSYBOX, 'sleep', '100000'] }], ...extra },
});

describe('a real cluster: agents as DaemonSets, the classic manifests', () => {
  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'pontoon-addons-'));
    const name = `${TEST_NETNS_PREFIX}ad`;
    try {
      state = await clusterUp({
        name,
        nodes: 3,
        backend: 'vxlan',
        racks: 1,
        podsPerNode: 0,
        directRouting: false,
        leaseTtlSeconds: 3600,
        controlPlane: true,
        subnetStore: 'kube',
        proxy: 'nftables',
        agents: 'daemonset',
        progress: () => undefined,
      });
    } catch (err) {
      await clusterDown(name);
      throw err;
    }
    client = adminClient(state);
  });

  after(async () => {
    rmSync(home, { recursive: true, force: true });
    if (state) await clusterDown(state.name);
  });

  test('the agents run as DaemonSet pods on every node, the nodes are Ready, kubernetes points at the fabric', async () => {
    const ds = JSON.parse(kubectl('get', 'daemonset', 'pontoon-agent', '-n', AGENT_NAMESPACE, '-o', 'json')) as { status: { desiredNumberScheduled: number; numberReady: number } };
    assert.equal(ds.status.desiredNumberScheduled, 3);
    assert.equal(ds.status.numberReady, 3);
    const agents = (await agentPods(client)).filter((p) => p.metadata.labels?.['pontoon.dev/component'] === 'flanneld');
    assert.deepEqual(agents.map((p) => p.spec.nodeName).sort(), ['n1', 'n2', 'n3']);
    assert.ok(agents.every((p) => p.spec.hostNetwork === true && isPodReady(p)));
    const nodes = await client.list<Node>(RESOURCE.nodes);
    assert.ok(nodes.items.every((n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True'));
    const endpoints = await client.get<Endpoints>(RESOURCE.endpoints, 'kubernetes', 'default');
    assert.deepEqual(endpoints?.subsets?.[0]?.addresses?.map((a) => a.ip), ['198.18.0.2']);
  });

  test('nginx-deployment: 3 replicas with containerPort 80 (busybox httpd as the command), reachable across nodes and through its Service', async () => {
    apply([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'nginx-deployment', labels: { app: 'nginx' } },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: 'nginx' } },
          template: {
            metadata: { labels: { app: 'nginx' } },
            spec: {
              containers: [
                {
                  name: 'nginx',
                  image: 'nginx:1.14.2',
                  // The pod's own page, in its own emptyDir: each answer names its pod.
                  command: [BUSYBOX, 'sh', '-c', `hostname > /www/index.html && exec ${BUSYBOX} httpd -f -p 80 -h /www`],
                  ports: [{ containerPort: 80 }],
                  volumeMounts: [{ name: 'www', mountPath: '/www' }],
                },
              ],
              volumes: [{ name: 'www', emptyDir: {} }],
            },
          },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'nginx' }, ports: [{ name: 'http', port: 80 }] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web-hl' }, spec: { clusterIP: 'None', selector: { app: 'nginx' }, ports: [{ name: 'http', port: 80 }] } },
    ]);
    kubectl('rollout', 'status', 'deployment/nginx-deployment', '--timeout=120s');
    const pods = await podsOf('app=nginx');
    assert.equal(pods.length, 3);
    apply([sleeper('client')]);
    kubectl('wait', '--for=condition=Ready', 'pod/client', '--timeout=60s');
    for (const pod of pods) {
      assert.equal(kubectl('exec', 'client', '--', BUSYBOX, 'wget', '-qO-', `http://${pod.status?.podIP ?? ''}/`).trim(), pod.metadata.name);
    }
    const clusterIP = JSON.parse(kubectl('get', 'service', 'web', '-o', 'json')).spec.clusterIP as string;
    const names = new Set(pods.map((p) => p.metadata.name));
    assert.ok(names.has(kubectl('exec', 'client', '--', BUSYBOX, 'wget', '-qO-', `http://${clusterIP}/`).trim()));
  });

  test('an exec liveness probe (cat /tmp/healthy) restarts the container once the file is removed', async () => {
    apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'liveness-exec', labels: { test: 'liveness' } },
        spec: {
          containers: [
            {
              name: 'liveness',
              image: 'registry.k8s.io/busybox',
              // The docs' 30 s shortened to 3; /tmp is the pod's own (an emptyDir).
              args: [BUSYBOX, 'sh', '-c', 'touch /tmp/healthy; sleep 3; rm -f /tmp/healthy; sleep 600'],
              livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 2 },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: {} }],
        },
      },
    ]);
    await waitUntil('the liveness probe to restart the container', 60_000, async () => {
      const pod = await client.get<Pod>(RESOURCE.pods, 'liveness-exec', 'default');
      return (pod?.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1;
    });
    const events = (await client.list<Event>(RESOURCE.events, 'default')).items.filter((e) => e.involvedObject.name === 'liveness-exec');
    assert.ok(events.some((e) => e.reason === 'Unhealthy' && /Liveness probe failed/.test(e.message ?? '')), events.map((e) => `${e.reason}: ${e.message}`).join('\n'));
  });

  test('the pi Job completes and its log holds pi to 2000 places', () => {
    apply([
      {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'pi' },
        spec: {
          backoffLimit: 4,
          template: { spec: { restartPolicy: 'Never', containers: [{ name: 'pi', image: 'perl:5.34.0', command: ['perl', '-Mbignum=bpi', '-wle', 'print bpi(2000)'] }] } },
        },
      },
    ]);
    kubectl('wait', '--for=condition=complete', 'job/pi', '--timeout=120s');
    const digits = kubectl('logs', 'job/pi').trim();
    assert.match(digits, /^3\.14159265358979323846/);
    assert.equal(digits.length, 2001);
  });

  test('a DaemonSet runs one pod on every node', async () => {
    apply([
      {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'node-sleeper' },
        spec: {
          selector: { matchLabels: { app: 'node-sleeper' } },
          template: { metadata: { labels: { app: 'node-sleeper' } }, spec: { containers: [{ name: 's', image: 'busybox', command: [BUSYBOX, 'sleep', '100000'] }] } },
        },
      },
    ]);
    kubectl('rollout', 'status', 'daemonset/node-sleeper', '--timeout=120s');
    assert.deepEqual((await podsOf('app=node-sleeper')).map((p) => p.spec.nodeName).sort(), ['n1', 'n2', 'n3']);
  });

  test('getent hosts sees the pod’s own hostname (its /etc/hosts)', async () => {
    const pod = await client.get<Pod>(RESOURCE.pods, 'client', 'default');
    const line = kubectl('exec', 'client', '--', 'getent', 'hosts', 'client').trim();
    assert.equal(line.split(/\s+/)[0], pod?.status?.podIP);
  });

  test('names resolve from a pod: getent and busybox nslookup through the search path, headless to every pod, SRV names the port', { todo: DNS_TODO }, async () => {
    if (DNS_TODO) return;
    const clusterIP = JSON.parse(kubectl('get', 'service', 'web', '-o', 'json')).spec.clusterIP as string;
    assert.equal(kubectl('exec', 'client', '--', 'getent', 'hosts', 'web').trim().split(/\s+/)[0], clusterIP);
    // busybox nslookup walks the whole search list and exits 1 once a later suffix is
    // NXDOMAIN, whatever the first answered (as against CoreDNS): read what it printed.
    const nslookup = (...args: string[]): string => kubectlResult(['exec', 'client', '--', BUSYBOX, 'nslookup', ...args]).stdout;
    const answer = nslookup('web');
    assert.match(answer, /Name:\s+web\.default\.svc\.cluster\.local/);
    assert.match(answer, new RegExp(`Address: ${clusterIP.replaceAll('.', '\\.')}\\b`));
    const podIPs = (await podsOf('app=nginx')).map((p) => p.status?.podIP ?? '').sort();
    const headless = nslookup('web-hl');
    assert.deepEqual([...headless.matchAll(/Address: (10\.244\.\d+\.\d+)/g)].map((m) => m[1]).sort(), podIPs);
    // busybox prints SRV as `service = <priority> <weight> <port> <target>`.
    assert.match(nslookup('-type=SRV', '_http._tcp.web.default.svc.cluster.local'), /service = \d+ \d+ 80 web\.default\.svc\.cluster\.local/);
  });

  test('deleting an agent pod: the DaemonSet brings it back while a ping across nodes keeps flowing', async () => {
    const pods = await podsOf('app=nginx');
    const clientPod = await client.get<Pod>(RESOURCE.pods, 'client', 'default');
    const target = pods.find((p) => p.spec.nodeName !== clientPod?.spec.nodeName);
    assert.ok(target?.spec.nodeName && target.status?.podIP);
    const old = (await agentPods(client, target.spec.nodeName)).find((p) => p.metadata.labels?.['pontoon.dev/component'] === 'flanneld');
    const ping = pingFrom('client', target.status.podIP, 40);
    await new Promise((r) => setTimeout(r, 1000));
    const replacement = await restartAgentPod(state, 'flanneld', target.spec.nodeName);
    assert.notEqual(replacement, old?.metadata.name);
    const result = await ping;
    assert.ok(result.transmitted >= 40, result.output);
    assert.equal(result.received, result.transmitted, `lost packets while the agent pod was recreated:\n${result.output}`);
  });

  test('cluster add-node: the 4th node gets its agents from the DaemonSets and runs pods on the pod network', async () => {
    const node = await addNode(state, { progress: () => undefined });
    const agents = await agentPods(client, node.name);
    assert.deepEqual(agents.filter(isPodReady).map((p) => p.metadata.labels?.['pontoon.dev/component']).sort(), ['flanneld', 'proxy']);
    apply([sleeper('on-new-node', { nodeName: node.name })]);
    kubectl('wait', '--for=condition=Ready', 'pod/on-new-node', '--timeout=60s');
    const nginx = (await podsOf('app=nginx'))[0];
    assert.equal(kubectl('exec', 'on-new-node', '--', BUSYBOX, 'wget', '-qO-', `http://${nginx?.status?.podIP ?? ''}/`).trim(), nginx?.metadata.name);
  });

  test('DNS works from a pod on the added node', { todo: DNS_TODO }, () => {
    if (DNS_TODO) return;
    const clusterIP = JSON.parse(kubectl('get', 'service', 'web', '-o', 'json')).spec.clusterIP as string;
    assert.equal(kubectl('exec', 'on-new-node', '--', 'getent', 'hosts', 'web').trim().split(/\s+/)[0], clusterIP);
  });

  test('a pod using in-cluster config (client-python) lists Services with its ServiceAccount token', async () => {
    const script = [
      'from kubernetes import client, config',
      'config.load_incluster_config()',
      'for s in client.CoreV1Api().list_service_for_all_namespaces().items: print(s.metadata.namespace + "/" + s.metadata.name)',
    ].join('\n');
    // Under RBAC a ServiceAccount reads only what it is bound to: `view` everywhere for this one.
    assert.match(kubectl('create', 'clusterrolebinding', 'incluster-view', '--clusterrole=view', '--serviceaccount=default:default'), /created/);
    apply([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'incluster' }, spec: { restartPolicy: 'Never', containers: [{ name: 'py', image: 'python', command: ['/usr/bin/python3', '-c', script] }] } }]);
    await waitUntil('the in-cluster pod to finish', 90_000, async () => {
      const phase = (await client.get<Pod>(RESOURCE.pods, 'incluster', 'default'))?.status?.phase;
      return phase === 'Succeeded' || phase === 'Failed';
    });
    const output = kubectl('logs', 'incluster');
    assert.equal((await client.get<Pod>(RESOURCE.pods, 'incluster', 'default'))?.status?.phase, 'Succeeded', output);
    const listed = output.trim().split('\n').sort();
    assert.ok(listed.includes('default/kubernetes') && listed.includes('default/web') && listed.includes('default/web-hl'), output);
  });

  test('bad input: a Secret over 1 MiB is a 422 and is not created', async () => {
    const file = join(home, 'big');
    writeFileSync(file, Buffer.alloc(1024 * 1024 + 1, 'x'));
    const result = kubectlResult(['create', 'secret', 'generic', 'big', `--from-file=big=${file}`]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /is invalid/);
    assert.equal(await client.get(RESOURCE.secrets, 'big', 'default'), undefined);
  });

  test('bad input: a volume naming a missing ConfigMap leaves the pod waiting with a FailedMount event', async () => {
    apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'needs-config' },
        spec: {
          containers: [{ name: 'main', image: 'busybox', command: [BUSYBOX, 'sleep', '100000'], volumeMounts: [{ name: 'cfg', mountPath: '/cfg' }] }],
          volumes: [{ name: 'cfg', configMap: { name: 'does-not-exist' } }],
        },
      },
    ]);
    const event = await poll('a FailedMount event', async () => (await client.list<Event>(RESOURCE.events, 'default')).items.find((e) => e.involvedObject.name === 'needs-config' && e.reason === 'FailedMount'), { timeoutMs: 60_000 });
    assert.match(event.message ?? '', /does-not-exist/);
    const pod = await client.get<Pod>(RESOURCE.pods, 'needs-config', 'default');
    assert.equal(pod?.status?.phase, 'Pending');
    assert.equal(pod?.status?.podIP, undefined);
  });

  test('bad input: exec into a missing container is a Status error', () => {
    const result = kubectlResult(['exec', 'client', '-c', 'nope', '--', 'true']);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /container nope is not valid for pod client|Error from server/);
  });
});
