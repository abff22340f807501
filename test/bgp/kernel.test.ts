/**
 * KernelRoutes against real kernels, each test in its own namespace: install, replace and
 * delete; restarts that reconcile without touching what is still wanted (watched with
 * `ip monitor route`); other protocols' routes left alone; drift repair; 100k routes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, test } from 'node:test';
import { type DesiredRoute, InvalidRouteError, KernelRoutes, RTPROT_PONTOON_BGP } from '../../src/bgp/kernel.js';
import { formatIp, formatIpNet, parseIp, parseIpNet, type IpNet } from '../../src/lib/ip.js';
import { createLogger } from '../../src/lib/log.js';
import { NetlinkDecodeError } from '../../src/lib/netlink/codec.js';
import { type Rtnl, rtnlDecoders } from '../../src/lib/netlink/rtnl.js';
import { openRtnl } from '../../src/lib/netns.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const lab = new Lab('bgpk');
const log = createLogger('bgp-kernel-test', { level: 'silent' });
const opened: Rtnl[] = [];
const monitors: ChildProcess[] = [];
after(() => {
  for (const monitor of monitors) monitor.kill('SIGKILL');
  for (const rtnl of opened) rtnl.close();
  lab.cleanup();
});

const net = parseIpNet;
const ip = parseIp;
const GATEWAY = ip('198.18.0.1');
const GATEWAY6 = ip('2001:db8:18::1');

/** A node namespace: eth0 (a veth, its peer beside it) on 198.18.0.0/24 and 2001:db8:18::/64. */
function node(name: string): { ns: string; rtnl: Rtnl } {
  const ns = lab.netns(name);
  const sh = (...args: string[]): string => lab.exec(ns, 'ip', args);
  sh('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p');
  sh('link', 'set', 'eth0', 'up');
  sh('link', 'set', 'eth0p', 'up');
  sh('addr', 'add', '198.18.0.11/24', 'dev', 'eth0');
  sh('-6', 'addr', 'add', '2001:db8:18::11/64', 'dev', 'eth0', 'nodad');
  const rtnl = openRtnl(lab.path(ns));
  opened.push(rtnl);
  return { ns, rtnl };
}

interface IpRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
  flags: string[];
}

/** `ip -j route show` of one protocol (or all), as iproute2 sees the kernel. */
function ipRoutes(ns: string, family: 4 | 6, protocol: string | number | undefined = RTPROT_PONTOON_BGP, table = 'main'): IpRoute[] {
  const args = [`-${family}`, '-j', 'route', 'show', 'table', table];
  if (protocol !== undefined) args.push('proto', String(protocol));
  return JSON.parse(lab.exec(ns, 'ip', args)) as IpRoute[];
}

function brief(routes: IpRoute[]): string[] {
  return routes
    .map((r) => [r.type && r.type !== 'unicast' ? r.type : '', r.dst, r.gateway ? `via ${r.gateway}` : '', r.type === 'blackhole' ? '' : r.dev ? `dev ${r.dev}` : '', r.metric ? `metric ${r.metric}` : '', r.flags.includes('onlink') ? 'onlink' : ''].filter(Boolean).join(' '))
    .sort();
}

