/**
 * Our speaker (`pontoon bgp`, a process in its own namespace) against real implementations:
 * BIRD 2 and GoBGP 3, each in a namespace of its own, all on one LAN (a bridge in a switch
 * namespace, so every next hop is directly reachable and any of the three can reflect to the
 * others). Covers iBGP and eBGP in both directions, route reflection with us as the
 * reflector and as a client, graceful restart of either side, NOTIFICATIONs for a bad OPEN,
 * and Wireshark's dissector reading a real session.
 *
 * The peers are passive wherever they can be and we connect: GoBGP's first active connect
 * takes 5–9 s, BIRD's ~1 s (peers/gobgp.ts, peers/bird.ts).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
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
import { type BirdConfig, type BirdHandle, startBird } from './peers/bird.js';
import { requireBinary } from './peers/daemon.js';
import { type GobgpHandle, startGobgp } from './peers/gobgp.js';

const CLI = join(ROOT, 'dist', 'cli', 'pontoon.cjs');
const lab = new Lab('bgpio');
const children = new Set<ChildProcess>();
const daemons: (BirdHandle | GobgpHandle)[] = [];
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const daemon of daemons) await daemon.kill9().catch(() => undefined);
  lab.cleanup();
});

/** Host numbers on the LAN 198.18.0.0/24, fd00:18::/64. */
const HOST = { us: 1, bird: 2, gobgp: 3, raw: 4 } as const;
type Member = keyof typeof HOST;
const v4 = (member: Member): string => `198.18.0.${HOST[member]}`;
const v6 = (member: Member): string => `fd00:18::${HOST[member]}`;

interface Net {
  ns: Record<Member, string>;
  dir: Record<Member, string>;
}

