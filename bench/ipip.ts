/**
 * IPIP data-path benchmark: pod→pod TCP throughput (iperf3, one stream) over three paths of
 * the same shape — fabric bridge, two node namespaces on it (198.18.0.11/.12), a pod behind a
 * veth on each — differing only in how the nodes carry pod traffic:
 *
 *   ipip     our userspace IPIP tunnel (src/bgp/ipip), device MTU 1480, pods MTU 1480
 *   vxlan    a kernel VXLAN device per node with static route/ARP/FDB entries, as flannel's
 *            vxlan backend installs them (iproute2), MTU 1450, pods MTU 1450
 *   plain    routes via the other node's underlay address (host-gw / Calico without
 *            encapsulation), MTU 1500: the ceiling
 *
 * Runs are alternated (ipip, vxlan, plain, ipip, ...) so load from elsewhere on the machine
 * lands on all three; the medians and the ratios ipip/vxlan and ipip/plain are printed.
 * "segs/super" is how many segments the userspace TSO cut per TUN read, "segs/record" how many
 * the receiver's GRO glued into one TUN write.
 *
 *   node build/bench/ipip.js [--seconds N] [--runs N]   (needs root)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { IpipTunnel } from '../src/bgp/ipip/index.js';
import { makeFabric, makeNamespace, plug } from '../src/cli/cluster/topology.js';
import { describeError } from '../src/lib/errors.js';
import { parseIp, parseIpNet } from '../src/lib/ip.js';
import { deleteNetnsWithPrefix } from '../src/lib/netns.js';
import { benchJsonLine, parseJson } from './lib/json.js';
import { BenchError, checkpoint, RUN_PREFIX, runBench } from './lib/run.js';

type PathKey = 'ipip' | 'vxlan' | 'plain';
const PATHS: readonly PathKey[] = ['ipip', 'vxlan', 'plain'];
const MTU: Record<PathKey, number> = { ipip: 1480, vxlan: 1450, plain: 1500 };
const VXLAN = { vni: 42, port: 4789, macs: ['02:00:0a:63:00:01', '02:00:0a:63:00:02'] } as const;
const IPERF_CONNECT_ATTEMPTS = 50;

interface Path {
  key: PathKey;
  clientNetns: string;
  serverNetns: string;
  serverIp: string;
  tunnels: IpipTunnel[];
}

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

const liveChildren = new Set<ChildProcess>();
/** Every tunnel started, even by a path that failed to build: all are stopped at the end. */
const startedTunnels: IpipTunnel[] = [];

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
    child.once('close', (status) => {
      liveChildren.delete(child);
      resolve({ status, stdout, stderr });
    });
  });
  return { child, done };
}

