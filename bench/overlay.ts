/**
 * Overlay data-path benchmark: pod↔pod TCP throughput (iperf3) and ping RTT for each flanneld
 * backend, as ratios to kernel paths measured in the same run on the same machine.
 *
 * The paths:
 *   veth pair            two fresh namespaces joined by one veth pair: the ceiling.
 *   routed underlay n↔n  node n1 → node n2's eth0 across the fabric (no pods): for context.
 *   hand routed pods     two nodes on a fabric, each with a bridge and a pod, plain routes via
 *                        the other node's underlay address and a masquerade rule like
 *                        --ip-masq's — made with iproute2/iptables: host-gw's reference.
 *   hand VXLAN pods      the same pods and bridges joined by a VTEP with static route/ARP/FDB
 *                        entries made with iproute2, MTU 1450: vxlan's reference.
 *   <backend>            `clusterUp` with 2 nodes × 1 pod; n1's pod → n2's pod.
 *
 * Reading the numbers: a backend's ratio is the median of its runs over the median of its
 * reference's, measured in the same round and alternated with it (ref, backend, ref, ...),
 * so a load spike from other work on the machine hits both. References have the same hops
 * as the pod path, so a ratio near 1 says Pontoon's control plane costs the data path
 * nothing. udp's reference is our own vxlan, from the vxlan round. Baseline rows show the
 * median over all rounds and their spread. "TX B/pkt" is bytes per packet the sending side's device
 * transmitted during the transfer: far above the MTU means GSO super-packets travel that hop
 * (for udp's flannel0, that TUN offloads are in effect).
 *
 *   node build/bench/overlay.js [--seconds N] [--backends host-gw,vxlan,udp]   (needs root)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { type BackendName as ClusterBackend, clusterDown, clusterUp, type ClusterState } from '../src/cli/cluster/cluster.js';
/** The flannel backends this benchmark compares (bgp is measured by bench/ipip.ts and bench/bgp.ts). */
type BackendName = Exclude<ClusterBackend, 'bgp'>;
import { makeFabric, makeNamespace, netnsFile, plug } from '../src/cli/cluster/topology.js';
import { describeError } from '../src/lib/errors.js';
import { parseIpNet } from '../src/lib/ip.js';
import { deleteNetnsWithPrefix, openNetns, openRtnl } from '../src/lib/netns.js';
import { parseJson } from './lib/json.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

const BACKENDS: readonly BackendName[] = ['host-gw', 'vxlan', 'udp'];
const DEFAULT_SECONDS = 3;
/** Reference/backend pairs per round, alternated. */
const PAIRS = 4;
const PING_COUNT = 20;
const PING_INTERVAL_SECONDS = '0.05';
const IPERF_CONNECT_ATTEMPTS = 50;
const IPERF_RETRY_DELAY_MS = 100;
const TARGET_RATIO = { 'host-gw': 0.95, vxlan: 0.95, udp: 0.3 } as const satisfies Record<BackendName, number>;

/**
 * The hand-built references have the same shape as a cluster's pod path (pod veth → bridge on
 * the node → routed or VXLAN between nodes → bridge → pod veth) but are made by iproute2, so
 * the ratio says what Pontoon's control plane costs on top of the kernel path it sets up.
 * The VXLAN one mirrors flannel's VTEP bar the port: VNI 42, IANA port, MTU 1450.
 */
const HAND_VXLAN = { vni: 42, port: 4789, mtu: 1450, macs: ['02:00:0a:63:00:01', '02:00:0a:63:00:02'] } as const;
const HAND_POD_NET = { routed: '10.97', vxlan: '10.99' } as const;
const VETH_NET = '10.98.0';


type PathKey = 'veth' | 'underlay' | 'handRouted' | 'handVxlan' | BackendName;

interface Path {
  key: PathKey;
  label: string;
  clientNetns: string;
  serverNetns: string;
  serverIp: string;
  /** Device whose TX counters show the packet size on the hop that matters. */
  txDevice: string;
  /** Where `txDevice` lives when not in the client namespace (a pod's overlay device is on its node). */
  counterNetns?: string;
}

interface Sample {
  bitsPerSecond: number;
  retransmits: number;
  rttMs: number;
  txBytesPerPacket: number;
}

