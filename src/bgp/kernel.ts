/**
 * Kernel route sync for the BGP speaker: the routes the speaker's best paths call for, in
 * one routing table, marked with our own route protocol number.
 *
 * Design note. The reconciler shape of every Pontoon daemon (docs: ARCHITECTURE.md):
 * desired → diff against what the kernel holds → one batched apply.
 * - Ownership is the protocol number alone (RTPROT_PONTOON_BGP). A restart dumps the
 *   table, keeps what is still wanted untouched (no flush, no delete-and-re-add: a route
 *   that blinks drops packets and wakes every netlink listener), replaces what differs and
 *   deletes the rest. Routes of other protocols are never sent a message: new routes are
 *   created with NLM_F_EXCL, so a prefix another daemon holds at the same metric fails
 *   with EEXIST (reported in `failed`) instead of being replaced, and deletes name our
 *   protocol, which the kernel matches (IPv4 fib_table_delete, IPv6 ip6_route_del).
 * - After the first sync the installed set lives in memory. A sync compares the desired
 *   set with the last one (a lookup per route, no allocation for an unchanged one) and
 *   diffs only the prefixes that changed; `update` takes just the changes. A few changed
 *   best paths cost a few netlink messages, not a dump of 100k routes. A full resync (dump + diff) runs on the first sync, when
 *   `resyncIntervalMs` has passed since the last one, after a batch failed in a way that
 *   leaves the kernel's state unknown, and whenever the caller asks (`resync`), to repair
 *   drift: routes removed by hand or with their device, a crash between batches.
 * - One route per prefix. The key is (family, prefix); the metric is an attribute. The
 *   kernel's key includes the metric, so a metric change is make-before-break: the new
 *   route is added, then the old one deleted, only if the add succeeded.
 * - Batching: an apply is one datagram (Rtnl.applyRoutesInBackground) with an ACK only on
 *   the last message, sent from a threadpool thread, so 100k routes cost one syscall and
 *   the kernel's own insert time, off the event loop. One apply is in flight at a time;
 *   changes made meanwhile go into the next (`reconcileSoon`).
 */
import { performance } from 'node:perf_hooks';
import { PontoonError } from '../lib/errors.js';
import { bitsOf, formatIp, formatIpNet, type Ip, type IpFamily, type IpNet } from '../lib/ip.js';
import type { Logger } from '../lib/log.js';
import { type Route, type RouteOp, type RouteOpFailure, RT_TABLE_MAIN, RTN_BLACKHOLE, RTN_UNICAST, type Rtnl } from '../lib/netlink/rtnl.js';

/**
 * The route protocol number (rtm_protocol) our BGP routes carry. 88 because it is free:
 * not in iproute2's rt_protos (0–4, 8–16 with 12 = BIRD, 18, 42, 99, 186–192, where 186
 * "bgp" is what FRR's zebra uses), not Calico Felix's 80 (its blackholes and VXLAN
 * routes), not flanneld's 200 (FLANNEL_ROUTE_PROTOCOL). A number no other daemon uses
 * is what lets a restarted speaker find exactly its own routes, and lets BIRD run as an
 * interop peer in the same namespace without either side deleting the other's.
 * `ip route show proto 88` lists them; add `88 pontoon-bgp` to /etc/iproute2/rt_protos.d/
 * to see the name.
 */
export const RTPROT_PONTOON_BGP = 88;

/** IPv6 routes without a metric get 1024 from the kernel (IP6_RT_PRIO_USER); IPv4 ones 0. */
const IPV6_DEFAULT_METRIC = 1024;
const DEFAULT_RESYNC_INTERVAL_MS = 5 * 60_000;

export interface DesiredRoute {
  prefix: IpNet;
  /** via: to a gateway; blackhole: drop locally (RTN_BLACKHOLE); dev: on-link out of `device` */
  kind: 'via' | 'blackhole' | 'dev';
  /** `via` only; the same family as the prefix */
  gateway?: Ip;
  /** the IPIP tunnel device, eth0...: required for `dev` and `onlink`, optional for `via` */
  device?: string;
  /** RTNH_F_ONLINK: the gateway is on the device's link though no address covers it (IPIP) */
  onlink?: boolean;
  /** RTA_PRIORITY; default 0 for IPv4, 1024 for IPv6 (what the kernel assigns) */
  metric?: number;
}