/** A switch namespace with a bridge, and one namespace per member joined to it by a veth. */
function makeLan(tag: string): Net {
  const sw = lab.netns(`${tag}-sw`);
  run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
  const ns = {} as Record<Member, string>;
  const dir = {} as Record<Member, string>;
  for (const member of Object.keys(HOST) as Member[]) {
    ns[member] = lab.netns(`${tag}-${member}`);
    dir[member] = lab.tempDir(`${tag}-${member}`);
    run('ip', ['-n', ns[member], 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${member}`, 'netns', sw]);
    run('ip', ['-n', sw, 'link', 'set', `p${member}`, 'master', 'br0', 'up']);
    run('ip', ['-n', ns[member], 'addr', 'add', `${v4(member)}/24`, 'dev', 'eth0']);
    // nodad: a tentative IPv6 address cannot be bound or used as a next hop.
    run('ip', ['-n', ns[member], 'addr', 'add', `${v6(member)}/64`, 'dev', 'eth0', 'nodad']);
    run('ip', ['-n', ns[member], 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns[member], 'link', 'set', 'lo', 'up']);
  }
  return { ns, dir };
}

// ---- our speaker

class Us {
  process?: ChildProcess;
  readonly socket: string;
  readonly log: string;
  private readonly configFile: string;

  constructor(
    readonly netns: string,
    dir: string,
    config: Record<string, unknown>,
  ) {
    this.socket = join(dir, 'bgp.sock');
    this.log = join(dir, 'bgp.log');
    this.configFile = join(dir, 'bgp.yaml');
    writeFileSync(this.configFile, toYaml({ routerId: v4('us'), listenAddress: v4('us'), holdTime: 9, controlSocket: this.socket, nextHops: { ipv4: v4('us'), ipv6: v6('us') }, ...config }));
  }

  start(): void {
    const log = openSync(this.log, 'a');
    const child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, CLI, 'bgp', '--config', this.configFile], { stdio: ['ignore', log, log] });
    closeSync(log);
    children.add(child);
    child.once('exit', () => children.delete(child));
    this.process = child;
  }

  async stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal); // `ip netns exec` execs node: this is the speaker's pid
    await exited;
  }

  logTail(): string {
    try {
      return readFileSync(this.log, 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  }

  async status(): Promise<SpeakerStatus | undefined> {
    return (await controlRequest(this.socket, 'status').catch(() => undefined)) as SpeakerStatus | undefined;
  }

  async routes(): Promise<RouteView[]> {
    return ((await controlRequest(this.socket, 'routes').catch(() => [])) as RouteView[] | undefined) ?? [];
  }

  async peer(address: string): Promise<SpeakerStatus['peers'][number] | undefined> {
    return (await this.status())?.peers.find((p) => p.address === address);
  }

  async established(address: string): Promise<void> {
    let last: SpeakerStatus['peers'][number] | undefined;
    await poll(`our session with ${address} to be Established`, async () => (last = await this.peer(address))?.state === 'Established', {
      timeoutMs: 30_000,
      intervalMs: 100,
      describe: () => `${JSON.stringify(last)}\n${this.logTail()}`,
    });
  }

  /** Polls our best routes until one for `prefix` from `from` shows up. */
  async learned(prefix: string, from: string): Promise<RouteView> {
    return poll(`us to learn ${prefix} from ${from}`, async () => (await this.routes()).find((r) => r.prefix === prefix && r.from === from), {
      timeoutMs: 15_000,
      intervalMs: 100,
      describe: () => this.logTail(),
    });
  }

  kernelRoutes(family: '-4' | '-6'): string {
    return run('ip', [family, 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)], { netns: this.netns });
  }
}

async function bird(net: Net, config: Omit<BirdConfig, 'routerId'>): Promise<BirdHandle> {
  const handle = await startBird(net.ns.bird, { routerId: v4('bird'), listen: v4('bird'), ...config }, net.dir.bird);
  daemons.push(handle);
  return handle;
}

async function gobgp(net: Net, config: Omit<Parameters<typeof startGobgp>[1], 'routerId'>): Promise<GobgpHandle> {
  const handle = await startGobgp(net.ns.gobgp, { routerId: v4('gobgp'), listenAddresses: [v4('gobgp')], ...config }, net.dir.gobgp);
  daemons.push(handle);
  return handle;
}

const birdLearned = (peer: BirdHandle, family: 'ipv4' | 'ipv6', prefix: string, protocol: string) =>
  poll(`BIRD to learn ${prefix} over ${protocol}`, () => peer.routes(family).find((r) => r.prefix === prefix && r.protocol === protocol), { timeoutMs: 15_000, describe: () => peer.birdc('show', 'route', 'all') });

const gobgpLearned = (peer: GobgpHandle, family: 'ipv4' | 'ipv6', prefix: string, neighbor: string) =>
  poll(`GoBGP to learn ${prefix} from ${neighbor}`, () => peer.routes(family).find((r) => r.prefix === prefix && r.neighbor === neighbor), { timeoutMs: 15_000, describe: () => peer.gobgp('global', 'rib', '-a', family) });

/** Records every route deletion in a namespace until stopped. */
function watchDeletions(netns: string, match: string): { ready: Promise<void>; stop: () => string[] } {
  const monitor = spawn('ip', ['-n', netns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.add(monitor);
  let text = '';
  monitor.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  // `ip monitor` prints nothing when it is ready; its spawn is the best signal there is.
  const ready = new Promise<void>((resolve) => monitor.once('spawn', () => resolve()));
  return {
    ready,
    stop: () => {
      monitor.kill();
      children.delete(monitor);
      return text.split('\n').filter((line) => line.startsWith('Deleted') && line.includes(match));
    },
  };
}

const AS_US = 64512;

describe('pontoon bgp against BIRD and GoBGP', () => {
  test('iBGP: IPv4 and IPv6 both ways with BIRD and GoBGP; next hops, LOCAL_PREF, kernel routes; tshark decodes the BIRD session', async () => {
    requireBinary('tcpdump', 'tcpdump');
    requireBinary('tshark', 'tshark');
    const net = makeLan('ibgp');
    const capture = join(net.dir.us, 'bird-session.pcap');
    const tcpdump = spawn('ip', ['netns', 'exec', net.ns.us, 'tcpdump', '--immediate-mode', '-U', '-n', '-i', 'eth0', '-w', capture, 'tcp port 179 and host', v4('bird')], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(tcpdump);
    let tcpdumpErr = '';
    tcpdump.stderr.on('data', (chunk: Buffer) => (tcpdumpErr += chunk.toString()));
    await poll('tcpdump to listen', () => tcpdumpErr.includes('listening on'), { timeoutMs: 10_000, describe: () => tcpdumpErr });

    const b = await bird(net, { asn: AS_US, peers: [{ name: 'pontoon', address: v4('us'), asn: AS_US, passive: true, families: ['ipv4', 'ipv6'] }], announce: ['10.2.0.0/24', 'fd00:2::/64'] });
    const g = await gobgp(net, { asn: AS_US, peers: [{ address: v4('us'), asn: AS_US, passive: true, families: ['ipv4', 'ipv6'] }] });
    g.announce('10.3.0.0/24');
    g.announce('fd00:3::/64', { nextHop: v6('gobgp') });
    const us = new Us(net.ns.us, net.dir.us, { localAsn: AS_US, announce: ['10.244.1.0/24', 'fd00:10:244:1::/64'], peers: [{ address: v4('bird'), asn: AS_US }, { address: v4('gobgp'), asn: AS_US }] });
    us.start();
    await us.established(v4('bird'));
    await us.established(v4('gobgp'));
    await b.waitEstablished('pontoon');
    await g.waitEstablished(v4('us'));

    // What they learned from us.
    for (const [prefix, family, hop] of [['10.244.1.0/24', 'ipv4', v4('us')], ['fd00:10:244:1::/64', 'ipv6', v6('us')]] as const) {
      const atBird = await birdLearned(b, family, prefix, 'pontoon');
      assert.equal(atBird.nextHop, hop, `BIRD's next hop for ${prefix}`);
      assert.equal(atBird.localPref, 100);
      assert.deepEqual(atBird.asPath, []);
      const atGobgp = await gobgpLearned(g, family, prefix, v4('us'));
      assert.equal(atGobgp.nextHop, hop, `GoBGP's next hop for ${prefix}`);
      assert.equal(atGobgp.localPref, 100);
      assert.deepEqual(atGobgp.asPath, []);
    }
    // What we learned from them.
    for (const [prefix, from, hop] of [
      ['10.2.0.0/24', v4('bird'), v4('bird')],
      ['fd00:2::/64', v4('bird'), v6('bird')],
      ['10.3.0.0/24', v4('gobgp'), v4('gobgp')],
      ['fd00:3::/64', v4('gobgp'), v6('gobgp')],
    ] as const) {
      const route = await us.learned(prefix, from);
      assert.equal(route.nextHop, hop, `our next hop for ${prefix}`);
      assert.equal(route.localPref, 100, `our LOCAL_PREF for ${prefix}`);
      assert.equal(route.asPath, '');
    }
    await poll('their prefixes in our kernel with our protocol', () => {
      const [four, six] = [us.kernelRoutes('-4'), us.kernelRoutes('-6')];
      return four.includes(`10.2.0.0/24 via ${v4('bird')}`) && four.includes(`10.3.0.0/24 via ${v4('gobgp')}`) && six.includes(`fd00:2::/64 via ${v6('bird')}`) && six.includes(`fd00:3::/64 via ${v6('gobgp')}`);
    }, { timeoutMs: 10_000, describe: () => `${us.kernelRoutes('-4')}\n${us.kernelRoutes('-6')}` });

    // Case 7: Wireshark reads the real session cleanly. OPEN, UPDATE and KEEPALIVE from each
    // side must be in the capture (tcpdump writes each packet as it comes, -U) before it stops.
    const messageTypes = (): Set<string> => {
      const fields = spawnSync('tshark', ['-r', capture, '-d', 'tcp.port==179,bgp', '-Y', 'bgp', '-T', 'fields', '-e', 'ip.src', '-e', 'bgp.type'], { encoding: 'utf8' });
      return new Set(fields.stdout.split('\n').flatMap((line) => {
        const [source = '', types = ''] = line.split('\t');
        return types.split(',').filter(Boolean).map((type) => `${source} ${type}`);
      }));
    };
    const wanted = [v4('us'), v4('bird')].flatMap((source) => [1, 2, 4].map((type) => `${source} ${type}`));
    await poll('OPEN, UPDATE and KEEPALIVE from both sides in the capture', () => wanted.every((m) => messageTypes().has(m)), { timeoutMs: 15_000, intervalMs: 250, describe: () => `seen: ${[...messageTypes()].join(', ')}; tcpdump: ${tcpdumpErr}` });
    const stopped = new Promise((resolve) => tcpdump.once('exit', resolve));
    tcpdump.kill('SIGINT');
    await stopped;
    children.delete(tcpdump);
    const tshark = spawnSync('tshark', ['-r', capture, '-d', 'tcp.port==179,bgp', '-V'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(tshark.status, 0, tshark.stderr);
    const out = tshark.stdout;
    for (const bad of ['Malformed', 'Expert Info (Error']) assert.ok(!out.includes(bad), `tshark reported "${bad}":\n${out.slice(0, 20_000)}`);
    for (const expected of ['Path Attribute - MP_REACH_NLRI', 'Graceful Restart capability', '10.244.1.0/24', '10.2.0.0/24', 'fd00:10:244:1::/64', 'fd00:2::/64']) assert.ok(out.includes(expected), `tshark output lacks "${expected}"`);
    await us.stop('SIGKILL');
  });

  test('eBGP with BIRD and GoBGP: AS_PATH carries the neighbour AS each way; next hop is the peer', async () => {
    const net = makeLan('ebgp');
    const [AS_BIRD, AS_GOBGP] = [64513, 64514];
    const b = await bird(net, { asn: AS_BIRD, peers: [{ name: 'pontoon', address: v4('us'), asn: AS_US, passive: true }], announce: ['10.2.0.0/24'] });
    const g = await gobgp(net, { asn: AS_GOBGP, peers: [{ address: v4('us'), asn: AS_US, passive: true }] });
    g.announce('10.3.0.0/24');
    const us = new Us(net.ns.us, net.dir.us, { localAsn: AS_US, announce: ['10.244.1.0/24'], peers: [{ address: v4('bird'), asn: AS_BIRD }, { address: v4('gobgp'), asn: AS_GOBGP }] });
    us.start();
    await us.established(v4('bird'));
    await us.established(v4('gobgp'));

    const fromBird = await us.learned('10.2.0.0/24', v4('bird'));
    assert.equal(fromBird.asPath, String(AS_BIRD));
    assert.equal(fromBird.nextHop, v4('bird'));
    const fromGobgp = await us.learned('10.3.0.0/24', v4('gobgp'));
    assert.equal(fromGobgp.asPath, String(AS_GOBGP));
    assert.equal(fromGobgp.nextHop, v4('gobgp'));

    const atBird = await birdLearned(b, 'ipv4', '10.244.1.0/24', 'pontoon');
    assert.deepEqual(atBird.asPath, [AS_US]);
    assert.equal(atBird.nextHop, v4('us'));
    const atGobgp = await gobgpLearned(g, 'ipv4', '10.244.1.0/24', v4('us'));
    assert.deepEqual(atGobgp.asPath, [AS_US]);
    assert.equal(atGobgp.nextHop, v4('us'));
    // eBGP to eBGP: BIRD's prefix reaches GoBGP through us, our AS prepended, our next hop.
    const transit = await gobgpLearned(g, 'ipv4', '10.2.0.0/24', v4('us'));
    assert.deepEqual(transit.asPath, [AS_US, AS_BIRD]);
    assert.equal(transit.nextHop, v4('us'));
    await us.stop('SIGKILL');
  });

  test('we reflect: BIRD client -> us (route reflector) -> GoBGP client with ORIGINATOR_ID and CLUSTER_LIST', async () => {
    const net = makeLan('ourrr');
    const clusterId = '10.10.10.10';
    await bird(net, { asn: AS_US, peers: [{ name: 'pontoon', address: v4('us'), asn: AS_US, passive: true }], announce: ['10.2.0.0/24'] });
    const g = await gobgp(net, { asn: AS_US, peers: [{ address: v4('us'), asn: AS_US, passive: true }] });
    const us = new Us(net.ns.us, net.dir.us, { localAsn: AS_US, clusterId, peers: [{ address: v4('bird'), asn: AS_US, routeReflectorClient: true }, { address: v4('gobgp'), asn: AS_US, routeReflectorClient: true }] });
    us.start();
    await us.established(v4('bird'));
    await us.established(v4('gobgp'));
    const reflected = await gobgpLearned(g, 'ipv4', '10.2.0.0/24', v4('us'));
    assert.equal(reflected.originatorId, v4('bird'), 'ORIGINATOR_ID is the client that sent it');
    assert.ok(reflected.clusterList?.includes(clusterId), `CLUSTER_LIST ${JSON.stringify(reflected.clusterList)} holds our cluster id`);
    assert.equal(reflected.nextHop, v4('bird'), 'a reflector leaves the next hop alone');
    assert.equal(reflected.localPref, 100);
    await us.stop('SIGKILL');
  });

  test('BIRD reflects: GoBGP client -> BIRD (route reflector) -> us, with ORIGINATOR_ID and CLUSTER_LIST', async () => {
    const net = makeLan('birdrr');
    const clusterId = '20.20.20.20';
    const g = await gobgp(net, { asn: AS_US, peers: [{ address: v4('bird'), asn: AS_US, passive: true }] });
    g.announce('10.3.0.0/24');
    const b = await bird(net, {
      asn: AS_US,
      rrClusterId: clusterId,
      peers: [
        { name: 'pontoon', address: v4('us'), asn: AS_US, passive: true, rrClient: true },
        { name: 'gobgp', address: v4('gobgp'), asn: AS_US, rrClient: true },
      ],
    });
    const us = new Us(net.ns.us, net.dir.us, { localAsn: AS_US, peers: [{ address: v4('bird'), asn: AS_US }] });
    us.start();
    await us.established(v4('bird'));
    await b.waitEstablished('gobgp');
    const reflected = await us.learned('10.3.0.0/24', v4('bird'));
    assert.equal(reflected.originatorId, v4('gobgp'));
    assert.deepEqual(reflected.clusterList, [clusterId]);
    assert.equal(reflected.nextHop, v4('gobgp'));
    await poll('the reflected route in our kernel', () => us.kernelRoutes('-4').includes(`10.3.0.0/24 via ${v4('gobgp')}`), { timeoutMs: 10_000, describe: () => us.kernelRoutes('-4') });
    await us.stop('SIGKILL');
  });

  test('graceful restart with BIRD, both directions: no route is lost on either side', async () => {
    const net = makeLan('gr');
    const birdConfig: Omit<BirdConfig, 'routerId'> = { asn: AS_US, peers: [{ name: 'pontoon', address: v4('us'), asn: AS_US, passive: true, gracefulRestart: true, holdTime: 9 }], announce: ['10.2.0.0/24'] };
    let b = await bird(net, birdConfig);
    const us = new Us(net.ns.us, net.dir.us, { localAsn: AS_US, announce: ['10.244.1.0/24'], gracefulRestart: { enabled: true, restartTime: 60 }, peers: [{ address: v4('bird'), asn: AS_US }] });
    us.start();
    await us.established(v4('bird'));
    await poll('BIRD’s route in our kernel', () => us.kernelRoutes('-4').includes(`10.2.0.0/24 via ${v4('bird')}`), { timeoutMs: 10_000 });
    await birdLearned(b, 'ipv4', '10.244.1.0/24', 'pontoon');

    // (a) BIRD restarts gracefully: we keep its route, stale, in the kernel throughout.
    const deletions = watchDeletions(net.ns.us, '10.2.0.0');
    await deletions.ready;
    b.birdc('graceful', 'restart');
    await poll('BIRD to exit for its graceful restart', () => !b.running, { timeoutMs: 10_000, describe: () => b.logTail() });
    await poll('us to keep BIRD’s route stale', async () => (await us.peer(v4('bird')))?.staleRoutes === 1, { timeoutMs: 15_000, intervalMs: 100, describe: () => us.logTail() });
    assert.ok((await us.routes()).find((r) => r.prefix === '10.2.0.0/24')?.stale, 'the route is marked stale');
    assert.match(us.kernelRoutes('-4'), /10\.2\.0\.0\/24 via 198\.18\.0\.2/);
    b = await bird(net, birdConfig);
    await us.established(v4('bird'));
    await poll('the stale route refreshed after BIRD’s End-of-RIB', async () => (await us.peer(v4('bird')))?.staleRoutes === 0 && (await us.routes()).some((r) => r.prefix === '10.2.0.0/24' && !r.stale), {
      timeoutMs: 15_000,
      intervalMs: 100,
      describe: () => us.logTail(),
    });
    assert.match(us.kernelRoutes('-4'), /10\.2\.0\.0\/24 via 198\.18\.0\.2/);
    assert.deepEqual(deletions.stop(), [], 'our kernel never lost BIRD’s route');

    // (b) we restart (SIGTERM: no Cease): BIRD keeps our route the whole time we are away.
    await b.waitEstablished('pontoon');
    await birdLearned(b, 'ipv4', '10.244.1.0/24', 'pontoon');
    await us.stop('SIGTERM');
    const birdHasOurs = (): boolean => b.routes('ipv4').some((r) => r.prefix === '10.244.1.0/24' && r.protocol === 'pontoon');
    await poll('BIRD to notice we went away', () => {
      assert.ok(birdHasOurs(), `BIRD lost our route while we were down:\n${b.birdc('show', 'route', 'all')}`);
      return !b.protocols().find((p) => p.name === 'pontoon')?.info.startsWith('Established');
    }, { timeoutMs: 15_000, intervalMs: 100 });
    // Down for a while (BIRD's view polled meanwhile), then back.
    // BIRD must hold our route as a restarting neighbour's (not merely not yet withdrawn).
    let birdSawRestart = false;
    const downUntil = Date.now() + 1500;
    await poll('our planned downtime to pass, BIRD keeping our route', () => {
      assert.ok(birdHasOurs(), `BIRD lost our route while we were down:\n${b.birdc('show', 'route', 'all')}`);
      birdSawRestart ||= /Neighbor graceful restart active/.test(b.birdc('show', 'protocols', 'all', 'pontoon'));
      return Date.now() > downUntil;
    }, { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(birdSawRestart, `BIRD never treated our stop as a graceful restart:\n${b.birdc('show', 'protocols', 'all', 'pontoon')}`);
    us.start();
    await poll('BIRD Established again, our route kept', () => {
      assert.ok(birdHasOurs(), `BIRD lost our route during our restart:\n${b.birdc('show', 'route', 'all')}`);
      return b.protocols().find((p) => p.name === 'pontoon')?.info.startsWith('Established');
    }, { timeoutMs: 30_000, intervalMs: 100, describe: () => `${b.birdc('show', 'protocols', 'all', 'pontoon')}\n${us.logTail()}` });
    await us.established(v4('bird'));
    await poll('BIRD’s GR of us done', () => !/Neighbor graceful restart active/.test(b.birdc('show', 'protocols', 'all', 'pontoon')) && birdHasOurs(), { timeoutMs: 15_000, intervalMs: 100, describe: () => b.birdc('show', 'protocols', 'all', 'pontoon') });
    await us.stop('SIGKILL');
  });

  test('bad OPENs: a wrong peer AS is refused with 2/2 (BIRD hears it); hold time 1 is refused with 2/6', async () => {
    const net = makeLan('bad');
    const AS_BIRD = 64513;
    const b = await bird(net, { asn: AS_BIRD, peers: [{ name: 'pontoon', address: v4('us'), asn: AS_US }] });
    const us = new Us(net.ns.us, net.dir.us, {
      localAsn: AS_US,
      peers: [
        { address: v4('bird'), asn: 65099, passive: true }, // BIRD is 64513
        { address: v4('raw'), asn: AS_US, passive: true },
      ],
    });
    us.start();
    await poll('us to refuse BIRD’s OPEN', async () => /configured as AS 65099/.test((await us.peer(v4('bird')))?.lastError ?? ''), { timeoutMs: 20_000, intervalMs: 100, describe: () => us.logTail() });
    await poll('BIRD to report the NOTIFICATION it received', () => /Received: Bad peer AS/.test(b.birdc('show', 'protocols', 'all', 'pontoon')), { timeoutMs: 15_000, intervalMs: 100, describe: () => b.birdc('show', 'protocols', 'all', 'pontoon') });
    assert.notEqual((await us.peer(v4('bird')))?.state, 'Established');

    // A hand-made OPEN (the codec refuses to build hold time 1): version 4, AS, hold 1, id, no params.
    const open = Buffer.alloc(29);
    open.fill(0xff, 0, 16);
    open.writeUInt16BE(29, 16);
    open.writeUInt8(1, 18);
    open.writeUInt8(4, 19);
    open.writeUInt16BE(AS_US, 20);
    open.writeUInt16BE(1, 22);
    Buffer.from([198, 18, 0, HOST.raw]).copy(open, 24);
    open.writeUInt8(0, 28);
    // node:net inside the raw namespace: connect, send the OPEN, print everything received as hex.
    const script = `
      const net = require('node:net');
      const socket = net.connect({ host: ${JSON.stringify(v4('us'))}, port: 179, localAddress: ${JSON.stringify(v4('raw'))} });
      const chunks = [];
      socket.on('connect', () => socket.write(Buffer.from(${JSON.stringify(open.toString('hex'))}, 'hex')));
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('error', () => {});
      socket.on('close', () => { process.stdout.write(Buffer.concat(chunks).toString('hex')); process.exit(0); });
      setTimeout(() => { process.stdout.write(Buffer.concat(chunks).toString('hex')); process.exit(0); }, 5000);
    `;
    const reply = Buffer.from(run('ip', ['netns', 'exec', net.ns.raw, process.execPath, '-e', script]).trim(), 'hex');
    const messages: { type: number; body: Buffer }[] = [];
    for (let at = 0; at + 19 <= reply.length; ) {
      const length = reply.readUInt16BE(at + 16);
      assert.ok(length >= 19 && at + length <= reply.length, `a truncated message in ${reply.toString('hex')}`);
      messages.push({ type: reply.readUInt8(at + 18), body: reply.subarray(at + 19, at + length) });
      at += length;
    }
    const notification = messages.find((m) => m.type === 3);
    assert.ok(notification, `no NOTIFICATION in the reply ${reply.toString('hex')}`);
    assert.deepEqual([notification.body[0], notification.body[1]], [2, 6], 'NOTIFICATION 2/6 Unacceptable Hold Time');
    await us.stop('SIGKILL');
  });
});
