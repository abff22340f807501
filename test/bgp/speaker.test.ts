/**
 * `pontoon bgp` as users run it: two speakers, each a process in its own namespace, joined
 * by a veth. Routes are exchanged (IPv4 and IPv6) and installed with our protocol number;
 * a graceful restart of either side never removes a route from either kernel (`ip monitor
 * route` records every deletion while it happens); a bad OPEN is answered with its
 * NOTIFICATION and the session stays down.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { controlRequest, type RouteView, type SpeakerStatus } from '../../src/bgp/control.js';
import { RTPROT_PONTOON_BGP } from '../../src/bgp/kernel.js';
import { run } from '../../src/lib/exec.js';
import { ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const CLI = join(ROOT, 'dist', 'cli', 'pontoon.cjs');
const lab = new Lab('bgpspk');
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
  lab.cleanup();
});

interface Side {
  netns: string;
  v4: string;
  v6: string;
  config: string;
  socket: string;
  process?: ChildProcess;
  log: string;
}

function makePair(tag: string): [Side, Side] {
  const a = lab.netns(`${tag}a`);
  const b = lab.netns(`${tag}b`);
  run('ip', ['link', 'add', 'bgp0', 'netns', a, 'type', 'veth', 'peer', 'name', 'bgp0', 'netns', b]);
  const sides: [Side, Side] = [
    { netns: a, v4: '198.18.7.1', v6: 'fd00:198:18:7::1', config: lab.tempDir(`${tag}a`), socket: '', log: '' },
    { netns: b, v4: '198.18.7.2', v6: 'fd00:198:18:7::2', config: lab.tempDir(`${tag}b`), socket: '', log: '' },
  ];
  for (const side of sides) {
    run('ip', ['addr', 'add', `${side.v4}/24`, 'dev', 'bgp0'], { netns: side.netns });
    run('ip', ['addr', 'add', `${side.v6}/64`, 'dev', 'bgp0', 'nodad'], { netns: side.netns });
    run('ip', ['link', 'set', 'bgp0', 'up'], { netns: side.netns });
    run('ip', ['link', 'set', 'lo', 'up'], { netns: side.netns });
    side.socket = join(side.config, 'bgp.sock');
    side.log = join(side.config, 'bgp.log');
  }
  return sides;
}

function configure(side: Side, config: Record<string, unknown>): void {
  writeFileSync(join(side.config, 'bgp.yaml'), toYaml({ routerId: side.v4, listenAddress: side.v4, holdTime: 9, controlSocket: side.socket, nextHops: { ipv4: side.v4, ipv6: side.v6 }, ...config }));
}

function start(side: Side): void {
  const log = openSync(side.log, 'a');
  const child = spawn('ip', ['netns', 'exec', side.netns, process.execPath, CLI, 'bgp', '--config', join(side.config, 'bgp.yaml')], { stdio: ['ignore', log, log] });
  closeSync(log);
  children.add(child);
  child.once('exit', () => children.delete(child));
  side.process = child;
}

async function stop(side: Side, signal: NodeJS.Signals): Promise<void> {
  const child = side.process;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // `ip netns exec` execs node, so the pid is the speaker's.
  child.kill(signal);
  await exited;
}

const status = async (side: Side): Promise<SpeakerStatus | undefined> => (await controlRequest(side.socket, 'status').catch(() => undefined)) as SpeakerStatus | undefined;
const routes = async (side: Side): Promise<RouteView[]> => ((await controlRequest(side.socket, 'routes').catch(() => [])) as RouteView[]) ?? [];

async function established(side: Side): Promise<void> {
  await poll(`${side.netns} Established`, async () => (await status(side))?.peers.every((p) => p.state === 'Established') === true, { timeoutMs: 30_000, intervalMs: 100, describe: () => JSON.stringify(side) });
}

const kernelRoutes = (side: Side, family: '-4' | '-6'): string => run('ip', [family, 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)], { netns: side.netns });

/** Records every route deletion in a namespace until stopped. */
function watchDeletions(netns: string): { stop: () => string[] } {
  const monitor = spawn('ip', ['-n', netns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.add(monitor);
  let text = '';
  monitor.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return {
    stop: () => {
      monitor.kill();
      children.delete(monitor);
      return text.split('\n').filter((line) => line.startsWith('Deleted') && line.includes('10.244.'));
    },
  };
}

describe('pontoon bgp between two namespaces', () => {
  test('iBGP: IPv4 and IPv6 prefixes both ways, installed with our protocol; graceful restarts keep every route', async () => {
    const [a, b] = makePair('gr');
    configure(a, { localAsn: 64512, metricsAddress: '127.0.0.1:9179', announce: ['10.244.1.0/24', 'fd00:10:244:1::/64'], peers: [{ address: b.v4, asn: 64512 }] });
    configure(b, { localAsn: 64512, announce: ['10.244.2.0/24', 'fd00:10:244:2::/64'], peers: [{ address: a.v4, asn: 64512 }] });
    start(a);
    start(b);
    await established(a);
    await established(b);
    await poll('routes in both kernels', () => kernelRoutes(a, '-4').includes('10.244.2.0/24 via 198.18.7.2') && kernelRoutes(b, '-4').includes('10.244.1.0/24 via 198.18.7.1') && kernelRoutes(a, '-6').includes('fd00:10:244:2::/64 via fd00:198:18:7::2') && kernelRoutes(b, '-6').includes('fd00:10:244:1::/64 via fd00:198:18:7::1'), { timeoutMs: 15_000, intervalMs: 100 });
    const learned = (await routes(a)).find((r) => r.prefix === '10.244.2.0/24');
    assert.equal(learned?.from, b.v4);
    assert.equal(learned?.localPref, 100);
    const metrics = run('curl', ['-s', 'http://127.0.0.1:9179/metrics'], { netns: a.netns });
    assert.match(metrics, /pontoon_bgp_sessions\{state="Established"\} 1/);
    assert.match(metrics, /pontoon_bgp_prefixes_accepted\{peer="198\.18\.7\.2"\} 2/);
    assert.match(metrics, /pontoon_bgp_rib_prefixes\{family="ipv4"\} 2/);

    // b restarts (SIGTERM: no Cease, routes kept): neither kernel loses a route meanwhile.
    const deletionsA = watchDeletions(a.netns);
    const deletionsB = watchDeletions(b.netns);
    await stop(b, 'SIGTERM');
    await poll('a keeps b’s routes stale', async () => (await status(a))?.peers[0]?.staleRoutes === 2, { timeoutMs: 15_000, intervalMs: 100 });
    assert.match(kernelRoutes(b, '-4'), /10\.244\.1\.0\/24 via 198\.18\.7\.1/, 'the stopped speaker left its routes in place');
    start(b);
    await established(a);
    await poll('stale routes replaced after End-of-RIB', async () => (await status(a))?.peers[0]?.staleRoutes === 0, { timeoutMs: 15_000, intervalMs: 100 });
    await poll('b synced its kernel after End-of-RIB', () => run('ip', ['-4', 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)], { netns: b.netns }).includes('10.244.1.0/24'), { timeoutMs: 15_000, intervalMs: 100 });
    // One more UPDATE from a and its effect on b prove b is live, not just holding old routes.
    configure(a, { localAsn: 64512, announce: ['10.244.1.0/24', 'fd00:10:244:1::/64', '10.244.9.0/24'], peers: [{ address: b.v4, asn: 64512 }] });
    await stop(a, 'SIGTERM');
    start(a);
    await established(b);
    await poll('the new prefix reaches b', () => kernelRoutes(b, '-4').includes('10.244.9.0/24'), { timeoutMs: 15_000, intervalMs: 100 });
    assert.deepEqual(deletionsA.stop(), [], 'a removed no route while b restarted, nor while it restarted itself');
    assert.deepEqual(deletionsB.stop(), [], 'b removed no route through either restart');
    await stop(a, 'SIGKILL');
    await stop(b, 'SIGKILL');
  });

  test('a table transfer streams into the kernel: no kernel apply waits for the whole burst', async () => {
    // 12k prefixes reach b as one burst of UPDATEs, read without a turn of the event loop
    // between them. Batching kernel writes per turn held every route back until the whole
    // burst was in the RIB (one apply of 12k); a long burst now flushes every few thousand,
    // and the first flush's batch is sent at once (from a threadpool thread) while the rest
    // of the burst is read; later flushes join the next batch.
    const count = 12_000;
    const announce = Array.from({ length: count }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);
    const [a, b] = makePair('burst');
    configure(a, { localAsn: 64512, announce, peers: [{ address: b.v4, asn: 64512 }] });
    configure(b, { localAsn: 64512, peers: [{ address: a.v4, asn: 64512, passive: true }] });
    start(b);
    start(a);
    await established(b);
    await poll('every prefix in b’s kernel', () => kernelRoutes(b, '-4').split('\n').filter(Boolean).length === count, { timeoutMs: 30_000, intervalMs: 200 });
    const applies = readFileSync(b.log, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"synced kernel routes"'))
      .map((line) => JSON.parse(line) as { full: boolean; added: number; installed: number })
      .filter((entry) => entry.added > 0);
    assert.equal(applies.reduce((sum, entry) => sum + entry.added, 0), count, 'every route added exactly once');
    // The first: 4096 changes, plus at most one UPDATE's worth (a 4096-octet UPDATE holds ~1k /24s).
    const first = applies[0]?.added ?? 0;
    assert.ok(applies.length >= 2 && first <= 4096 + 1100, `kernel applies of ${applies.map((entry) => entry.added).join(', ')} routes`);
    await stop(a, 'SIGKILL');
    await stop(b, 'SIGKILL');
  });

  test('a wrong peer AS is answered with NOTIFICATION 2/2 (Bad Peer AS); the session stays down', async () => {
    const [a, b] = makePair('bad');
    configure(a, { localAsn: 64512, peers: [{ address: b.v4, asn: 65099 }] }); // b is 64512
    configure(b, { localAsn: 64512, peers: [{ address: a.v4, asn: 64512, passive: true }] });
    start(b);
    start(a);
    let lastSeen = '';
    await poll('b hears the NOTIFICATION', async () => {
      const [sa, sb] = [await status(a), await status(b)];
      lastSeen = `${JSON.stringify({ a: sa?.peers[0], b: sb?.peers[0] })}\n${readFileSync(a.log, 'utf8').slice(-1500)}\n${readFileSync(b.log, 'utf8').slice(-1500)}`;
      return /NOTIFICATION 2\/2/.test(sb?.peers[0]?.lastError ?? '');
    }, { timeoutMs: 20_000, intervalMs: 100, describe: () => 'b never reported a Bad Peer AS NOTIFICATION: ' + lastSeen });
    assert.match((await status(a))?.peers[0]?.lastError ?? '', /configured as AS 65099/);
    assert.notEqual((await status(a))?.peers[0]?.state, 'Established');
    await stop(a, 'SIGKILL');
    await stop(b, 'SIGKILL');
  });
});