export interface RouteSyncFailure {
  prefix: IpNet;
  op: RouteOp['op'];
  /** errno name: EEXIST (another protocol's route holds the prefix at that metric), ENODEV, ENETUNREACH... */
  code: string;
  text?: string;
}

export interface RouteSyncResult {
  added: number;
  replaced: number;
  deleted: number;
  failed: RouteSyncFailure[];
  /** this sync dumped the table (first sync, interval passed, asked for, or after an error) */
  fullResync: boolean;
}

export interface KernelRoutesOptions {
  /** routing table; default main (254) */
  table?: number;
  /** route protocol that marks our routes; default RTPROT_PONTOON_BGP */
  protocol?: number;
  log: Logger;
  /** a sync later than this after the last full resync dumps and diffs again; default 5 min */
  resyncIntervalMs?: number;
}

export class InvalidRouteError extends PontoonError {}

export class RouteSyncError extends PontoonError {}

/**
 * Everything of an installed route but its prefix: what it goes through and how. Routes
 * share one Hop per distinct next hop (interned by `Hops`), so a route costs its prefix,
 * a Hop reference and a generation: an OwnedRoute with all eleven fields was 120 B of the
 * ~550 B a route cost at 100k (docs/bgp.md "Memory").
 */
class Hop {
  constructor(
    readonly family: IpFamily,
    readonly kind: DesiredRoute['kind'] | 'other',
    readonly table: number,
    readonly protocol: number,
    readonly type: number,
    readonly priority: number,
    readonly gateway: Ip | undefined,
    /** undefined until the device is resolved, and for a `via` that names none */
    readonly oif: number | undefined,
    readonly onlink: boolean,
    /** the device asked for (in dump(): the one the kernel reports) */
    readonly device: string | undefined,
  ) {}

  is(family: IpFamily, kind: Hop['kind'], table: number, protocol: number, type: number, priority: number, gateway: Ip | undefined, oif: number | undefined, onlink: boolean, device: string | undefined): boolean {
    return (
      this.family === family &&
      this.kind === kind &&
      this.table === table &&
      this.protocol === protocol &&
      this.type === type &&
      this.priority === priority &&
      this.gateway?.value === gateway?.value &&
      this.oif === oif &&
      this.onlink === onlink &&
      this.device === device
    );
  }
}

/**
 * The interned Hops, by gateway address (or device, or "" for neither). A handful per
 * next hop; `clear` at a full resync bounds the table by the next hops still in use.
 */
class Hops {
  private readonly byKey = new Map<bigint | string, Hop[]>();

  /** The Hop with these fields; a new one only for a next hop not seen before. */
  intern(family: IpFamily, kind: Hop['kind'], table: number, protocol: number, type: number, priority: number, gateway: Ip | undefined, oif: number | undefined, onlink: boolean, device: string | undefined): Hop {
    const key = gateway?.value ?? device ?? '';
    let list = this.byKey.get(key);
    if (list === undefined) this.byKey.set(key, (list = []));
    for (const known of list) if (known.is(family, kind, table, protocol, type, priority, gateway, oif, onlink, device)) return known;
    const hop = new Hop(family, kind, table, protocol, type, priority, gateway, oif, onlink, device);
    list.push(hop);
    return hop;
  }

  clear(): void {
    this.byKey.clear();
  }
}

/**
 * A route as we install it: a netlink Route (its fields read through from the Hop) plus
 * what the diff needs. A class, so that every route has one shape and the diff's property
 * reads stay monomorphic at 100k routes.
 */
class OwnedRoute implements Route {
  /** the sync that last asked for it (wanted routes not asked for again are withdrawn) */
  generation = 0;

  constructor(
    /** the network (host bits clear) */
    readonly dst: IpNet,
    readonly hop: Hop,
  ) {}

  get family(): IpFamily {
    return this.hop.family;
  }
  get kind(): Hop['kind'] {
    return this.hop.kind;
  }
  get table(): number {
    return this.hop.table;
  }
  get protocol(): number {
    return this.hop.protocol;
  }
  get type(): number {
    return this.hop.type;
  }
  get priority(): number {
    return this.hop.priority;
  }
  get gateway(): Ip | undefined {
    return this.hop.gateway;
  }
  get oif(): number | undefined {
    return this.hop.oif;
  }
  get onlink(): boolean {
    return this.hop.onlink;
  }
  get device(): string | undefined {
    return this.hop.device;
  }
}

