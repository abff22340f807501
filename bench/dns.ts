/**
 * Cluster DNS benchmark: `pontoon dns` serving 10k Services from a real apiserver, against
 * dnsmasq serving the same 10k names from an addn-hosts file, in the same run, both inside
 * one network namespace on loopback (127.0.0.1 batched, 127.0.0.2 dnsmasq, 127.0.0.3 the same server on --udp dgram), queried by dnsperf with the
 * same query file (every name once, shuffled, looped).
 *
 *   - rate: dnsperf at full load (100 queries outstanding) for --seconds, queries/s;
 *   - latency: dnsperf paced at --paced-qps with -v (one line per query with its latency),
 *     p50/p99 from those lines — p99 at full load is only queueing, so latency is measured
 *     where both servers keep up, the way a resolver sees them;
 *   - the scan-vs-dns-packet decode cost per query (why wire.ts scans instead of decoding).
 * Targets (issue 12): rate ≥ 1.0× dnsmasq's, p99 ≤ 1 ms.
 *
 * The apiserver's store is filled directly (Services with fixed cluster IPs, one
 * EndpointSlice each), which takes a second instead of 20k HTTP creates; `pontoon dns` then
 * lists and watches them through the apiserver like in a cluster.
 *
 * Both `pontoon dns` processes run with the node flags deploy/dns.yaml gives them (its
 * `command` between {{NODE}} and {{PONTOON}}), so the bench measures the server as deployed;
 * `--node-flags=...` overrides them for an A/B run (`--node-flags=`: none).
 *
 *   node build/bench/dns.js [--services 10000] [--seconds 10] [--paced-qps 5000] [--node-flags=...]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as dnsPacket from 'dns-packet';
import { RESOURCE } from '../src/api/resources.js';
import { storageKey } from '../src/apiserver/registry.js';
import type { Service } from '../src/api/types.js';
import { KubeClient } from '../src/client/client.js';
import { startApiServer } from '../src/apiserver/server.js';
import { MemoryStore } from '../src/apiserver/store/memory.js';
import { scanQuery } from '../src/dns/wire.js';
import { createLogger } from '../src/lib/log.js';
import { createNetns, deleteNetns } from '../src/lib/netns.js';
import { nodeFlagsFor } from './lib/node-flags.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';
import { percentile } from './lib/stats.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const NAMESPACE = 'bench';

interface PerfResult {
  qps: number;
  lost: number;
  latenciesMs: number[];
}

function serviceIp(i: number): string {
  const n = 0x0a600000 + 100 + i; // 10.96.0.100 + i, inside 10.96.0.0/12
  return [n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255].join('.');
}

async function fillStore(store: MemoryStore, services: number): Promise<void> {
  await store.create(storageKey(RESOURCE.namespaces, undefined, NAMESPACE), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
  for (let i = 0; i < services; i++) {
    const name = `svc${i}`;
    const ip = serviceIp(i);
    await store.create(storageKey(RESOURCE.services, NAMESPACE, name), {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: NAMESPACE, uid: `svc-${i}` },
      spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    } as never);
    await store.create(storageKey(RESOURCE.endpointslices, NAMESPACE, `${name}-a`), {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-a`, namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [`10.244.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    } as never);
  }
}

function dnsperf(netns: string, server: string, queryFile: string, seconds: number, extra: string[]): PerfResult {
  const result = spawnSync('ip', ['netns', 'exec', netns, 'dnsperf', '-s', server, '-d', queryFile, '-l', String(seconds), ...extra], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (result.status !== 0) throw new BenchError(`dnsperf against ${server} failed: ${result.stderr}`);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(result.stdout)?.[1]);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(result.stdout)?.[1] ?? 0);
  // -v lines: "> NOERROR svc1.bench.svc.cluster.local A 0.000123" (latency in seconds, last).
  const latenciesMs = result.stdout
    .split('\n')
    .filter((l) => l.startsWith('> '))
    .map((l) => Number(l.trim().split(/\s+/).at(-1)) * 1000)
    .filter((n) => Number.isFinite(n))
    .sort((a, b) => a - b);
  if (!Number.isFinite(qps)) throw new BenchError(`dnsperf printed no rate:\n${result.stdout}`);
  return { qps, lost, latenciesMs };
}

async function waitFor(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new BenchError(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await checkpoint();
  }
}

/** Per-query cost of finding the question: wire.ts's scan against dns-packet's full decode. */
function decodeCost(): { scanUs: number; decodeUs: number } {
  const message = dnsPacket.encode({ id: 1, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'svc1234.bench.svc.cluster.local', type: 'A' }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });
  const time = (fn: () => unknown): number => {
    for (let i = 0; i < 20_000; i++) fn();
    const n = 200_000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    return Number(process.hrtime.bigint() - start) / 1000 / n;
  };
  return { scanUs: time(() => scanQuery(message)), decodeUs: time(() => dnsPacket.decode(message)) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { services: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '10' }, 'paced-qps': { type: 'string', default: '5000' }, 'node-flags': { type: 'string' } } });
  const nodeFlags = nodeFlagsFor(values['node-flags'], 'dns.yaml', 'dns');
  const services = Number(values.services);
  const seconds = Number(values.seconds);
  const pacedQps = Number(values['paced-qps']);
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-bench-dns-'));
  const netns = `${RUN_PREFIX}dns`;
  const children: ChildProcess[] = [];
  createNetns(netns);
  const store = new MemoryStore();
  let api: Awaited<ReturnType<typeof startApiServer>> | undefined;
  try {
    process.stderr.write(`filling the store with ${services} Services + EndpointSlices ...\n`);
    await fillStore(store, services);
    const socketPath = join(dir, 'api.sock');
    api = await startApiServer({ store, listen: false, socketPath, log: createLogger('apiserver', { level: 'warn' }) });

    const names = Array.from({ length: services }, (_, i) => `svc${i}.${NAMESPACE}.svc.cluster.local`);
    const shuffled = names.map((n) => [Math.random(), n] as const).sort((a, b) => a[0] - b[0]).map(([, n]) => n);
    const queryFile = join(dir, 'queries.txt');
    writeFileSync(queryFile, shuffled.map((n) => `${n} A\n`).join(''));
    const hostsFile = join(dir, 'hosts');
    writeFileSync(hostsFile, names.map((n, i) => `${serviceIp(i)} ${n}\n`).join(''));

    const started = Date.now();
    const dns = spawn('ip', ['netns', 'exec', netns, process.execPath, ...nodeFlags, CLI, 'dns', '--server', `unix:${socketPath}`, '--listen', '127.0.0.1:53', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(dns);
    // The same server on Node's dgram socket (--udp dgram): what the batched loop replaced.
    const dgram = spawn('ip', ['netns', 'exec', netns, process.execPath, ...nodeFlags, CLI, 'dns', '--server', `unix:${socketPath}`, '--listen', '127.0.0.3:53', '--udp', 'dgram', '--metrics-port', '19153', '--health-port', '18080', '--ready-port', '18181', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(dgram);
    const dnsmasq = spawn('ip', ['netns', 'exec', netns, 'dnsmasq', '--no-daemon', '-C', '/dev/null', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`, '--listen-address=127.0.0.2', '--bind-interfaces', '--port=53', '--local-ttl=5', '--pid-file=', '--user=root'], { stdio: 'ignore' });
    children.push(dnsmasq);
    const last = names[services - 1] ?? '';
    const answers = (server: string): boolean => spawnSync('ip', ['netns', 'exec', netns, 'dig', `@${server}`, '+short', '+tries=1', '+time=1', last], { encoding: 'utf8' }).stdout.trim() === serviceIp(services - 1);
    await waitFor('pontoon dns to serve every Service', () => answers('127.0.0.1'), 120_000);
    const syncSeconds = (Date.now() - started) / 1000;
    await waitFor('dnsmasq', () => answers('127.0.0.2'), 20_000);
    await waitFor('pontoon dns --udp dgram', () => answers('127.0.0.3'), 120_000);
    const rss = Number(/VmRSS:\s+(\d+)/.exec(spawnSync('bash', ['-c', `cat /proc/$(pgrep -P ${dns.pid} || echo ${dns.pid})/status`], { encoding: 'utf8' }).stdout)?.[1] ?? 0) / 1024;

    // Warm both (first touches, JIT), then alternate so both see the same machine.
    dnsperf(netns, '127.0.0.1', queryFile, 2, []);
    dnsperf(netns, '127.0.0.2', queryFile, 2, []);
    dnsperf(netns, '127.0.0.3', queryFile, 2, []);
    const rate = { pontoon: [] as number[], dnsmasq: [] as number[], dgram: [] as number[] };
    for (let round = 0; round < 2; round++) {
      rate.pontoon.push(dnsperf(netns, '127.0.0.1', queryFile, seconds / 2, []).qps);
      await checkpoint();
      rate.dnsmasq.push(dnsperf(netns, '127.0.0.2', queryFile, seconds / 2, []).qps);
      await checkpoint();
      rate.dgram.push(dnsperf(netns, '127.0.0.3', queryFile, seconds / 2, []).qps);
      await checkpoint();
    }
    const paced = {
      pontoon: dnsperf(netns, '127.0.0.1', queryFile, seconds / 2, ['-Q', String(pacedQps), '-v']),
      dnsmasq: dnsperf(netns, '127.0.0.2', queryFile, seconds / 2, ['-Q', String(pacedQps), '-v']),
      dgram: dnsperf(netns, '127.0.0.3', queryFile, seconds / 2, ['-Q', String(pacedQps), '-v']),
    };
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const pontoonQps = sum(rate.pontoon);
    const dnsmasqQps = sum(rate.dnsmasq);
    const dgramQps = sum(rate.dgram);
    const p = (r: PerfResult, f: number): number => percentile(r.latenciesMs, f, 'latencies');
    const cost = decodeCost();

    // One Service created through the API at 10k: create request → its name answers.
    const client = new KubeClient({ server: `unix:${socketPath}` });
    const changeStarted = Date.now();
    const created = await client.create<Service>(RESOURCE.services, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'late', namespace: NAMESPACE }, spec: { ports: [{ port: 80 }] } } as Service);
    const lateName = `late.${NAMESPACE}.svc.cluster.local`;
    await waitFor('the new Service to answer', () => spawnSync('ip', ['netns', 'exec', netns, 'dig', '@127.0.0.1', '+short', '+tries=1', '+time=1', lateName], { encoding: 'utf8' }).stdout.trim() === created.spec.clusterIP, 20_000);
    const changeMs = Date.now() - changeStarted;

    console.log(`\n${services} Services; pontoon dns (node ${nodeFlags.join(' ') || 'without flags'}) served all of them ${syncSeconds.toFixed(1)} s after start, RSS ${rss.toFixed(0)} MiB`);
    console.log(`rate at full load (dnsperf -q 100, ${seconds} s each, two rounds alternating):`);
    console.log(`  pontoon dns  ${pontoonQps.toFixed(0)} q/s  (${rate.pontoon.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`  dnsmasq      ${dnsmasqQps.toFixed(0)} q/s  (${rate.dnsmasq.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`  --udp dgram  ${dgramQps.toFixed(0)} q/s  (${rate.dgram.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`  ratio        ${(pontoonQps / dnsmasqQps).toFixed(2)}× dnsmasq; batched ${(pontoonQps / dgramQps).toFixed(2)}× dgram`);
    console.log(`latency paced at ${pacedQps} q/s (dnsperf -Q ${pacedQps} -v):`);
    console.log(`  pontoon dns  p50 ${p(paced.pontoon, 0.5).toFixed(3)} ms  p99 ${p(paced.pontoon, 0.99).toFixed(3)} ms  (${paced.pontoon.latenciesMs.length} queries, ${paced.pontoon.lost} lost)`);
    console.log(`  dnsmasq      p50 ${p(paced.dnsmasq, 0.5).toFixed(3)} ms  p99 ${p(paced.dnsmasq, 0.99).toFixed(3)} ms  (${paced.dnsmasq.latenciesMs.length} queries, ${paced.dnsmasq.lost} lost)`);
    console.log(`  --udp dgram  p50 ${p(paced.dgram, 0.5).toFixed(3)} ms  p99 ${p(paced.dgram, 0.99).toFixed(3)} ms  (${paced.dgram.latenciesMs.length} queries, ${paced.dgram.lost} lost)`);
    console.log(`one Service created through the API → answered: ${changeMs} ms (polling dig every 200 ms; includes the create)`);
    console.log(`question scan per query: wire.ts ${cost.scanUs.toFixed(2)} µs, dns-packet decode ${cost.decodeUs.toFixed(2)} µs`);
    console.log('\ntargets:');
    console.log(`  ${pontoonQps >= dnsmasqQps ? 'met   ' : 'MISSED'} rate ≥ 1.0× dnsmasq: ${(pontoonQps / dnsmasqQps).toFixed(2)}×`);
    console.log(`  ${p(paced.pontoon, 0.99) <= 1 ? 'met   ' : 'MISSED'} p99 ≤ 1 ms: ${p(paced.pontoon, 0.99).toFixed(3)} ms`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((resolve) => c.once('exit', resolve)) : undefined)));
    await api?.close();
    deleteNetns(netns);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main, () => undefined);
