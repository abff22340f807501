/**
 * One cell of bench/proxy: a proxy sink of one mode programs N synthetic Services (× E
 * endpoints) into the namespace this process was started in (`ip netns exec NODE node
 * proxy-worker.js …`, so its tools run there directly, as the daemon's do), and reports
 * as JSON on stdout:
 *   - full sync into an empty kernel, and the reference: the same rules as text through the
 *     raw tool (`nft -f` / `iptables-restore --noflush`, and iptables-restore flushing a
 *     fresh namespace) into a fresh namespace
 *   - one Service added, one endpoint changed, one Service removed (partial syncs; median
 *     of 5), and the raw tool applying the same one-Service change to its own copy
 *   - rules and elements held, the process RSS
 *   - first-packet TCP connect latency from a pod to a Service, against the same connect
 *     to the pod itself before any rule was loaded
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { run } from '../../src/lib/exec.js';
import { parseIpNet, type Ip } from '../../src/lib/ip.js';
import { IptablesBook } from '../../src/lib/iptables-book.js';
import { TableBook } from '../../src/lib/nftables/book.js';
import { Nftables } from '../../src/lib/nftables/nftables.js';
import { transactionText } from '../../src/lib/nftables/text.js';
import { tcpSocketIn } from '../../src/lib/netns.js';
import type { ProxyConfig } from '../../src/proxy/config.js';
import { IptablesSink, serviceContribution as iptablesContribution } from '../../src/proxy/iptables/sink.js';
import { sharedChains, staticContribution as iptablesStatic } from '../../src/proxy/iptables/rules.js';
import { SystemIptables } from '../../src/proxy/iptables/system.js';
import { servicePortKey, type Endpoint, type ServiceEntry, type ServicePort } from '../../src/proxy/model.js';
import { NFT_TABLE, staticContribution as nftStatic } from '../../src/proxy/nftables/rules.js';
import { EndpointBlockAllocator, NftablesSink, serviceContribution as nftContribution } from '../../src/proxy/nftables/sink.js';
import type { RuleSink } from '../../src/proxy/sink.js';
import { median, summarizeLatencies, type LatencySummary } from './stats.js';

export interface ProxyCell {
  mode: 'nftables' | 'iptables';
  services: number;
  endpoints: number;
  fullSyncMs: number;
  /** The raw tool loading the same full-sync text into a fresh namespace. */
  rawFullMs: number;
  /** iptables only: iptables-restore replacing a fresh namespace's tables (no --noflush). */
  rawFlushMs?: number;
  addServiceMs: number;
  changeEndpointMs: number;
  removeServiceMs: number;
  /** The raw tool applying the same one-Service addition to its copy. */
  rawAddServiceMs: number;
  /** A restarted proxy's (a fresh sink's) first full sync over the unchanged kernel state. */
  restartSyncMs: number;
  /** Chains that restart sync wrote (nftables: 0, it reconciles; iptables: all, it rewrites). */
  restartChainsWritten: number;
  rules: number;
  elements: number;
  rssMiB: number;
  /** Pod → Service (cluster IP), with the rules loaded. */
  connect: LatencySummary;
  /** Pod → the same endpoint pod directly, interleaved with the above (rules loaded). */
  connectDirect: LatencySummary;
  /** Pod → endpoint pod before any rule was loaded. */
  connectNoRules: LatencySummary;
}

const CONFIG: ProxyConfig = { clusterCidrs: new Map([[4, parseIpNet('10.128.0.0/9')]]), masqueradeAll: false, masqueradeMark: 0x4000, families: [4] };
const ip = (base: number, offset: number): Ip => ({ family: 4, value: BigInt(base + offset) });
const SERVICE_BASE = 0x0a600001; // 10.96.0.1
const ENDPOINT_BASE = 0x0a800001; // 10.128.0.1
const POD_SERVER = '10.255.255.2';
const POD_CLIENT = '10.255.255.3';

function syntheticPort(i: number): ServicePort {
  return {
    name: `bench/s${i}:http`,
    namespace: 'bench',
    service: `s${i}`,
    portName: 'http',
    protocol: 'TCP',
    port: 80,
    clusterIPs: [ip(SERVICE_BASE, i)],
    externalIPs: [],
    loadBalancerIPs: [],
    externalPolicyLocal: false,
    internalPolicyLocal: false,
  };
}

function entryOf(port: ServicePort, endpoints: Endpoint[]): ServiceEntry {
  return { ports: [port], endpoints: new Map([[servicePortKey(port), endpoints]]) };
}

const endpoint = (address: Ip): Endpoint => ({ ip: address, port: 8080, ready: true, serving: true, terminating: false, local: false });