/**
 * Values by prefix. IPv4 keys are the address as an int32 in one Map per prefix length: a
 * small integer to V8, where address × 64 + length would be a heap number per key
 * (measured 2–4× slower to insert and look up at 100k). IPv6 keys are bigints (ipv6Key).
 */
class PrefixMap<V> {
  private readonly v4: Map<number, V>[] = Array.from({ length: 33 }, () => new Map<number, V>());
  private readonly v6 = new Map<bigint, V>();

  get size(): number {
    let size = this.v6.size;
    for (const map of this.v4) size += map.size;
    return size;
  }

  get(dst: IpNet): V | undefined {
    return dst.family === 4 ? this.v4[dst.prefixLength]?.get(Number(dst.value) | 0) : this.v6.get(ipv6Key(dst));
  }

  has(dst: IpNet): boolean {
    return this.get(dst) !== undefined;
  }

  set(dst: IpNet, value: V): void {
    if (dst.family === 4) this.v4[dst.prefixLength]?.set(Number(dst.value) | 0, value);
    else this.v6.set(ipv6Key(dst), value);
  }

  delete(dst: IpNet): void {
    if (dst.family === 4) this.v4[dst.prefixLength]?.delete(Number(dst.value) | 0);
    else this.v6.delete(ipv6Key(dst));
  }

  clear(): void {
    for (const map of this.v4) map.clear();
    this.v6.clear();
  }

  /** Deleting the entry being visited is allowed (Map iteration tolerates it). */
  forEach(fn: (value: V) => void): void {
    for (const map of this.v4) for (const value of map.values()) fn(value);
    for (const value of this.v6.values()) fn(value);
  }
}

const LOW_56_BITS = (1n << 56n) - 1n;

/**
 * V8 hashes a BigInt by its lowest 64-bit digit only, and an IPv6 prefix's low 64 bits are
 * usually all zero: keyed by (address << 8 | length), 20k /64s land in one hash bucket and
 * took 9 s of CPU to insert (measured, Node 20). So the lowest digit is a fold of both
 * halves of the address plus the length, and the whole address sits above it, which keeps
 * the key unique.
 */
function ipv6Key(dst: IpNet): bigint {
  const fold = ((dst.value >> 64n) ^ dst.value) & LOW_56_BITS;
  return (dst.value << 64n) | (fold << 8n) | BigInt(dst.prefixLength);
}

/** The prefix with its host bits cleared (the kernel refuses IPv4 routes with them set). */
function networkPrefix(prefix: IpNet): IpNet {
  if (prefix.family === 4) {
    const address = Number(prefix.value);
    const mask = prefix.prefixLength === 0 ? 0 : (0xffffffff << (32 - prefix.prefixLength)) >>> 0;
    const network = (address & mask) >>> 0;
    return network === address ? prefix : { family: 4, value: BigInt(network), prefixLength: prefix.prefixLength };
  }
  const hostBits = BigInt(128 - prefix.prefixLength);
  const value = (prefix.value >> hostBits) << hostBits;
  return value === prefix.value ? prefix : { family: 6, value, prefixLength: prefix.prefixLength };
}

function defaultMetric(family: IpFamily): number {
  return family === 4 ? 0 : IPV6_DEFAULT_METRIC;
}

function metricOf(route: DesiredRoute): number {
  const { metric, prefix } = route;
  return metric === undefined || (metric === 0 && prefix.family === 6) ? defaultMetric(prefix.family) : metric;
}

function describe(route: DesiredRoute): string {
  const gateway = route.gateway ? ` via ${formatIp(route.gateway)}` : '';
  const device = route.device ? ` dev ${route.device}` : '';
  return `${route.kind === 'blackhole' ? 'blackhole ' : ''}${formatIpNet(route.prefix)}${gateway}${device}`;
}