interface Round {
  backend: BackendName;
  samples: Map<PathKey, Sample[]>;
}

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function parseOptions(argv: string[]): { seconds: number; backends: BackendName[] } {
  const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string' }, backends: { type: 'string' } }, strict: true });
  const seconds = values.seconds === undefined ? DEFAULT_SECONDS : Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 1) throw new BenchError(`--seconds must be a positive integer, got ${JSON.stringify(values.seconds)}`);
  const backends: BackendName[] = [];
  for (const name of (values.backends ?? BACKENDS.join(',')).split(',')) {
    const backend = BACKENDS.find((b) => b === name.trim());
    if (!backend) throw new BenchError(`--backends takes a comma-separated subset of ${BACKENDS.join(',')}, got ${JSON.stringify(name)}`);
    if (!backends.includes(backend)) backends.push(backend);
  }
  return { seconds, backends };
}

/** Children we are waiting on (iperf3 runs for seconds): an interrupt kills them at once. */
const liveChildren = new Set<ChildProcess>();

function start(netns: string, argv: readonly string[], timeoutMs?: number): { child: ChildProcess; done: Promise<Outcome> } {
  const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
  liveChildren.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<Outcome>((resolve, reject) => {
    child.once('error', (err) => {
      liveChildren.delete(child);
      reject(new BenchError(`failed to run "${argv.join(' ')}" in "${netns}": ${err.message}`, { cause: err }));
    });
    child.once('close', (status, signal) => {
      liveChildren.delete(child);
      resolve({ status, signal, stdout, stderr });
    });
  });
  return { child, done };
}

async function runIn(netns: string, argv: readonly string[], timeoutMs = 30_000): Promise<Outcome> {
  const outcome = await start(netns, argv, timeoutMs).done;
  await checkpoint();
  return outcome;
}

async function mustRunIn(netns: string, argv: readonly string[]): Promise<string> {
  const outcome = await runIn(netns, argv);
  if (outcome.status !== 0) throw new BenchError(`failed to run "${argv.join(' ')}" in "${netns}": ${(outcome.stderr || outcome.stdout).trim()}`);
  return outcome.stdout;
}

function field(value: unknown, ...keys: string[]): unknown {
  let current = value;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}


async function txCounters(netns: string, device: string): Promise<{ bytes: number; packets: number }> {
  const links = parseJson(await mustRunIn(netns, ['ip', '-s', '-j', 'link', 'show', 'dev', device]));
  const tx = Array.isArray(links) ? field(links[0], 'stats64', 'tx') : undefined;
  const bytes = field(tx, 'bytes');
  const packets = field(tx, 'packets');
  if (typeof bytes !== 'number' || typeof packets !== 'number') throw new BenchError(`failed to read TX counters of "${device}" in "${netns}"`);
  return { bytes, packets };
}

/** Average RTT of PING_COUNT pings on an idle path; one ping first so ARP is not in it. */
async function pingRttMs(path: Path): Promise<number> {
  const warm = await runIn(path.clientNetns, ['ping', '-c', '1', '-W', '2', path.serverIp]);
  if (warm.status !== 0) throw new BenchError(`failed to reach ${path.serverIp} from "${path.clientNetns}" (${path.label}): ${warm.stdout.trim()}`);
  const output = await mustRunIn(path.clientNetns, ['ping', '-q', '-c', String(PING_COUNT), '-i', PING_INTERVAL_SECONDS, '-W', '2', path.serverIp]);
  const match = /= [\d.]+\/([\d.]+)\//.exec(output);
  if (!match?.[1]) throw new BenchError(`failed to parse ping output for ${path.label}: ${output.trim()}`);
  return Number(match[1]);
}