function synthetic(services: number, perService: number): Map<string, ServiceEntry> {
  const entries = new Map<string, ServiceEntry>();
  for (let i = 0; i < services; i++) {
    const endpoints = Array.from({ length: perService }, (_, k) => endpoint(ip(ENDPOINT_BASE, i * perService + k)));
    entries.set(`bench/s${i}`, entryOf(syntheticPort(i), endpoints));
  }
  return entries;
}

function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

function medianOf(samples: number, fn: (i: number) => number): number {
  return median(Array.from({ length: samples }, (_, i) => fn(i)));
}

/** A pod: veth into the node's cni0 bridge, an address, a default route. */
function makePod(node: string, pod: string, address: string, index: number): void {
  run('ip', ['netns', 'add', pod]);
  run('ip', ['link', 'add', `vb${index}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
  run('ip', ['link', 'set', `vb${index}`, 'master', 'cni0', 'up']);
  run('ip', ['-n', pod, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  run('ip', ['-n', pod, 'link', 'set', 'eth0', 'up']);
  run('ip', ['-n', pod, 'link', 'set', 'lo', 'up']);
  run('ip', ['-n', pod, 'route', 'add', 'default', 'via', '10.255.255.1']);
  void node;
}

async function connectOnce(netns: string, host: string, port: number): Promise<number> {
  const socket = tcpSocketIn(netns, false);
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    socket.once('connect', () => {
      const elapsed = Number(process.hrtime.bigint() - start) / 1000;
      socket.destroy();
      resolve(elapsed);
    });
    socket.once('error', reject);
    socket.connect(port, host);
  });
}

/**
 * Connect latencies to each target, interleaved in rounds of ten so machine noise hits every
 * target alike; after a warm-up.
 */
async function connectLatencies(netns: string, targets: readonly { host: string; port: number }[], count: number): Promise<LatencySummary[]> {
  for (const { host, port } of targets) for (let i = 0; i < 50; i++) await connectOnce(netns, host, port);
  const samples = targets.map((): number[] => []);
  for (let round = 0; round < count / 10; round++) {
    for (const [i, { host, port }] of targets.entries()) for (let k = 0; k < 10; k++) samples[i]?.push(await connectOnce(netns, host, port));
  }
  return samples.map((list) => summarizeLatencies(list, 'connect latency'));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mode: { type: 'string' }, services: { type: 'string' }, endpoints: { type: 'string' }, node: { type: 'string' }, prefix: { type: 'string' }, connects: { type: 'string', default: '1000' } } });
  const mode = values.mode as 'nftables' | 'iptables';
  const services = Number(values.services);
  const perService = Number(values.endpoints);
  const prefix = values.prefix ?? 'bench-';
  const node = values.node ?? '';
  const entries = synthetic(services, perService);
  // The probe Service in the middle of the list (iptables walks KUBE-SERVICES in order):
  // one real endpoint, the server pod.
  const probeIndex = Math.floor(services / 2);
  const probePort = syntheticPort(probeIndex);
  entries.set(`bench/s${probeIndex}`, entryOf(probePort, [endpoint({ family: 4, value: 0x0affff02n })]));
  const probeIp = `10.96.${((SERVICE_BASE + probeIndex) >> 8) & 255}.${(SERVICE_BASE + probeIndex) & 255}`;

  run('ip', ['link', 'add', 'cni0', 'type', 'bridge']);
  run('ip', ['addr', 'add', '10.255.255.1/24', 'dev', 'cni0']);
  run('ip', ['link', 'set', 'cni0', 'up']);
  run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  const server = `${prefix}srv`;
  const client = `${prefix}cli`;
  makePod(node, server, POD_SERVER, 1);
  makePod(node, client, POD_CLIENT, 2);
  const listener = spawn('ip', ['netns', 'exec', server, process.execPath, '-e', "require('net').createServer((s)=>s.destroy()).listen(8080)"], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [connectNoRules] = (await connectLatencies(client, [{ host: POD_SERVER, port: 8080 }], Number(values.connects))) as [LatencySummary];

    const nft = new Nftables();
    const sink: RuleSink = mode === 'nftables' ? new NftablesSink(CONFIG, nft) : new IptablesSink(CONFIG, new SystemIptables(nft));
    const fullSyncMs = timed(() => sink.sync(entries, 'all'));
    let report = sink.sync(entries, new Set());
    const [connect, connectDirect] = (await connectLatencies(client, [{ host: probeIp, port: 80 }, { host: POD_SERVER, port: 8080 }], Number(values.connects))) as [LatencySummary, LatencySummary];

    // Partial syncs.
    const extra = (k: number): [string, ServiceEntry] => [`bench/x${k}`, entryOf({ ...syntheticPort(services + k), name: `bench/x${k}:http`, service: `x${k}` }, [endpoint(ip(ENDPOINT_BASE, 900_000 + k))])];
    const addServiceMs = medianOf(5, (k) => {
      const [key, entry] = extra(k);
      entries.set(key, entry);
      return timed(() => sink.sync(entries, new Set([key])));
    });
    const changeEndpointMs = medianOf(5, (k) => {
      const key = `bench/s${(k * 7919) % services === probeIndex ? 1 : (k * 7919) % services}`;
      const entry = entries.get(key);
      if (!entry) throw new Error(`no ${key}`);
      const port = entry.ports[0] as ServicePort;
      const endpoints = [...(entry.endpoints.get(servicePortKey(port)) ?? [])];
      endpoints[0] = endpoint(ip(ENDPOINT_BASE, 950_000 + k));
      entries.set(key, entryOf(port, endpoints));
      return timed(() => sink.sync(entries, new Set([key])));
    });
    const removeServiceMs = medianOf(5, (k) => {
      const key = `bench/x${k}`;
      entries.delete(key);
      return timed(() => sink.sync(entries, new Set([key])));
    });
    report = sink.sync(entries, new Set());
    // A restart: a fresh sink's first full sync over what the kernel holds.
    const restarted: RuleSink = mode === 'nftables' ? new NftablesSink(CONFIG, nft) : new IptablesSink(CONFIG, new SystemIptables(nft));
    let restartReport = report;
    const restartSyncMs = timed(() => {
      restartReport = restarted.sync(entries, 'all');
    });
    const rules = [...report.rules.values()].reduce((a, b) => a + b, 0);
    const rssMiB = process.memoryUsage().rss / 1024 / 1024;
    nft.close();

    // The reference: the raw tool, the same rules, a fresh namespace.
    const full = sink.render(entries);
    const reference = `${prefix}ref`;
    run('ip', ['netns', 'add', reference]);
    let rawFullMs: number;
    let rawFlushMs: number | undefined;
    let rawAddServiceMs: number;
    try {
      if (mode === 'nftables') {
        rawFullMs = timed(() => run('nft', ['-f', '-'], { input: full, netns: reference, timeoutMs: 600_000 }));
        const book = new TableBook('ip', NFT_TABLE);
        const allocator = new EndpointBlockAllocator();
        const contribution = (key: string, entry: ServiceEntry): ReturnType<typeof nftContribution> => {
          const { blocks, done } = allocator.forService(key);
          const result = nftContribution(4, entry, CONFIG, blocks);
          done();
          return result;
        };
        book.plan(new Map([['', nftStatic(4, CONFIG)], ...[...entries].map(([key, entry]) => [key, contribution(key, entry)] as const)]), true).commit();
        rawAddServiceMs = medianOf(5, (k) => {
          const [key, entry] = extra(10 + k);
          const plan = book.plan(new Map([[key, contribution(key, entry)]]));
          plan.commit();
          const text = transactionText(plan.transaction);
          return timed(() => run('nft', ['-f', '-'], { input: text, netns: reference }));
        });
      } else {
        const script = full.replace(/^# .*\n/gm, '');
        rawFullMs = timed(() => run('iptables-restore', ['--noflush', '-w', '5'], { input: script, netns: reference, timeoutMs: 1_800_000 }));
        const flushNs = `${prefix}flush`;
        run('ip', ['netns', 'add', flushNs]);
        try {
          rawFlushMs = timed(() => run('iptables-restore', ['-w', '5'], { input: script, netns: flushNs, timeoutMs: 600_000 }));
        } finally {
          run('ip', ['netns', 'del', flushNs]);
        }
        const book = new IptablesBook(sharedChains(4));
        book.plan(new Map([['', iptablesStatic(CONFIG)], ...[...entries].map(([key, entry]) => [key, iptablesContribution(4, entry, CONFIG)] as const)]), true).commit();
        rawAddServiceMs = medianOf(5, (k) => {
          const [key, entry] = extra(10 + k);
          const plan = book.plan(new Map([[key, iptablesContribution(4, entry, CONFIG)]]));
          plan.commit();
          return timed(() => run('iptables-restore', ['--noflush', '-w', '5'], { input: plan.script, netns: reference }));
        });
      }
    } finally {
      run('ip', ['netns', 'del', reference]);
    }
    const cell: ProxyCell = {
      mode,
      services,
      endpoints: perService,
      fullSyncMs,
      rawFullMs,
      ...(rawFlushMs !== undefined ? { rawFlushMs } : {}),
      addServiceMs,
      changeEndpointMs,
      removeServiceMs,
      rawAddServiceMs,
      restartSyncMs,
      restartChainsWritten: restartReport.chainsWritten,
      rules,
      elements: report.elements,
      rssMiB,
      connect,
      connectDirect,
      connectNoRules,
    };
    process.stdout.write(`${JSON.stringify(cell)}\n`);
  } finally {
    listener.kill('SIGKILL');
    for (const pod of [server, client]) run('ip', ['netns', 'del', pod]);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : String(err));
  process.exitCode = 1;
});