function validate(route: DesiredRoute): void {
  const { prefix } = route;
  if (!Number.isInteger(prefix.prefixLength) || prefix.prefixLength < 0 || prefix.prefixLength > bitsOf(prefix.family)) {
    throw new InvalidRouteError(`invalid route "${describe(route)}": bad prefix length`);
  }
  switch (route.kind) {
    case 'via':
      if (!route.gateway) throw new InvalidRouteError(`invalid route "${describe(route)}": kind "via" needs a gateway`);
      if (route.gateway.family !== prefix.family) throw new InvalidRouteError(`invalid route "${describe(route)}": the gateway's family differs from the prefix's`);
      break;
    case 'dev':
      if (!route.device) throw new InvalidRouteError(`invalid route "${describe(route)}": kind "dev" needs a device`);
      if (route.gateway) throw new InvalidRouteError(`invalid route "${describe(route)}": kind "dev" takes no gateway`);
      break;
    case 'blackhole':
      if (route.gateway || route.device) throw new InvalidRouteError(`invalid route "${describe(route)}": a blackhole takes no gateway or device`);
      break;
    default:
      throw new InvalidRouteError(`invalid route "${formatIpNet(prefix)}": unknown kind "${String((route as { kind: unknown }).kind)}"`);
  }
  if (route.onlink && !route.device) throw new InvalidRouteError(`invalid route "${describe(route)}": onlink needs a device`);
}

/** The desired route is the one we already want: nothing changed for its prefix. */
function asked(wanted: OwnedRoute, route: DesiredRoute): boolean {
  return (
    wanted.kind === route.kind &&
    wanted.priority === metricOf(route) &&
    wanted.gateway?.value === route.gateway?.value &&
    wanted.device === route.device &&
    wanted.onlink === (route.onlink === true)
  );
}

/** The same route in the kernel's terms: nothing to send. */
function sameRoute(wanted: OwnedRoute, installed: OwnedRoute): boolean {
  if (wanted.kind !== installed.kind || wanted.priority !== installed.priority) return false;
  if (wanted.kind === 'blackhole') return true; // the kernel puts IPv6 blackholes on lo; nothing else counts
  if (wanted.onlink !== installed.onlink) return false;
  if (wanted.gateway?.value !== installed.gateway?.value) return false;
  // A `via` without a device lets the kernel pick one, which the dump then reports.
  return wanted.device === undefined || wanted.oif === installed.oif;
}

export interface RouteChanges {
  /** routes to install or change (the later of two for one prefix wins) */
  set?: Iterable<DesiredRoute>;
  /** prefixes whose route to remove */
  remove?: Iterable<IpNet>;
}

export class KernelRoutes {
  private readonly table: number;
  private readonly protocol: number;
  private readonly log: Logger;
  private readonly resyncIntervalMs: number;
  /** What we believe the kernel holds (of ours, in our table). */
  private installed = new PrefixMap<OwnedRoute>();
  /** The desired set. */
  private readonly wanted = new PrefixMap<OwnedRoute>();
  /** Prefixes where `wanted` and `installed` may differ: changed since, or failed in, the last apply. */
  private readonly dirty = new PrefixMap<IpNet>();
  private generation = 0;
  /** Prefixes (formatIpNet) whose add failed with EEXIST right after a dump: another protocol holds them. */
  private readonly conflicts = new Set<string>();
  private lastFullSyncAt = Number.NEGATIVE_INFINITY;
  private readonly deviceIndexes = new Map<string, number>();
  private readonly hops = new Hops();
  /** The apply in flight; settles (never rejects) when it is done. */
  private running: Promise<void> | undefined;
  /** The reconcile queued behind the one in flight: later calls join it (and may make it full). */
  private queued: Promise<RouteSyncResult> | undefined;
  private queuedFull = false;

  constructor(
    private readonly rtnl: Rtnl,
    options: KernelRoutesOptions,
  ) {
    this.table = options.table ?? RT_TABLE_MAIN;
    this.protocol = options.protocol ?? RTPROT_PONTOON_BGP;
    this.log = options.log;
    this.resyncIntervalMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
  }

  /**
   * Makes our routes in the table exactly `desired` (the whole set; of two routes for one
   * prefix the later wins). Rejects with InvalidRouteError before changing anything if a
   * route is malformed, RouteSyncError if a batch broke off (the next sync dumps). The
   * desired set is taken now; the kernel is written when the apply in flight, if any, is
   * done (see `reconcileSoon`).
   */
  async sync(desired: Iterable<DesiredRoute>): Promise<RouteSyncResult> {
    const routes = [...desired];
    routes.forEach(validate);
    const generation = ++this.generation;
    for (const route of routes) this.want(route, generation);
    this.wanted.forEach((route) => {
      if (route.generation === generation) return;
      this.wanted.delete(route.dst);
      this.dirty.set(route.dst, route.dst);
    });
    return this.reconcileSoon(false);
  }