/** One iperf3 transfer; the client retries until the one-shot server listens. */
async function iperf(path: Path, seconds: number): Promise<{ bitsPerSecond: number; retransmits: number; txBytesPerPacket: number }> {
  const server = start(path.serverNetns, ['iperf3', '-s', '-1']);
  const counterNetns = path.counterNetns ?? path.clientNetns;
  try {
    let lastOutput = '';
    for (let attempt = 0; attempt < IPERF_CONNECT_ATTEMPTS; attempt++) {
      const before = await txCounters(counterNetns, path.txDevice);
      const client = await runIn(path.clientNetns, ['iperf3', '-c', path.serverIp, '-t', String(seconds), '-J'], (seconds + 30) * 1000);
      const report = parseJson(client.stdout);
      const bitsPerSecond = field(report, 'end', 'sum_received', 'bits_per_second');
      if (client.status === 0 && typeof bitsPerSecond === 'number') {
        const after = await txCounters(counterNetns, path.txDevice);
        const retransmits = field(report, 'end', 'sum_sent', 'retransmits');
        const packets = after.packets - before.packets;
        return {
          bitsPerSecond,
          retransmits: typeof retransmits === 'number' ? retransmits : 0,
          txBytesPerPacket: packets > 0 ? (after.bytes - before.bytes) / packets : 0,
        };
      }
      lastOutput = String(field(report, 'error') ?? (client.stderr || client.stdout)).trim();
      // Only "not listening yet" is worth another try; a transfer that broke midway is an error.
      if (!/connection refused/i.test(lastOutput)) break;
      await sleep(IPERF_RETRY_DELAY_MS);
    }
    throw new BenchError(`failed to run iperf3 over ${path.label} to ${path.serverIp}: ${lastOutput}`);
  } finally {
    server.child.kill('SIGKILL');
    await server.done.catch(() => undefined);
  }
}

async function measure(path: Path, seconds: number, round: Round): Promise<void> {
  process.stderr.write(`  ${path.label} ...`);
  const rttMs = await pingRttMs(path);
  const transfer = await iperf(path, seconds);
  const sample: Sample = { ...transfer, rttMs };
  const list = round.samples.get(path.key);
  if (list) list.push(sample);
  else round.samples.set(path.key, [sample]);
  process.stderr.write(` ${gbits(sample.bitsPerSecond)} Gbit/s, ${rttMs.toFixed(3)} ms, ${path.txDevice} TX ${sample.txBytesPerPacket.toFixed(0)} B/pkt\n`);
}

/** Two fresh namespaces joined by one veth pair, `${VETH_NET}.1` ↔ `.2`. */
function buildVethPair(): Path {
  const [a, b] = [makeNamespace(`${RUN_PREFIX}veth-a`), makeNamespace(`${RUN_PREFIX}veth-b`)];
  const peerNetnsFd = openNetns(netnsFile(b));
  const rtnlA = openRtnl(netnsFile(a));
  const rtnlB = openRtnl(netnsFile(b));
  try {
    rtnlA.createLink({ name: 'veth0', kind: 'veth', peer: { name: 'veth0', netnsFd: peerNetnsFd } });
    for (const [rtnl, host] of [[rtnlA, 1], [rtnlB, 2]] as const) {
      const link = rtnl.linkByName('veth0');
      if (!link) throw new BenchError('failed to create veth pair "veth0": it did not appear');
      rtnl.addAddress(link.index, parseIpNet(`${VETH_NET}.${host}/24`));
      rtnl.setUp(link.index);
    }
  } finally {
    rtnlB.close();
    rtnlA.close();
    closeSync(peerNetnsFd);
  }
  return { key: 'veth', label: 'veth pair', clientNetns: a, serverNetns: b, serverIp: `${VETH_NET}.2`, txDevice: 'veth0' };
}

/**
 * Two nodes on a fabric like the cluster's (same `makeFabric`/`plug`), each with a bridge and a
 * pod on it, joined either by plain routes via the other node's underlay address (what
 * host-gw installs) or by a VTEP with static route/ARP/FDB entries (what flannel's vxlan
 * installs) — all made with iproute2, not our netlink code, so the reference shares nothing
 * with what it judges.
 */