async function mustRunIn(netns: string, line: string): Promise<string> {
  const outcome = await start(netns, ['sh', '-c', line], 30_000).done;
  await checkpoint();
  if (outcome.status !== 0) throw new BenchError(`failed to run "${line}" in "${netns}": ${(outcome.stderr || outcome.stdout).trim()}`);
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

/** Fabric, two nodes, a pod on each; then the path's own way of joining the nodes. */
async function buildPath(key: PathKey): Promise<Path> {
  const fabric = makeNamespace(`${RUN_PREFIX}${key}-fab`);
  makeFabric(fabric, 1);
  const mtu = MTU[key];
  const nodes = [1, 2].map((i) => {
    const netns = makeNamespace(`${RUN_PREFIX}${key}-n${i}`, true);
    const pod = makeNamespace(`${RUN_PREFIX}${key}-n${i}-pod`);
    const underlayIp = `198.18.0.${10 + i}`;
    plug(fabric, 0, `n${i}`, netns, 'eth0', parseIpNet(`${underlayIp}/24`));
    return { i, netns, pod, underlayIp, block: `10.244.${i}.0/24`, podIp: `10.244.${i}.2` };
  });
  for (const node of nodes) {
    await mustRunIn(node.netns, `ip link add vpod mtu ${mtu} type veth peer name eth0 mtu ${mtu} netns ${node.pod}`);
    await mustRunIn(node.netns, `ip addr add 10.244.${node.i}.1/24 dev vpod && ip link set vpod up`);
    await mustRunIn(node.pod, `ip addr add ${node.podIp}/24 dev eth0 && ip link set eth0 up && ip route add default via 10.244.${node.i}.1`);
  }
  const tunnels: IpipTunnel[] = [];
  for (const node of nodes) {
    const peer = nodes.find((n) => n !== node);
    if (!peer) throw new BenchError('failed to build the path: no peer node');
    if (key === 'plain') {
      await mustRunIn(node.netns, `ip route add ${peer.block} via ${peer.underlayIp}`);
    } else if (key === 'vxlan') {
      const vtep = `10.244.${peer.i}.0`;
      await mustRunIn(node.netns, `ip link add vx0 address ${VXLAN.macs[node.i - 1]} type vxlan id ${VXLAN.vni} dstport ${VXLAN.port} local ${node.underlayIp} dev eth0 nolearning`);
      await mustRunIn(node.netns, `ip link set vx0 mtu ${mtu} up && ip addr add 10.244.${node.i}.0/32 dev vx0`);
      await mustRunIn(node.netns, `ip neigh add ${vtep} lladdr ${VXLAN.macs[peer.i - 1]} dev vx0 nud permanent`);
      await mustRunIn(node.netns, `bridge fdb append ${VXLAN.macs[peer.i - 1]} dev vx0 dst ${peer.underlayIp} self permanent`);
      await mustRunIn(node.netns, `ip route add ${peer.block} via ${vtep} dev vx0 onlink`);
    } else {
      const tunnel = new IpipTunnel({ netns: node.netns, underlayAddress: parseIp(node.underlayIp), block: parseIpNet(node.block) });
      tunnels.push(tunnel);
      startedTunnels.push(tunnel);
      await tunnel.start();
      tunnel.setPeer(parseIpNet(peer.block), parseIp(peer.underlayIp));
      await mustRunIn(node.netns, `ip route add ${peer.block} dev ${tunnel.deviceName}`);
    }
  }
  const [client, server] = nodes;
  if (!client || !server) throw new BenchError('failed to build the path: nodes missing');
  const ping = await start(client.pod, ['ping', '-c', '3', '-i', '0.2', '-W', '2', server.podIp]).done;
  if (ping.status !== 0) throw new BenchError(`failed to reach ${server.podIp} over ${key}: ${ping.stdout.trim()}`);
  return { key, clientNetns: client.pod, serverNetns: server.pod, serverIp: server.podIp, tunnels };
}

async function iperf(path: Path, seconds: number): Promise<{ bitsPerSecond: number; retransmits: number }> {
  const server = start(path.serverNetns, ['iperf3', '-s', '-1']);
  try {
    let lastOutput = '';
    for (let attempt = 0; attempt < IPERF_CONNECT_ATTEMPTS; attempt++) {
      const client = await start(path.clientNetns, ['iperf3', '-c', path.serverIp, '-t', String(seconds), '-J'], (seconds + 30) * 1000).done;
      await checkpoint();
      const report = parseJson(client.stdout);
      const bitsPerSecond = field(report, 'end', 'sum_received', 'bits_per_second');
      if (client.status === 0 && typeof bitsPerSecond === 'number') {
        const retransmits = field(report, 'end', 'sum_sent', 'retransmits');
        return { bitsPerSecond, retransmits: typeof retransmits === 'number' ? retransmits : 0 };
      }
      lastOutput = String(field(report, 'error') ?? (client.stderr || client.stdout)).trim();
      if (!/connection refused/i.test(lastOutput)) break;
      await sleep(100);
    }
    throw new BenchError(`failed to run iperf3 over ${path.key} to ${path.serverIp}: ${lastOutput}`);
  } finally {
    server.child.kill('SIGKILL');
    await server.done.catch(() => undefined);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

const gbits = (bitsPerSecond: number): string => (bitsPerSecond / 1e9).toFixed(2);

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { seconds: { type: 'string' }, runs: { type: 'string' } }, strict: true });
  const seconds = Number(values.seconds ?? 5);
  const runs = Number(values.runs ?? 2);
  if (!Number.isInteger(seconds) || seconds < 1) throw new BenchError(`--seconds must be a positive integer, got ${JSON.stringify(values.seconds)}`);
  if (!Number.isInteger(runs) || runs < 1) throw new BenchError(`--runs must be a positive integer, got ${JSON.stringify(values.runs)}`);
  const loadBefore = loadavg();
  const paths: Path[] = [];
  try {
    for (const key of PATHS) {
      process.stderr.write(`building ${key} ...\n`);
      paths.push(await buildPath(key));
    }
    const samples = new Map<PathKey, { bitsPerSecond: number; retransmits: number }[]>(PATHS.map((key) => [key, []]));
    for (let run = 0; run < runs; run++) {
      for (const path of paths) {
        process.stderr.write(`  run ${run + 1} ${path.key} ...`);
        const sample = await iperf(path, seconds);
        samples.get(path.key)?.push(sample);
        process.stderr.write(` ${gbits(sample.bitsPerSecond)} Gbit/s, ${sample.retransmits} retransmits\n`);
      }
    }
    const rate = (key: PathKey): number => median((samples.get(key) ?? []).map((s) => s.bitsPerSecond));
    const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ');
    const loadAfter = loadavg();
    console.log(`IPIP data path: iperf3 -t ${seconds}, one TCP stream, ${runs} runs per path (alternated), node ${process.version}, ${cpus().length} cores`);
    console.log(`load average (1/5/15 min): before ${load(loadBefore)}, after ${load(loadAfter)}${(loadAfter[0] ?? 0) > cpus().length * 0.5 ? '  (busy machine: numbers are noisy)' : ''}`);
    console.log('');
    console.log(`${'path'.padEnd(28)} ${'Gbit/s'.padStart(7)}  runs`);
    const labels: Record<PathKey, string> = { ipip: 'userspace IPIP (ours)', vxlan: 'kernel VXLAN', plain: 'plain routing (ceiling)' };
    for (const key of PATHS) {
      const list = samples.get(key) ?? [];
      console.log(`${labels[key].padEnd(28)} ${gbits(rate(key)).padStart(7)}  ${list.map((s) => gbits(s.bitsPerSecond)).join(', ')}  (MTU ${MTU[key]})`);
    }
    const ipip = paths.find((p) => p.key === 'ipip');
    const [sender, receiver] = ipip?.tunnels ?? [];
    if (sender && receiver) {
      const tx = sender.stats();
      const rx = receiver.stats();
      const perSuper = tx.superPackets > 0 ? (tx.sentPackets / tx.superPackets).toFixed(1) : '-';
      const perRecord = rx.coalescedRecords > 0 ? (rx.coalescedSegments / rx.coalescedRecords).toFixed(1) : '-';
      console.log(`  ipip: n1 sent ${tx.sentPackets} packets from ${tx.tunReads} TUN reads (segs/super ${perSuper}, send errors ${tx.sendErrors}); n2 received ${rx.receivedPackets}, wrote ${rx.tunWrites} (segs/record ${perRecord})`);
    }
    console.log('');
    const ratioVxlan = rate('ipip') / rate('vxlan');
    const ratioPlain = rate('ipip') / rate('plain');
    console.log(`ipip / vxlan  ${ratioVxlan.toFixed(2)}x`);
    console.log(`ipip / plain  ${ratioPlain.toFixed(2)}x`);
    console.log(benchJsonLine('ipip', { seconds, runs, gbps: Object.fromEntries(PATHS.map((key) => [key, rate(key) / 1e9])), ratioVxlan, ratioPlain }));
  } finally {
    for (const tunnel of startedTunnels) await tunnel.stop().catch((err: unknown) => console.error(`failed to stop an IPIP tunnel: ${describeError(err)}`));
    for (const { name, error } of deleteNetnsWithPrefix(RUN_PREFIX)) console.error(`failed to delete network namespace "${name}": ${describeError(error)}`);
  }
}

runBench(main, () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});