  /** Applies changes to the desired set: what a few changed best paths cost, whatever its size. */
  async update(changes: RouteChanges): Promise<RouteSyncResult> {
    const set = [...(changes.set ?? [])];
    set.forEach(validate);
    for (const route of set) this.want(route, this.generation);
    for (const prefix of changes.remove ?? []) {
      const dst = networkPrefix(prefix);
      this.wanted.delete(dst);
      this.dirty.set(dst, dst);
    }
    return this.reconcileSoon(false);
  }

  /** A full resync (dump, diff the desired set against it, apply): the drift repair a timer calls. */
  resync(): Promise<RouteSyncResult> {
    return this.reconcileSoon(true);
  }

  /** Settles when no apply is in flight or queued (what a stopping speaker waits for). */
  async idle(): Promise<void> {
    while (this.queued || this.running) await (this.queued ?? this.running)?.catch(() => undefined);
  }

  /** Our routes in our table as the kernel holds them now, both families (a fresh dump). */
  dump(): DesiredRoute[] {
    const names = new Map(this.rtnl.links().map((link) => [link.index, link.name]));
    return this.dumpOwned(names).map((route) => {
      const out: DesiredRoute = { prefix: route.dst, kind: route.kind === 'other' ? 'dev' : route.kind, metric: route.priority };
      if (route.gateway) out.gateway = route.gateway;
      if (route.device !== undefined) out.device = route.device;
      if (route.onlink) out.onlink = true;
      return out;
    });
  }

  /**
   * Applies run one at a time: each plans against `installed`, which only the apply's
   * replies bring up to date. With none in flight an apply starts now — its plan and its
   * send, even in the middle of a long socket-read callback, so a table transfer streams
   * into the kernel. Calls made while one is in flight share the next, which plans from
   * every change recorded by then: the kernel writes coalesce into fewer, larger batches
   * while the previous one is being inserted.
   */
  private reconcileSoon(full: boolean): Promise<RouteSyncResult> {
    if (this.queued) {
      this.queuedFull ||= full;
      return this.queued;
    }
    if (!this.running) return this.start(full);
    this.queuedFull = full;
    const queued = this.running.then(() => {
      this.queued = undefined;
      return this.start(this.queuedFull);
    });
    this.queued = queued;
    return queued;
  }

  private start(full: boolean): Promise<RouteSyncResult> {
    const result = this.reconcile(full || this.resyncDue());
    const running: Promise<void> = result.then(
      () => this.finished(running),
      () => this.finished(running),
    );
    this.running = running;
    return result;
  }

  private finished(running: Promise<void>): void {
    if (this.running === running) this.running = undefined;
  }

  private resyncDue(): boolean {
    return Date.now() - this.lastFullSyncAt >= this.resyncIntervalMs;
  }

  private want(route: DesiredRoute, generation: number): void {
    const dst = networkPrefix(route.prefix);
    const current = this.wanted.get(dst);
    if (current && asked(current, route)) {
      current.generation = generation;
      return;
    }
    const type = route.kind === 'blackhole' ? RTN_BLACKHOLE : RTN_UNICAST;
    const owned = new OwnedRoute(dst, this.hop(dst.family, route.kind, type, metricOf(route), route.gateway, undefined, route.onlink === true, route.device));
    owned.generation = generation;
    this.wanted.set(dst, owned);
    this.dirty.set(dst, dst);
  }