/** `ip monitor route` in the namespace, started and proven live before it returns. */
async function monitorRoutes(ns: string): Promise<{ mark: (tag: number) => Promise<string[]> }> {
  // stderr ignored: ip monitor complains about veth peers' netns ids ("Peer netns reference is invalid").
  const child = spawn('ip', ['-o', '-n', ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  monitors.push(child);
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const lines = (): string[] => output.split('\n').filter((line) => line.trim() !== '');
  // A sentinel route of another protocol: once the monitor printed its addition, every event
  // before it has been printed too. Deleted and added again until seen, since the monitor may
  // not have subscribed yet (a replace of an identical route is not always announced).
  // Returns the events since the previous mark.
  let consumed = 0;
  const mark = async (tag: number): Promise<string[]> => {
    const sentinel = `192.0.2.${tag}`;
    const route = [`${sentinel}/32`, 'dev', 'eth0', 'proto', 'static'];
    const added = (): number => lines().findIndex((line, i) => i >= consumed && line.startsWith(`${sentinel} `));
    await poll(`ip monitor to show the sentinel ${sentinel}`, () => {
      if (added() >= 0) return true;
      try {
        lab.exec(ns, 'ip', ['route', 'del', ...route]);
      } catch {
        // not there yet
      }
      lab.exec(ns, 'ip', ['route', 'add', ...route]);
      return false;
    }, { timeoutMs: 10_000, intervalMs: 100 });
    const seen = added();
    const events = lines().slice(consumed, seen).filter((line) => !line.includes(` ${sentinel} `) && !line.startsWith(`${sentinel} `));
    lab.exec(ns, 'ip', ['route', 'del', ...route]);
    const deleted = (): number => lines().findIndex((line, i) => i > seen && line.startsWith(`Deleted ${sentinel} `));
    await poll(`ip monitor to show the sentinel ${sentinel} deleted`, () => deleted() >= 0, { timeoutMs: 10_000 });
    consumed = deleted() + 1;
    return events;
  };
  await mark(1);
  return { mark };
}

const basicSet = (): DesiredRoute[] => [
  { prefix: net('10.244.2.0/24'), kind: 'via', gateway: ip('198.18.0.12') },
  { prefix: net('10.244.3.0/24'), kind: 'via', gateway: ip('198.18.0.13'), device: 'eth0', metric: 20 },
  { prefix: net('10.244.1.0/24'), kind: 'blackhole' },
  { prefix: net('10.244.1.5/32'), kind: 'dev', device: 'eth0' },
  { prefix: net('fd00:244:2::/64'), kind: 'via', gateway: ip('2001:db8:18::12') },
  { prefix: net('fd00:244:1::/64'), kind: 'blackhole' },
  { prefix: net('fd00:244:1::5/128'), kind: 'dev', device: 'eth0', metric: 5 },
];

test('installs, replaces and deletes via, dev and blackhole routes in both families', async () => {
  const { ns, rtnl } = node('basic');
  const routes = new KernelRoutes(rtnl, { log });
  const first = await routes.sync(basicSet());
  assert.deepEqual({ ...first, failed: first.failed.length }, { added: 7, replaced: 0, deleted: 0, failed: 0, fullResync: true });
  assert.deepEqual(brief(ipRoutes(ns, 4)), [
    '10.244.1.5 dev eth0',
    '10.244.2.0/24 via 198.18.0.12 dev eth0',
    '10.244.3.0/24 via 198.18.0.13 dev eth0 metric 20',
    'blackhole 10.244.1.0/24',
  ]);
  assert.deepEqual(brief(ipRoutes(ns, 6)), [
    'blackhole fd00:244:1::/64 metric 1024',
    'fd00:244:1::5 dev eth0 metric 5',
    'fd00:244:2::/64 via 2001:db8:18::12 dev eth0 metric 1024',
  ]);
  // The node's own block is dropped locally; a pod's /32 inside it still wins.
  assert.equal(spawnSync('ip', ['-n', ns, 'route', 'get', '10.244.1.7']).status !== 0, true, 'an unallocated address in our block has no usable route');
  assert.match(lab.exec(ns, 'ip', ['route', 'get', '10.244.1.5']), /dev eth0/);

  // Change a gateway (replace in place), a metric (make before break), drop a route, add one.
  const changed = basicSet().filter((r) => formatIpNet(r.prefix) !== '10.244.1.5/32');
  changed[0] = { prefix: net('10.244.2.0/24'), kind: 'via', gateway: ip('198.18.0.22') };
  changed[1] = { prefix: net('10.244.3.0/24'), kind: 'via', gateway: ip('198.18.0.13'), device: 'eth0', metric: 30 };
  changed.push({ prefix: net('10.244.9.0/24'), kind: 'via', gateway: ip('198.18.0.19') });
  const second = await routes.sync(changed);
  assert.deepEqual({ ...second, failed: second.failed.length }, { added: 2, replaced: 1, deleted: 2, failed: 0, fullResync: false });
  assert.deepEqual(brief(ipRoutes(ns, 4)), [
    '10.244.2.0/24 via 198.18.0.22 dev eth0',
    '10.244.3.0/24 via 198.18.0.13 dev eth0 metric 30',
    '10.244.9.0/24 via 198.18.0.19 dev eth0',
    'blackhole 10.244.1.0/24',
  ]);

  // dump() reads the kernel back in DesiredRoute terms.
  const dumped = routes.dump().map((r) => `${r.kind} ${formatIpNet(r.prefix)} ${r.gateway ? formatIp(r.gateway) : '-'} ${r.device ?? '-'} ${r.metric ?? '-'}`).sort();
  assert.deepEqual(dumped, [
    'blackhole 10.244.1.0/24 - - 0',
    'blackhole fd00:244:1::/64 - - 1024',
    'dev fd00:244:1::5/128 - eth0 5',
    'via 10.244.2.0/24 198.18.0.22 eth0 0',
    'via 10.244.3.0/24 198.18.0.13 eth0 30',
    'via 10.244.9.0/24 198.18.0.19 eth0 0',
    'via fd00:244:2::/64 2001:db8:18::12 eth0 1024',
  ]);

  const emptied = await routes.sync([]);
  assert.equal(emptied.deleted, 7);
  assert.deepEqual(ipRoutes(ns, 4), []);
  assert.deepEqual(ipRoutes(ns, 6), []);
});

test('routesOfProtocol decodes what routes() decodes, and refuses a truncated message', async () => {
  const { rtnl } = node('decode');
  await new KernelRoutes(rtnl, { log }).sync(basicSet());
  await new KernelRoutes(rtnl, { log, table: 100 }).sync([{ prefix: net('10.7.0.0/16'), kind: 'via', gateway: GATEWAY, metric: 7 }]);
  const slow = rtnl.routes(undefined, 'all').filter((r) => r.protocol === RTPROT_PONTOON_BGP);
  const quick = rtnl.routesOfProtocol(RTPROT_PONTOON_BGP, { table: 'all' });
  assert.equal(quick.length, 8);
  assert.deepEqual(quick, slow);
  assert.throws(() => rtnlDecoders.decodeRouteQuickly(Buffer.alloc(8)), NetlinkDecodeError);
  const badAttribute = Buffer.concat([Buffer.alloc(12), Buffer.from([0x40, 0, 1, 0])]); // length 64 past the end
  assert.throws(() => rtnlDecoders.decodeRouteQuickly(badAttribute), NetlinkDecodeError);
});

test('a host-bits prefix is installed as its network, and another table and protocol can be chosen', async () => {
  const { ns, rtnl } = node('table');
  const routes = new KernelRoutes(rtnl, { log, table: 100, protocol: 89 });
  await routes.sync([{ prefix: net('10.9.8.7/16'), kind: 'via', gateway: GATEWAY }]);
  assert.deepEqual(brief(ipRoutes(ns, 4, 89, '100')), ['10.9.0.0/16 via 198.18.0.1 dev eth0']);
  assert.deepEqual(ipRoutes(ns, 4, 89), [], 'nothing in main');
  assert.equal((await routes.sync([{ prefix: net('10.9.0.0/16'), kind: 'via', gateway: GATEWAY }])).added, 0);
});

test('a restart reconciles against what is installed without removing or re-adding routes still wanted', async () => {
  const { ns, rtnl } = node('restart');
  await new KernelRoutes(rtnl, { log }).sync(basicSet());
  const before = [ipRoutes(ns, 4), ipRoutes(ns, 6)];
  const monitor = await monitorRoutes(ns);

  // A new instance (the daemon restarted) with the same desired set: nothing to send.
  const restarted = new KernelRoutes(openRtnl(lab.path(ns)), { log });
  const same = await restarted.sync(basicSet());
  assert.deepEqual({ ...same, failed: same.failed.length }, { added: 0, replaced: 0, deleted: 0, failed: 0, fullResync: true });
  assert.deepEqual(await monitor.mark(2), [], 'the kernel saw no route change');
  assert.deepEqual([ipRoutes(ns, 4), ipRoutes(ns, 6)], before);

  // Another restart whose desired set lost one route and changed another: only those move.
  const third = new KernelRoutes(rtnl, { log });
  const desired = basicSet().filter((r) => formatIpNet(r.prefix) !== 'fd00:244:2::/64');
  desired[0] = { prefix: net('10.244.2.0/24'), kind: 'via', gateway: ip('198.18.0.32') };
  const result = await third.sync(desired);
  assert.deepEqual({ ...result, failed: result.failed.length }, { added: 0, replaced: 1, deleted: 1, failed: 0, fullResync: true });
  const events = await monitor.mark(3);
  assert.equal(events.length, 2, `two route events, got:\n${events.join('\n')}`);
  assert.ok(events.some((e) => e.startsWith('10.244.2.0/24 via 198.18.0.32 ')), 'the replaced route');
  assert.ok(events.some((e) => e.startsWith('Deleted fd00:244:2::/64 ')), 'the removed route');
});

test('a metric change adds the new route before deleting the old one', async () => {
  const { ns, rtnl } = node('metric');
  const routes = new KernelRoutes(rtnl, { log });
  await routes.sync([{ prefix: net('10.244.5.0/24'), kind: 'via', gateway: GATEWAY, metric: 10 }]);
  const monitor = await monitorRoutes(ns);
  const result = await routes.sync([{ prefix: net('10.244.5.0/24'), kind: 'via', gateway: GATEWAY, metric: 20 }]);
  assert.deepEqual([result.added, result.deleted], [1, 1]);
  const events = await monitor.mark(2);
  assert.equal(events.length, 2, events.join('\n'));
  assert.match(events[0] ?? '', /^10\.244\.5\.0\/24 via 198\.18\.0\.1 .*metric 20/);
  assert.match(events[1] ?? '', /^Deleted 10\.244\.5\.0\/24 via 198\.18\.0\.1 .*metric 10/);
  assert.deepEqual(brief(ipRoutes(ns, 4)), ['10.244.5.0/24 via 198.18.0.1 dev eth0 metric 20']);
});

test('routes of other protocols are never touched, and a prefix one of them holds is reported, not taken', async () => {
  const { ns, rtnl } = node('foreign');
  const sh = (...args: string[]): string => lab.exec(ns, 'ip', args);
  sh('route', 'add', '10.50.0.0/24', 'via', '198.18.0.50', 'proto', 'static');
  sh('route', 'add', '10.51.0.0/24', 'via', '198.18.0.51'); // proto boot
  sh('route', 'add', '10.52.0.0/24', 'via', '198.18.0.52', 'proto', '200'); // flanneld's
  sh('route', 'add', 'blackhole', '10.53.0.0/24', 'proto', '12'); // BIRD's
  sh('-6', 'route', 'add', 'fd00:50::/64', 'via', '2001:db8:18::50', 'proto', 'static');
  const foreign = [ipRoutes(ns, 4, undefined), ipRoutes(ns, 6, undefined)];

  const routes = new KernelRoutes(rtnl, { log });
  const result = await routes.sync([
    { prefix: net('10.50.0.0/24'), kind: 'via', gateway: ip('198.18.0.99') }, // same key as the static one
    { prefix: net('10.51.0.0/24'), kind: 'via', gateway: ip('198.18.0.99'), metric: 100 }, // different metric: coexists
    { prefix: net('198.18.0.0/24'), kind: 'via', gateway: ip('198.18.0.99') }, // the connected route's key
    { prefix: net('fd00:50::/64'), kind: 'via', gateway: ip('2001:db8:18::99') },
    { prefix: net('10.60.0.0/24'), kind: 'via', gateway: ip('198.18.0.99') },
  ]);
  assert.equal(result.added, 2);
  assert.deepEqual(result.failed.map((f) => `${formatIpNet(f.prefix)} ${f.op} ${f.code}`).sort(), ['10.50.0.0/24 add EEXIST', '198.18.0.0/24 add EEXIST', 'fd00:50::/64 add EEXIST']);
  // A later sync retries the conflicts (the other daemon may have let go) without dumping again.
  const retry = await routes.sync([
    { prefix: net('10.50.0.0/24'), kind: 'via', gateway: ip('198.18.0.99') },
    { prefix: net('10.51.0.0/24'), kind: 'via', gateway: ip('198.18.0.99'), metric: 100 },
  ]);
  assert.deepEqual([retry.fullResync, retry.failed.map((f) => f.code), retry.deleted], [false, ['EEXIST'], 1]);
  await routes.sync([]);
  assert.deepEqual([ipRoutes(ns, 4, undefined), ipRoutes(ns, 6, undefined)], foreign, 'every other route is as it was');
});

test('update applies only the changes it is given', async () => {
  const { ns, rtnl } = node('update');
  const routes = new KernelRoutes(rtnl, { log });
  await routes.sync(basicSet());
  const result = await routes.update({
    set: [
      { prefix: net('10.244.2.0/24'), kind: 'via', gateway: ip('198.18.0.42') },
      { prefix: net('10.244.8.0/24'), kind: 'via', gateway: ip('198.18.0.48') },
      { prefix: net('10.244.3.0/24'), kind: 'via', gateway: ip('198.18.0.13'), device: 'eth0', metric: 20 }, // unchanged
    ],
    remove: [net('fd00:244:2::/64'), net('10.99.0.0/24') /* never installed */],
  });
  assert.deepEqual({ ...result, failed: result.failed.length }, { added: 1, replaced: 1, deleted: 1, failed: 0, fullResync: false });
  assert.deepEqual(brief(ipRoutes(ns, 4)), [
    '10.244.1.5 dev eth0',
    '10.244.2.0/24 via 198.18.0.42 dev eth0',
    '10.244.3.0/24 via 198.18.0.13 dev eth0 metric 20',
    '10.244.8.0/24 via 198.18.0.48 dev eth0',
    'blackhole 10.244.1.0/24',
  ]);
  assert.deepEqual(brief(ipRoutes(ns, 6)), ['blackhole fd00:244:1::/64 metric 1024', 'fd00:244:1::5 dev eth0 metric 5']);
  // The desired set now includes the update: a resync changes nothing.
  const resynced = await routes.resync();
  assert.deepEqual([resynced.added, resynced.replaced, resynced.deleted], [0, 0, 0]);
});

test('calls made while an apply is in flight: a route withdrawn and asked back is in the kernel, and callers queued together share one apply', async () => {
  const { ns, rtnl } = node('inflight');
  const routes = new KernelRoutes(rtnl, { log });
  await routes.sync(basicSet());
  const prefix = net('10.244.2.0/24');
  const route = basicSet()[0] as DesiredRoute;
  // The removal's apply starts (its batch goes to a threadpool thread) before the route is asked back.
  const removal = routes.update({ remove: [prefix] });
  await null;
  const back = routes.update({ set: [route] });
  const again = routes.update({ set: [{ prefix: net('10.244.8.0/24'), kind: 'via', gateway: ip('198.18.0.48') }] });
  const [removed, added, joined] = await Promise.all([removal, back, again]);
  assert.equal(removed.deleted, 1);
  assert.equal(added, joined, 'the two calls queued behind the removal share its successor');
  assert.equal(added.added, 2);
  assert.deepEqual(brief(ipRoutes(ns, 4)).filter((r) => r.startsWith('10.244.2.') || r.startsWith('10.244.8.')), ['10.244.2.0/24 via 198.18.0.12 dev eth0', '10.244.8.0/24 via 198.18.0.48 dev eth0']);
  const resynced = await routes.resync();
  assert.deepEqual([resynced.added, resynced.replaced, resynced.deleted], [0, 0, 0], 'what we believe installed is what the kernel holds');
});

test('a synchronous request that reads a background batch\'s reply hands it over', async () => {
  const { ns, rtnl } = node('interleave');
  const routes = new KernelRoutes(rtnl, { log });
  const count = 20_000;
  const desired: DesiredRoute[] = prefixes4(count, 21 << 24).map((prefix) => ({ prefix, kind: 'via', gateway: GATEWAY, device: 'eth0' }));
  const install = routes.sync(desired);
  await null; // the apply has sent its batch from a threadpool thread
  // Without a turn of the event loop: wait (in another process's view) until the kernel
  // has inserted every route, so the batch's ACK is queued on our socket; then a link
  // query on that socket reads the ACK before its own reply.
  const installed = (): number => lab.exec(ns, 'ip', ['-4', 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)]).trim().split('\n').filter(Boolean).length;
  while (installed() < count);
  assert.ok(rtnl.linkByName('eth0'), 'the query gets its own reply');
  assert.ok(routes.dump().length === count, 'and so does a dump');
  const result = await install;
  assert.deepEqual([result.added, result.failed.length], [count, 0], 'the batch completes with the ACK the query read');
});

test('incremental syncs send only changes and never dump; resync repairs drift', async () => {
  const { ns, rtnl } = node('drift');
  const routes = new KernelRoutes(rtnl, { log });
  const desired = basicSet();
  await routes.sync(desired);
  lab.exec(ns, 'ip', ['route', 'del', '10.244.2.0/24', 'proto', String(RTPROT_PONTOON_BGP)]);
  lab.exec(ns, 'ip', ['route', 'add', '10.244.77.0/24', 'via', '198.18.0.77', 'proto', String(RTPROT_PONTOON_BGP)]);
  // Without a dump the in-memory set still believes the route is there: nothing sent.
  const incremental = await routes.sync(desired);
  assert.deepEqual([incremental.fullResync, incremental.added, incremental.deleted], [false, 0, 0]);
  assert.equal(ipRoutes(ns, 4).some((r) => r.dst === '10.244.2.0/24'), false);
  const repaired = await routes.resync();
  assert.deepEqual([repaired.fullResync, repaired.added, repaired.replaced, repaired.deleted], [true, 1, 0, 1]);
  assert.deepEqual(brief(ipRoutes(ns, 4)), ['10.244.1.5 dev eth0', '10.244.2.0/24 via 198.18.0.12 dev eth0', '10.244.3.0/24 via 198.18.0.13 dev eth0 metric 20', 'blackhole 10.244.1.0/24']);
  // The interval: a sync after it has passed dumps on its own.
  const eager = new KernelRoutes(rtnl, { log, resyncIntervalMs: 0 });
  assert.equal((await eager.sync(desired)).fullResync, true);
  assert.equal((await eager.sync(desired)).fullResync, true);
});

test('an onlink gateway through a tunnel device, and a device that appears later', async () => {
  const { ns, rtnl } = node('onlink');
  const routes = new KernelRoutes(rtnl, { log });
  const desired: DesiredRoute[] = [
    { prefix: net('10.244.2.0/24'), kind: 'via', gateway: ip('198.18.1.12'), device: 'tunl0', onlink: true },
    { prefix: net('10.244.3.0/24'), kind: 'via', gateway: ip('203.0.113.3'), device: 'eth0', onlink: true },
    { prefix: net('10.244.4.0/24'), kind: 'via', gateway: ip('203.0.113.4'), device: 'eth0' }, // off-link without onlink
  ];
  const first = await routes.sync(desired);
  assert.equal(first.added, 1);
  assert.deepEqual(first.failed.map((f) => `${formatIpNet(f.prefix)} ${f.code}`).sort(), ['10.244.2.0/24 ENODEV', '10.244.4.0/24 ENETUNREACH']);
  // The tunnel device comes up (a TUN device: the IPIP fallback of this kernel).
  lab.exec(ns, 'ip', ['tuntap', 'add', 'dev', 'tunl0', 'mode', 'tun']);
  lab.exec(ns, 'ip', ['link', 'set', 'tunl0', 'up']);
  const second = await routes.sync(desired.slice(0, 2));
  assert.deepEqual([second.added, second.failed.length, second.fullResync], [1, 0, false]);
  assert.deepEqual(brief(ipRoutes(ns, 4)), ['10.244.2.0/24 via 198.18.1.12 dev tunl0 onlink', '10.244.3.0/24 via 203.0.113.3 dev eth0 onlink']);
  // onlink is an attribute: dropping it replaces the route (which then fails: off-link gateway).
  const third = await routes.sync([desired[0] as DesiredRoute, { ...(desired[1] as DesiredRoute), onlink: false }]);
  assert.deepEqual(third.failed.map((f) => `${f.op} ${f.code}`), ['replace ENETUNREACH']);
});

test('a batch whose every message fails reports every failure (the error replies all fit)', async () => {
  const { ns, rtnl } = node('allfail');
  const routes = new KernelRoutes(rtnl, { log });
  const count = 3000;
  const desired: DesiredRoute[] = Array.from({ length: count }, (_, i) => ({
    prefix: { family: 4, value: BigInt((30 << 24) + i * 256), prefixLength: 24 },
    kind: 'via',
    gateway: ip('203.0.113.1'), // not on any link
  }));
  const result = await routes.sync(desired);
  assert.equal(result.failed.length, count);
  assert.ok(result.failed.every((f) => f.code === 'ENETUNREACH'));
  assert.deepEqual(ipRoutes(ns, 4), []);
});

test('malformed routes are refused before anything is sent', async () => {
  const { ns, rtnl } = node('invalid');
  const routes = new KernelRoutes(rtnl, { log });
  const bad: DesiredRoute[] = [
    { prefix: net('10.1.0.0/24'), kind: 'via' },
    { prefix: net('10.1.0.0/24'), kind: 'via', gateway: GATEWAY6 },
    { prefix: net('10.1.0.0/24'), kind: 'dev' },
    { prefix: net('10.1.0.0/24'), kind: 'blackhole', gateway: GATEWAY },
    { prefix: net('10.1.0.0/24'), kind: 'via', gateway: GATEWAY, onlink: true },
  ];
  for (const route of bad) await assert.rejects(routes.sync([{ prefix: net('10.2.0.0/24'), kind: 'blackhole' }, route]), InvalidRouteError);
  assert.deepEqual(ipRoutes(ns, 4), []);
});

/** Runs `fn`; its wall-clock and CPU (user + system: the kernel's route work runs in our sendmsg) milliseconds. */
async function measure<T>(fn: () => Promise<T>): Promise<{ value: T; text: string }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await fn();
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { value, text: `${wall.toFixed(0)} ms (cpu ${((used.user + used.system) / 1000).toFixed(0)})` };
}