async function buildHandPath(kind: 'routed' | 'vxlan'): Promise<Path> {
  const tag = kind === 'routed' ? 'rt' : 'vx';
  const fabric = makeNamespace(`${RUN_PREFIX}${tag}-fabric`);
  makeFabric(fabric, 1);
  const net = HAND_POD_NET[kind];
  const nodes = [1, 2].map((i) => {
    const netns = makeNamespace(`${RUN_PREFIX}${tag}-n${i}`, true);
    const pod = makeNamespace(`${RUN_PREFIX}${tag}-n${i}-pod`);
    const underlayIp = `198.18.0.${10 + i}`;
    plug(fabric, 0, `n${i}`, netns, 'eth0', parseIpNet(`${underlayIp}/24`));
    return { i, netns, pod, underlayIp, mac: HAND_VXLAN.macs[i - 1] ?? '', subnet: `${net}.${i}.0/24`, gateway: `${net}.${i}.1`, podIp: `${net}.${i}.2` };
  });
  const mtu = kind === 'vxlan' ? HAND_VXLAN.mtu : 1500;
  for (const node of nodes) {
    await mustRunIn(node.netns, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await mustRunIn(node.netns, ['ip', 'addr', 'add', `${node.gateway}/24`, 'dev', 'br0']);
    await mustRunIn(node.netns, ['ip', 'link', 'set', 'br0', 'up']);
    await mustRunIn(node.netns, ['ip', 'link', 'add', 'vpod', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', node.pod]);
    await mustRunIn(node.netns, ['ip', 'link', 'set', 'vpod', 'master', 'br0', 'up']);
    await mustRunIn(node.pod, ['ip', 'addr', 'add', `${node.podIp}/24`, 'dev', 'eth0']);
    await mustRunIn(node.pod, ['ip', 'link', 'set', 'eth0', 'up']);
    await mustRunIn(node.pod, ['ip', 'route', 'add', 'default', 'via', node.gateway]);
    // The lab's flanneld runs with --ip-masq; the same kind of masquerade rule here puts
    // conntrack on both paths, so the ratio compares control planes, not NAT settings.
    await mustRunIn(node.netns, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', `${net}.0.0/16`, '!', '-d', `${net}.0.0/16`, '-j', 'MASQUERADE']);
  }
  for (const node of nodes) {
    const peer = nodes.find((n) => n !== node);
    if (!peer) throw new BenchError('failed to build the hand-built path: no peer node');
    if (kind === 'routed') {
      await mustRunIn(node.netns, ['ip', 'route', 'add', peer.subnet, 'via', peer.underlayIp]);
      continue;
    }
    const { vni, port } = HAND_VXLAN;
    const peerVtep = `${net}.${peer.i}.0`;
    await mustRunIn(node.netns, ['ip', 'link', 'add', 'vx0', 'address', node.mac, 'type', 'vxlan', 'id', String(vni), 'dstport', String(port), 'local', node.underlayIp, 'dev', 'eth0', 'nolearning']);
    await mustRunIn(node.netns, ['ip', 'link', 'set', 'vx0', 'mtu', String(mtu), 'up']);
    await mustRunIn(node.netns, ['ip', 'addr', 'add', `${net}.${node.i}.0/32`, 'dev', 'vx0']);
    await mustRunIn(node.netns, ['ip', 'neigh', 'add', peerVtep, 'lladdr', peer.mac, 'dev', 'vx0', 'nud', 'permanent']);
    await mustRunIn(node.netns, ['bridge', 'fdb', 'append', peer.mac, 'dev', 'vx0', 'dst', peer.underlayIp, 'self', 'permanent']);
    await mustRunIn(node.netns, ['ip', 'route', 'add', peer.subnet, 'via', peerVtep, 'dev', 'vx0', 'onlink']);
  }
  const [client, server] = nodes;
  if (!client || !server) throw new BenchError('failed to build the hand-built path: nodes missing');
  return {
    key: kind === 'routed' ? 'handRouted' : 'handVxlan',
    label: kind === 'routed' ? 'hand-built routed pods' : 'hand-built VXLAN pods',
    clientNetns: client.pod,
    serverNetns: server.pod,
    serverIp: server.podIp,
    txDevice: kind === 'routed' ? 'eth0' : 'vx0',
    counterNetns: client.netns,
  };
}

const OVERLAY_DEVICE: Record<BackendName, string> = { 'host-gw': 'eth0', vxlan: 'flannel.1', udp: 'flannel0' };

function clusterPaths(state: ClusterState): { underlay: Path; pods: Path } {
  const [n1, n2] = state.nodes;
  const p1 = n1?.pods[0];
  const p2 = n2?.pods[0];
  if (!n1 || !n2 || !p1 || !p2) throw new BenchError(`failed to find 2 nodes with a pod each in cluster "${state.name}"`);
  const backend = state.backend;
  if (backend === 'bgp') throw new BenchError('the overlay benchmark compares flannel backends; bench/ipip.ts measures bgp/IPIP');
  return {
    underlay: { key: 'underlay', label: 'routed underlay', clientNetns: n1.netns, serverNetns: n2.netns, serverIp: n2.underlayIp, txDevice: 'eth0' },
    pods: {
      key: backend,
      label: `${backend} pod↔pod`,
      clientNetns: p1.netns,
      serverNetns: p2.netns,
      serverIp: p2.ip,
      txDevice: OVERLAY_DEVICE[backend],
      counterNetns: n1.netns,
    },
  };
}

/**
 * One round per backend: the baselines that are not this backend's reference, then reference,
 * backend, reference again. For udp the reference is our vxlan, measured in its own round.
 */
async function runRound(backend: BackendName, seconds: number, veth: Path, handRouted: Path, handVxlan: Path, started: Set<string>): Promise<Round> {
  const name = `${RUN_PREFIX}${backend}`;
  process.stderr.write(`round ${backend}: cluster "${name}" up ...\n`);
  started.add(name);
  const state = await clusterUp({
    name,
    nodes: 2,
    backend,
    racks: 1,
    podsPerNode: 1,
    directRouting: false,
    leaseTtlSeconds: 3600,
    controlPlane: false,
    proxy: 'none',
    subnetStore: 'etcd',
    progress: () => undefined,
  });
  await checkpoint();
  const round: Round = { backend, samples: new Map() };
  try {
    const { underlay, pods } = clusterPaths(state);
    const reference = backend === 'host-gw' ? handRouted : backend === 'vxlan' ? handVxlan : undefined;
    for (const path of [veth, underlay, handRouted, handVxlan]) if (path !== reference) await measure(path, seconds, round);
    // Alternate reference and backend: a load spike from elsewhere lands on both, and the
    // medians below shrug off the odd outlier.
    for (let pair = 0; pair < PAIRS; pair++) {
      if (reference) await measure(reference, seconds, round);
      await measure(pods, seconds, round);
    }
    if (reference) await measure(reference, seconds, round);
  } finally {
    process.stderr.write(`round ${backend}: cluster down\n`);
    await clusterDown(name);
    started.delete(name);
  }
  return round;
}

function gbits(bitsPerSecond: number): string {
  return (bitsPerSecond / 1e9).toFixed(2);
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** Median throughput and RTT (robust to a noisy neighbour), mean of the counters. */
function meanSample(samples: readonly Sample[]): Sample {
  return {
    bitsPerSecond: median(samples.map((s) => s.bitsPerSecond)),
    retransmits: mean(samples.map((s) => s.retransmits)),
    rttMs: median(samples.map((s) => s.rttMs)),
    txBytesPerPacket: mean(samples.map((s) => s.txBytesPerPacket)),
  };
}

const REFERENCE_OF: Record<PathKey, { key: PathKey; label: string } | undefined> = {
  veth: undefined,
  underlay: { key: 'veth', label: 'veth pair' },
  handRouted: { key: 'veth', label: 'veth pair' },
  handVxlan: { key: 'veth', label: 'veth pair' },
  'host-gw': { key: 'handRouted', label: 'hand-built routed pods, same round' },
  vxlan: { key: 'handVxlan', label: 'hand-built VXLAN pods, same round' },
  udp: { key: 'vxlan', label: 'vxlan (ours)' },
};

function printReport(seconds: number, rounds: readonly Round[], loadBefore: number[], loadAfter: number[]): void {
  const all = (key: PathKey): Sample[] => rounds.flatMap((r) => r.samples.get(key) ?? []);
  const backendSample = (backend: BackendName): Sample | undefined => {
    const round = rounds.find((r) => r.backend === backend);
    const samples = round?.samples.get(backend);
    return samples && samples.length > 0 ? meanSample(samples) : undefined;
  };
  /** Baselines are judged against all rounds; a backend against the reference around it. */
  const referenceFor = (key: PathKey): Sample | undefined => {
    const reference = REFERENCE_OF[key];
    if (!reference) return undefined;
    if (key === 'udp') return backendSample('vxlan');
    const round = rounds.find((r) => r.backend === key);
    const samples = round ? round.samples.get(reference.key) : all(reference.key);
    return samples && samples.length > 0 ? meanSample(samples) : undefined;
  };

  const columns = [20, 8, 15, 8, 9, 7, 30];
  const row = (cells: readonly string[]): string =>
    cells.map((cell, i) => (i === 0 || i === cells.length - 1 ? cell.padEnd(columns[i] ?? 0) : cell.padStart(columns[i] ?? 0))).join(' ');
  const cores = cpus().length;
  const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ');

  console.log(`Overlay data path: iperf3 -t ${seconds} (one TCP stream) and ping -c ${PING_COUNT} -i ${PING_INTERVAL_SECONDS}, node ${process.version}, ${cores} cores`);
  console.log(`load average (1/5/15 min): before ${load(loadBefore)}, after ${load(loadAfter)}${(loadAfter[0] ?? 0) > cores * 0.5 ? '  (busy machine: numbers are noisy)' : ''}`);
  console.log('');
  console.log(row(['path', 'Gbit/s', 'spread', 'ratio', 'RTT ms', 'retr', 'TX B/pkt (device) / vs']));
  const keys: PathKey[] = ['veth', 'underlay', 'handRouted', 'handVxlan', ...BACKENDS.filter((b) => rounds.some((r) => r.backend === b))];
  for (const key of keys) {
    const samples = BACKENDS.includes(key as BackendName) ? (rounds.find((r) => r.backend === key)?.samples.get(key) ?? []) : all(key);
    if (samples.length === 0) continue;
    const value = meanSample(samples);
    const rates = samples.map((s) => s.bitsPerSecond);
    const spread = samples.length > 1 ? `${gbits(Math.min(...rates))}–${gbits(Math.max(...rates))}` : '';
    const reference = referenceFor(key);
    const ratio = reference ? `${(value.bitsPerSecond / reference.bitsPerSecond).toFixed(2)}x` : '—';
    const labels: Record<string, [string, string]> = {
      veth: ['veth pair (ceiling)', 'veth0'],
      underlay: ['routed underlay n↔n', 'eth0'],
      handRouted: ['hand routed pods', 'n1 eth0'],
      handVxlan: ['hand VXLAN pods', 'n1 vx0'],
    };
    const [label, device] = labels[key] ?? [`${key} pod↔pod`, `n1 ${OVERLAY_DEVICE[key as BackendName]}`];
    const referenceNote = REFERENCE_OF[key] ? ` / ${REFERENCE_OF[key]?.label}` : '';
    console.log(row([label, gbits(value.bitsPerSecond), spread, ratio, value.rttMs.toFixed(3), value.retransmits.toFixed(0), `${value.txBytesPerPacket.toFixed(0)} (${device})${referenceNote}`]));
  }
  console.log('');
  for (const backend of BACKENDS) {
    const value = backendSample(backend);
    if (!value) continue;
    const reference = referenceFor(backend);
    const target = TARGET_RATIO[backend];
    const what = `${backend} >= ${target}x ${REFERENCE_OF[backend]?.label.replace(', same round', '')}`;
    if (!reference) {
      console.log(`${what.padEnd(46)} n/a (reference not measured)`);
      continue;
    }
    const ratio = value.bitsPerSecond / reference.bitsPerSecond;
    console.log(`${what.padEnd(46)} ${ratio.toFixed(2)}x  ${ratio >= target ? 'PASS' : 'MISS'}`);
  }
}

/** Tears down every cluster still up and deletes every namespace with our prefix. */
async function cleanup(started: ReadonlySet<string>): Promise<void> {
  for (const name of started) {
    try {
      await clusterDown(name);
    } catch (err) {
      console.error(`failed to bring down cluster "${name}": ${describeError(err)}`);
    }
  }
  for (const { name, error } of deleteNetnsWithPrefix(RUN_PREFIX)) {
    console.error(`failed to delete network namespace "${name}": ${describeError(error)}`);
  }
}

async function main(): Promise<void> {
  const { seconds, backends } = parseOptions(process.argv.slice(2));
  const started = new Set<string>();
  const loadBefore = loadavg();
  try {
    const veth = buildVethPair();
    const handRouted = await buildHandPath('routed');
    const handVxlan = await buildHandPath('vxlan');
    const rounds: Round[] = [];
    for (const backend of backends) rounds.push(await runRound(backend, seconds, veth, handRouted, handVxlan, started));
    printReport(seconds, rounds, loadBefore, loadavg());
  } finally {
    await cleanup(started);
  }
}

runBench(main, () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});