  private async reconcile(full: boolean): Promise<RouteSyncResult> {
    const startedAt = performance.now();
    const failed: RouteSyncFailure[] = [];
    const upserts: RouteOp[] = [];
    const deletes: RouteOp[] = [];
    /** new route (an add) → the route of another metric it supersedes */
    const superseded = new Map<Route, OwnedRoute>();
    /** a delete's message → the installed route it removes */
    const deleting = new Map<Route, OwnedRoute>();
    const remove = (have: OwnedRoute): void => {
      const route = this.forDelete(have);
      deleting.set(route, have);
      deletes.push({ op: 'delete', route });
    };
    const plan = (want: OwnedRoute | undefined, have: OwnedRoute | undefined): void => {
      if (!want) {
        if (have) remove(have);
        return;
      }
      const oif = this.resolveDevice(want);
      if (oif === null) {
        failed.push({ prefix: want.dst, op: have ? 'replace' : 'add', code: 'ENODEV', text: `device "${want.device ?? ''}" does not exist` });
        return;
      }
      const route = oif === undefined || oif === want.oif ? want : this.withOif(want, oif);
      if (route !== want) this.wanted.set(route.dst, route);
      if (have && sameRoute(route, have)) {
        // `have` is what `installed` holds for the prefix; after a dump it is the wanted
        // route's dumped twin. Keep one object per prefix.
        this.installed.set(route.dst, route);
        return;
      }
      if (have && have.priority === route.priority) {
        upserts.push({ op: 'replace', route });
      } else {
        upserts.push({ op: 'add', route });
        if (have) superseded.set(route, have);
      }
    };

    if (full) {
      this.deviceIndexes.clear();
      this.conflicts.clear();
      this.hops.clear();
      const observed = new PrefixMap<OwnedRoute>();
      for (const route of this.dumpOwned(undefined)) {
        const seen = observed.get(route.dst);
        if (!seen) {
          observed.set(route.dst, route);
          continue;
        }
        // Two of ours for one prefix (different metrics: a crash in a metric change). Keep
        // the one that is wanted as it is, if either is; delete the other.
        const want = this.wanted.get(route.dst);
        const keepNew = want !== undefined && sameRoute(want, route) && !sameRoute(want, seen);
        if (keepNew) observed.set(route.dst, route);
        remove(keepNew ? seen : route);
      }
      this.installed = observed;
      this.dirty.clear();
      this.lastFullSyncAt = Date.now();
      this.wanted.forEach((want) => plan(want, observed.get(want.dst)));
      observed.forEach((have) => {
        if (!this.wanted.has(have.dst)) plan(undefined, have);
      });
    } else {
      this.dirty.forEach((dst) => plan(this.wanted.get(dst), this.installed.get(dst)));
    }
    // Failures stay dirty (retried next time); everything planned is settled unless it fails.
    this.dirty.clear();
    for (const failure of failed) this.dirty.set(failure.prefix, failure.prefix);

    let added = 0;
    let replaced = 0;
    let deleted = 0;
    let drifted = false;
    const upsertFailures = await this.apply(upserts, 'add or replace');
    let next = 0;
    for (const [index, { op, route }] of upserts.entries()) {
      const owned = route as OwnedRoute;
      const failure = upsertFailures[next]?.index === index ? upsertFailures[next++] : undefined;
      if (failure) {
        failed.push(failureOf(failure));
        this.dirty.set(owned.dst, owned.dst);
        superseded.delete(route);
        if (failure.code === 'ENODEV' && owned.device !== undefined) this.deviceIndexes.delete(owned.device);
        if (failure.code === 'EEXIST') {
          const prefix = formatIpNet(owned.dst);
          if (full) this.conflicts.add(prefix);
          // An EEXIST the last dump did not predict: our picture of the kernel is off (or
          // another daemon just took the prefix). Look again next time.
          else if (!this.conflicts.has(prefix)) drifted = true;
        }
        continue;
      }
      this.installed.set(owned.dst, owned);
      if (op === 'replace') replaced++;
      else added++;
    }
    // Phase 2, after the adds: deletes, with the old routes of metric changes whose new
    // route went in (make before break).
    for (const old of superseded.values()) remove(old);

    const deleteFailures = await this.apply(deletes, 'delete');
    next = 0;
    for (const [index, { route }] of deletes.entries()) {
      const failure = deleteFailures[next]?.index === index ? deleteFailures[next++] : undefined;
      const gone = deleting.get(route) as OwnedRoute;
      // ESRCH: already gone (with its device, or by hand), which is what we wanted.
      if (failure && failure.code !== 'ESRCH' && failure.code !== 'ENOENT') {
        failed.push(failureOf(failure));
        this.dirty.set(gone.dst, gone.dst);
        continue;
      }
      // Only if it still stands for the deleted route: a metric change's new route, added
      // in phase 1, stays (and so does a route the desired set asked back meanwhile: its
      // prefix is dirty and the next apply adds it).
      if (this.installed.get(gone.dst) === gone) this.installed.delete(gone.dst);
      deleted++;
    }

    if (drifted) this.lastFullSyncAt = Number.NEGATIVE_INFINITY;
    this.report(full, added, replaced, deleted, failed, performance.now() - startedAt);
    return { added, replaced, deleted, failed, fullResync: full };
  }