function prefixes4(count: number, base: number): IpNet[] {
  return Array.from({ length: count }, (_, i) => ({ family: 4 as const, value: BigInt(base + i * 256), prefixLength: 24 }));
}

test('100k IPv4 routes install, are all present, and an unchanged restart sends nothing', async (t) => {
  const { ns, rtnl } = node('scale');
  const count = 100_000;
  const base = 20 << 24;
  const desired: DesiredRoute[] = prefixes4(count, base).map((prefix) => ({ prefix, kind: 'via', gateway: GATEWAY, device: 'eth0' }));

  const routes = new KernelRoutes(rtnl, { log });
  const install = await measure(() => routes.sync(desired));
  assert.deepEqual([install.value.added, install.value.failed.length], [count, 0]);
  const present = new Set(rtnl.routesOfProtocol(RTPROT_PONTOON_BGP, { family: 4 }).map((r) => (r.dst ? formatIpNet(r.dst) : '')));
  assert.equal(present.size, count);
  for (const route of desired) assert.ok(present.has(formatIpNet(route.prefix)), formatIpNet(route.prefix));
  assert.equal(lab.exec(ns, 'ip', ['-4', 'route', 'show', 'proto', String(RTPROT_PONTOON_BGP)]).trim().split('\n').length, count);

  const unchanged = await measure(() => routes.sync(desired));
  assert.deepEqual([unchanged.value.added, unchanged.value.replaced, unchanged.value.deleted, unchanged.value.fullResync], [0, 0, 0, false]);

  const restart = await measure(() => new KernelRoutes(rtnl, { log }).sync(desired));
  assert.deepEqual([restart.value.added, restart.value.replaced, restart.value.deleted, restart.value.fullResync], [0, 0, 0, true]);

  // 100 changed best paths, as a whole desired set and as an update: 100 replaces, no dump.
  const changed = desired.map((route, i) => (i % 1000 === 0 ? { ...route, gateway: ip('198.18.0.2') } : route));
  const small = await measure(() => routes.sync(changed));
  assert.deepEqual([small.value.replaced, small.value.fullResync], [100, false]);
  const update = await measure(() => routes.update({ set: desired.filter((_, i) => i % 1000 === 0) }));
  assert.deepEqual([update.value.replaced, update.value.fullResync], [100, false]);

  const removal = await measure(() => routes.sync([]));
  assert.equal(removal.value.deleted, count);
  assert.deepEqual(rtnl.routesOfProtocol(RTPROT_PONTOON_BGP), []);

  // The reference: the same routes through `ip -batch` (one sendmsg and one ACK per route).
  const reference = node('scale-ref');
  const batchFile = join(lab.tempDir('routes'), 'routes.batch');
  writeFileSync(batchFile, desired.map((r) => `route add ${formatIpNet(r.prefix)} via 198.18.0.1 dev eth0 proto ${RTPROT_PONTOON_BGP}\n`).join(''));
  const timed = spawnSync('bash', ['-c', `TIMEFORMAT='%R %U %S'; time ip -n ${reference.ns} -batch ${batchFile}`], { encoding: 'utf8' });
  assert.equal(timed.status, 0, timed.stderr);
  const [real = 0, user = 0, system = 0] = timed.stderr.trim().split(/\s+/).map(Number);
  assert.equal(reference.rtnl.routesOfProtocol(RTPROT_PONTOON_BGP, { family: 4 }).length, count);

  t.diagnostic(
    `100k IPv4 routes: install ${install.text}, ip -batch ${(real * 1000).toFixed(0)} ms (cpu ${((user + system) * 1000).toFixed(0)}); ` +
      `unchanged sync ${unchanged.text}; restart (dump + diff) ${restart.text}; 100 changed: sync ${small.text}, update ${update.text}; delete all ${removal.text}`,
  );
});

test('20k IPv6 routes install and are all present', async (t) => {
  const { rtnl } = node('scale6');
  const count = 20_000;
  const desired: DesiredRoute[] = Array.from({ length: count }, (_, i) => ({
    prefix: { family: 6, value: (0xfd00_0244n << 96n) | (BigInt(i) << 64n), prefixLength: 64 },
    kind: 'via',
    gateway: GATEWAY6,
  }));
  const install = await measure(() => new KernelRoutes(rtnl, { log }).sync(desired));
  assert.deepEqual([install.value.added, install.value.failed.length], [count, 0]);
  assert.equal(rtnl.routesOfProtocol(RTPROT_PONTOON_BGP, { family: 6 }).length, count);
  t.diagnostic(`20k IPv6 routes: install ${install.text}`);
});