  private async apply(ops: RouteOp[], what: string): Promise<RouteOpFailure[]> {
    if (ops.length === 0) return [];
    try {
      return await this.rtnl.applyRoutesInBackground(ops);
    } catch (err) {
      // Some messages may have run: only a dump can tell which.
      this.lastFullSyncAt = Number.NEGATIVE_INFINITY;
      throw new RouteSyncError(`failed to ${what} ${ops.length} routes in table ${this.table}: ${String(err)}`, { cause: err });
    }
  }

  /** `ms`: from the plan to the kernel's last reply (the batch is inserted on a threadpool thread meanwhile). */
  private report(full: boolean, added: number, replaced: number, deleted: number, failed: RouteSyncFailure[], ms: number): void {
    if (added + replaced + deleted > 0 || full) {
      this.log.info({ table: this.table, full, added, replaced, deleted, failed: failed.length, installed: this.installed.size, ms: Math.round(ms) }, 'synced kernel routes');
    }
    // A sample: a missing tunnel device fails every route through it. Known conflicts
    // are retried on every sync and logged once, at the resync that found them.
    for (const failure of failed.slice(0, 10)) {
      const known = !full && failure.code === 'EEXIST' && this.conflicts.has(formatIpNet(failure.prefix));
      this.log[known ? 'debug' : 'warn']({ table: this.table, prefix: formatIpNet(failure.prefix), op: failure.op, code: failure.code, text: failure.text }, 'failed to install route');
    }
  }

  /** The route's device index (undefined: it names none), or null when the device is missing. */
  private resolveDevice(route: OwnedRoute): number | undefined | null {
    if (route.device === undefined) return undefined;
    let index = this.deviceIndexes.get(route.device);
    if (index === undefined) {
      index = this.rtnl.linkByName(route.device)?.index;
      if (index === undefined) return null;
      this.deviceIndexes.set(route.device, index);
    }
    return index;
  }

  /** Our routes in our table; with `names`, each with the name of its device. */
  private dumpOwned(names: Map<number, string> | undefined): OwnedRoute[] {
    return this.rtnl.routesOfProtocol(this.protocol, { table: this.table }).map((route) => {
      // A default route has no RTA_DST.
      const dst = route.dst ?? { family: route.family, value: 0n, prefixLength: 0 };
      const type = route.type ?? RTN_UNICAST;
      const kind = type === RTN_BLACKHOLE ? 'blackhole' : type !== RTN_UNICAST ? 'other' : route.gateway ? 'via' : route.oif !== undefined ? 'dev' : 'other';
      const device = route.oif === undefined || kind === 'blackhole' ? undefined : names?.get(route.oif);
      return new OwnedRoute(dst, this.hop(route.family, kind, type, route.priority ?? defaultMetric(route.family), route.gateway, route.oif, route.onlink === true, device));
    });
  }

  private hop(family: IpFamily, kind: Hop['kind'], type: number, priority: number, gateway: Ip | undefined, oif: number | undefined, onlink: boolean, device: string | undefined): Hop {
    return this.hops.intern(family, kind, this.table, this.protocol, type, priority, gateway, oif, onlink, device);
  }

  /** The route with its device resolved to `oif`. */
  private withOif(route: OwnedRoute, oif: number): OwnedRoute {
    const { hop } = route;
    const resolved = new OwnedRoute(route.dst, this.hop(hop.family, hop.kind, hop.type, hop.priority, hop.gateway, oif, hop.onlink, hop.device));
    resolved.generation = route.generation;
    return resolved;
  }

  /**
   * What a delete sends: the kernel's key (prefix, table, metric), our protocol and the
   * type, no next hop. The kernel matches protocol and type on delete, so this removes
   * only ours.
   */
  private forDelete(route: OwnedRoute): OwnedRoute {
    const { hop } = route;
    return new OwnedRoute(route.dst, this.hop(hop.family, hop.kind, hop.type, hop.priority, undefined, undefined, false, undefined));
  }
}

function failureOf(failure: RouteOpFailure): RouteSyncFailure {
  const prefix = (failure.op.route as OwnedRoute).dst;
  return failure.text === undefined ? { prefix, op: failure.op.op, code: failure.code } : { prefix, op: failure.op.op, code: failure.code, text: failure.text };
}
