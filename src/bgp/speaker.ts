/**
 * The BGP speaker: sessions (session.ts, one FSM per peer) → RIB (rib/, import policy,
 * decision, reflection, Adj-RIB-Out) → kernel routes (kernel.ts) and UPDATEs to the peers.
 *
 *   UPDATE in ─→ rib.receive ─→ changes ─┬─→ (next tick) drain every Established peer → UPDATEs out
 *                                        └─→ (next tick) kernel.update(best routes' next hops)
 *
 * Work is coalesced per event-loop turn: a burst of 200 UPDATEs carrying 100k prefixes is one
 * export pass and one batched netlink apply, not 200.
 *
 * Graceful restart (RFC 4724):
 * - receiver: a peer that negotiated GR and drops (TCP or hold timer) keeps its routes, marked
 *   stale, in the Loc-RIB and the kernel; they are swept when it sends End-of-RIB after
 *   coming back, or when its restart time (then the stale time) runs out.
 * - restarting speaker: on start the kernel's routes of our protocol are left alone (no flush:
 *   forwarding goes on) and our OPENs carry the R bit with forwarding preserved; the first
 *   kernel sync is deferred until every peer has sent End-of-RIB or the restart time passed
 *   (§4.1 selection deferral), so a restart never withdraws a route that is still good.
 */
import type { Server } from 'node:http';
import { addProcessMetrics, serveTelemetry } from '../lib/telemetry.js';
import { describeError } from '../lib/errors.js';
import { formatIp, formatIpNet, type Ip, type IpNet } from '../lib/ip.js';
import type { Logger } from '../lib/log.js';
import type { Rtnl } from '../lib/netlink/rtnl.js';
import { endOfRib, isEndOfRib } from './codec/index.js';
import { BgpConfigError, formatIdentifier, type BgpConfig, type PeerConfig } from './config.js';
import { ControlServer, type PeerStatus, type RouteView, type SpeakerStatus } from './control.js';
import type { DownInfo, NegotiatedSession, State } from './fsm.js';
import { type DesiredRoute, KernelRoutes, type RouteSyncResult } from './kernel.js';
import { BgpMetrics } from './metrics.js';
import { FAMILIES } from './rib/prefix.js';
import { type KeyedRibChange, Rib, type RibChanges } from './rib/rib.js';
import { BgpListener, BgpPeerSession, peerKey } from './session.js';
import { CEASE_SUBCODE, type Family, type PathAttributes, type PeerRef, type Route } from './types.js';

/** How long routes of a re-established GR peer stay stale waiting for its End-of-RIB (BIRD: 360 s). */
const STALE_TIME_MS = 360_000;
/** Best-path changes one flush carries at most while a burst is coming in (see apply). */
const STREAM_CHANGES = 4096;

export interface SpeakerOptions {
  readonly config: BgpConfig;
  readonly log: Logger;
  /** kernel routes go through this rtnetlink socket (the node's namespace); required when kernelSync */
  readonly rtnl?: Rtnl;
  /** our OPENs say we restarted with forwarding state kept (set when kernel routes of ours exist at start) */
  readonly restarting?: boolean;
  /** overrides how a best route becomes a kernel route (the cluster backend routes via IPIP) */
  readonly kernelRoute?: (route: Route) => DesiredRoute | undefined;
}

interface Peer {
  readonly config: PeerConfig;
  readonly key: string;
  readonly session: BgpPeerSession;
  /** set while Established and known to the RIB */
  negotiated?: NegotiatedSession;
  /** families whose End-of-RIB we still owe the peer (sent after the first full drain) */
  endOfRibOwed: Family[];
  /** families whose End-of-RIB the peer has sent since it came up */
  readonly endOfRibReceived: Set<Family>;
  /** timers sweeping stale routes kept through the peer's restart */
  readonly staleTimers: Map<Family, NodeJS.Timeout>;
  lastError: string;
}

export class Speaker {
  private readonly rib: Rib;
  private readonly peers = new Map<string, Peer>();
  private readonly kernel: KernelRoutes | undefined;
  private listener: BgpListener | undefined;
  private control: ControlServer | undefined;
  private metricsServer: Server | undefined;
  private flushScheduled = false;
  /** prefixes whose best route changed since the last kernel apply */
  private kernelDirty: KeyedRibChange[] = [];
  /** best-path changes since the last flush: a long burst flushes every STREAM_CHANGES */
  private changesSinceFlush = 0;
  private kernelDeferred: boolean;
  private deferralTimer: NodeJS.Timeout | undefined;
  private readonly metrics: BgpMetrics;
  private stopped = false;
  private started = false;

  constructor(private readonly options: SpeakerOptions) {
    const { config } = options;
    this.rib = new Rib({ asn: config.localAsn, routerId: config.routerId, ...(config.clusterId !== undefined ? { clusterId: config.clusterId } : {}) });
    if (config.kernelSync) {
      if (!options.rtnl) throw new BgpConfigError('kernelSync', 'needs an rtnetlink socket (the speaker was built without one)');
      this.kernel = new KernelRoutes(options.rtnl, { log: options.log.child({ component: 'kernel' }) });
    }
    this.kernelDeferred = options.restarting === true && this.kernel !== undefined;
    this.metrics = new BgpMetrics(() => this.status());
    for (const peer of config.peers) this.addPeer(peer);
  }

  async start(): Promise<void> {
    const { config, log } = this.options;
    for (const prefix of config.announce) this.apply(this.rib.originate(prefix, this.ownAttributes(prefix)));
    if (config.listenAddress) {
      this.listener = new BgpListener({ address: config.listenAddress, port: config.listenPort, log });
      for (const peer of this.peers.values()) this.listener.add(peer.session);
      await this.listener.listen();
    }
    this.control = new ControlServer(config.controlSocket, { status: () => this.status(), routes: () => this.routes(), 'adj-rib-in': () => this.adjRibIn() });
    await this.control.listen();
    if (config.metricsAddress) this.metricsServer = await this.serveMetrics(config.metricsAddress);
    if (this.kernel && !this.kernelDeferred) this.syncKernel(true);
    if (this.kernelDeferred) {
      log.info({ restartTimeSeconds: config.gracefulRestart.restartTimeSeconds }, 'restarting with forwarding state kept: kernel routes stay until every peer sent End-of-RIB');
      this.deferralTimer = setTimeout(() => this.endDeferral('restart time passed'), config.gracefulRestart.restartTimeSeconds * 1000);
      if (this.peers.size === 0) this.endDeferral('no peers');
    }
    this.started = true;
    for (const peer of this.peers.values()) peer.session.start();
    log.info({ asn: config.localAsn, routerId: formatIdentifier(config.routerId), peers: this.peers.size, announce: config.announce.map(formatIpNet) }, 'BGP speaker started');
  }

  /** Stops every session (with Cease, or silently when `graceful`: we will be back) and the servers. */
  async stop(graceful = false): Promise<void> {
    this.stopped = true;
    clearTimeout(this.deferralTimer);
    for (const peer of this.peers.values()) {
      for (const timer of peer.staleTimers.values()) clearTimeout(timer);
      peer.session.stop(graceful ? { gracefulRestart: true, reason: 'restarting' } : { reason: 'speaker stopped' });
    }
    await Promise.all([...this.peers.values()].map((p) => p.session.close()));
    await this.listener?.close();
    this.control?.close();
    this.metricsServer?.close();
    await this.kernel?.idle();
  }

  /**
   * Makes the peer set `configs` at run time (the cluster agent's peers follow Node objects):
   * new peers are started, gone ones stopped with Cease/Peer De-configured and their routes
   * withdrawn, changed ones (ASN, role, port) restarted.
   */
  setPeers(configs: readonly PeerConfig[]): void {
    const wanted = new Map(configs.map((c) => [peerKey(c.address), c]));
    for (const [key, peer] of this.peers) {
      const next = wanted.get(key);
      if (next && samePeerConfig(next, peer.config)) continue;
      this.peers.delete(key);
      for (const timer of peer.staleTimers.values()) clearTimeout(timer);
      peer.session.stop({ subcode: CEASE_SUBCODE.PEER_DECONFIGURED, reason: 'peer removed from the configuration' });
      this.listener?.remove(peer.session);
      void peer.session.close();
      peer.negotiated = undefined;
      this.apply(this.rib.removePeer(key));
      // A de-configured peer is not coming back: routes kept stale for its restart go too.
      for (const family of FAMILIES) this.apply(this.rib.sweepStale(key, family));
      this.options.log.info({ peer: key }, next ? 'peer changed: restarting its session' : 'peer removed');
    }
    for (const [key, config] of wanted) {
      if (this.peers.has(key)) continue;
      const peer = this.addPeer(config);
      this.listener?.add(peer.session);
      if (this.started) peer.session.start();
      this.options.log.info({ peer: key, asn: config.asn, rrClient: config.routeReflectorClient }, 'peer added');
    }
  }

  private addPeer(config: PeerConfig): Peer {
    const key = peerKey(config.address);
    const { config: speaker, log } = this.options;
    const gr = speaker.gracefulRestart;
    const local = speaker.listenAddress?.family === config.address.family ? speaker.listenAddress : undefined;
    const session = new BgpPeerSession({
      peerAddress: config.address,
      peerPort: config.port,
      ...(local ? { localAddress: local } : {}),
      localAsn: speaker.localAsn,
      peerAsn: config.asn,
      routerId: speaker.routerId,
      holdTimeSeconds: config.holdTimeSeconds ?? speaker.holdTimeSeconds,
      families: FAMILIES,
      passive: config.passive,
      ...(gr.enabled ? { gracefulRestart: { restartTimeSeconds: gr.restartTimeSeconds, restarting: this.options.restarting === true, forwardingPreserved: this.options.restarting === true } } : {}),
      log,
      handlers: {
        established: (negotiated) => this.established(peer, negotiated),
        update: (decoded) => {
          const family = isEndOfRib(decoded.message);
          if (family) {
            this.endOfRib(peer, family);
            return;
          }
          if (decoded.problems?.length) log.warn({ peer: key, problems: decoded.problems, treatAsWithdraw: decoded.treatAsWithdraw === true }, 'UPDATE with errors (RFC 7606)');
          this.apply(this.rib.receive(key, decoded.message, decoded.treatAsWithdraw ? { treatAsWithdraw: true } : undefined));
        },
        routeRefresh: () => {
          this.rib.resend(key);
          this.scheduleFlush();
        },
        down: (info) => this.down(peer, info),
        stateChanged: (from: State, to: State, reason: string) => {
          if (to === 'Idle' && reason) peer.lastError = reason;
        },
      },
    });
    const peer: Peer = { config, key, session, endOfRibOwed: [], endOfRibReceived: new Set(), staleTimers: new Map(), lastError: '' };
    this.peers.set(key, peer);
    return peer;
  }

  private established(peer: Peer, negotiated: NegotiatedSession): void {
    const { config } = this.options;
    peer.negotiated = negotiated;
    peer.endOfRibReceived.clear();
    const ref: PeerRef = { id: peer.key, address: peer.config.address, asn: negotiated.peerAsn, routerId: negotiated.peerRouterId, type: negotiated.peerType, rrClient: peer.config.routeReflectorClient };
    this.rib.addPeer(ref, { localAddress: { 'ipv4-unicast': config.nextHops.ipv4, 'ipv6-unicast': config.nextHops.ipv6 }, families: negotiated.families });
    // Stale routes of a GR peer wait for its End-of-RIB, but not forever.
    for (const [family, timer] of peer.staleTimers) {
      clearTimeout(timer);
      peer.staleTimers.set(family, setTimeout(() => this.sweep(peer, family, 'stale time passed without End-of-RIB'), STALE_TIME_MS));
    }
    peer.endOfRibOwed = [...negotiated.families];
    this.scheduleFlush();
  }

  private endOfRib(peer: Peer, family: Family): void {
    peer.endOfRibReceived.add(family);
    this.sweep(peer, family, 'End-of-RIB');
    if (this.kernelDeferred && [...this.peers.values()].every((p) => p.negotiated && p.negotiated.families.every((f) => p.endOfRibReceived.has(f)))) this.endDeferral('End-of-RIB from every peer');
  }

  private sweep(peer: Peer, family: Family, why: string): void {
    const timer = peer.staleTimers.get(family);
    if (timer === undefined) return;
    clearTimeout(timer);
    peer.staleTimers.delete(family);
    const changes = this.rib.sweepStale(peer.key, family);
    if (changes.changed.length) this.options.log.info({ peer: peer.key, family, removed: changes.changed.length, why }, 'stale routes swept');
    this.apply(changes);
  }

  private down(peer: Peer, info: DownInfo): void {
    if (!peer.negotiated) return;
    peer.negotiated = undefined;
    peer.lastError = info.reason;
    if (info.graceful && info.families && info.families.length > 0 && !this.stopped) {
      this.rib.markStale(peer.key, info.families);
      const restartMs = (info.restartTimeSeconds ?? 120) * 1000;
      for (const family of info.families) {
        clearTimeout(peer.staleTimers.get(family));
        peer.staleTimers.set(family, setTimeout(() => this.sweep(peer, family, 'peer did not come back within its restart time'), restartMs));
      }
      this.options.log.info({ peer: peer.key, families: info.families, restartTimeSeconds: info.restartTimeSeconds }, 'peer restarting gracefully: its routes are kept stale');
    }
    this.apply(this.rib.removePeer(peer.key));
  }

  private ownAttributes(prefix: IpNet): Partial<PathAttributes> {
    const hop = prefix.family === 4 ? this.options.config.nextHops.ipv4 : this.options.config.nextHops.ipv6;
    return hop ? { nextHop: hop } : {};
  }

  private apply(changes: RibChanges): void {
    if (changes.changed.length === 0) return;
    // An array, not a Map by prefix: a push per change is the cheapest record, and a prefix
    // listed twice just looks up the same best route twice. While deferred nothing is
    // recorded: the deferral ends with a full sync from the RIB.
    if (this.kernel && !this.kernelDeferred) for (const change of changes.changed) this.kernelDirty.push(change);
    this.changesSinceFlush += changes.changed.length;
    // A table transfer arrives as one long burst of socket reads with no turn of the event
    // loop between them: flushing only on the next turn would hold every route back until
    // the whole burst is in the RIB. Flushing every STREAM_CHANGES streams them to the kernel
    // and the peers while the sender is still sending, as BIRD does.
    if (this.changesSinceFlush >= STREAM_CHANGES && !this.stopped) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.stopped) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** One export pass over every Established peer, then one kernel apply. */
  private flush(): void {
    this.changesSinceFlush = 0;
    for (const peer of this.peers.values()) {
      if (!peer.negotiated || peer.session.state !== 'Established') continue;
      try {
        const updates = this.rib.drain(peer.key);
        const eor = peer.endOfRibOwed.map((family) => endOfRib(family));
        peer.endOfRibOwed = [];
        if (updates.length || eor.length) peer.session.sendUpdates([...updates, ...eor]);
      } catch (err) {
        this.options.log.error({ peer: peer.key, err: describeError(err) }, 'could not send UPDATEs');
      }
    }
    if (this.kernel && !this.kernelDeferred && this.kernelDirty.length > 0) this.syncKernel(false);
  }

  private endDeferral(why: string): void {
    if (!this.kernelDeferred) return;
    this.kernelDeferred = false;
    clearTimeout(this.deferralTimer);
    this.options.log.info({ why }, 'selection deferral over: kernel routes reconciled with the RIB');
    this.syncKernel(true);
  }

  private kernelRouteOf(route: Route): DesiredRoute | undefined {
    if (this.options.kernelRoute) return this.options.kernelRoute(route);
    if (route.from.id === '') return undefined; // our own prefixes are served locally
    const gateway = route.attributes.nextHop;
    if (!gateway || gateway.family !== route.prefix.family) return undefined;
    return { prefix: route.prefix, kind: 'via', gateway };
  }

  /**
   * Hands the kernel its changes. KernelRoutes writes them from a threadpool thread, one
   * batch at a time, so the RIB keeps taking UPDATEs while the kernel inserts the last
   * batch; its outcome is logged.
   */
  private syncKernel(full: boolean): void {
    const kernel = this.kernel;
    if (!kernel) return;
    let applied: Promise<RouteSyncResult>;
    if (full) {
      this.kernelDirty = [];
      const desired: DesiredRoute[] = [];
      for (const route of this.rib.best()) {
        const wanted = this.kernelRouteOf(route);
        if (wanted) desired.push(wanted);
      }
      applied = kernel.sync(desired);
    } else {
      const set: DesiredRoute[] = [];
      const remove: IpNet[] = [];
      for (const { key, prefix } of this.kernelDirty) {
        const best = this.rib.bestFor(prefix, key);
        const wanted = best ? this.kernelRouteOf(best) : undefined;
        if (wanted) set.push(wanted);
        else remove.push(prefix);
      }
      this.kernelDirty = [];
      applied = kernel.update({ set, remove });
    }
    applied.then(
      (result) => this.report(result),
      (err: unknown) => this.options.log.error({ err: describeError(err) }, 'kernel route sync failed; the next change retries'),
    );
  }

  private report(result: { added: number; replaced: number; deleted: number; failed: readonly { prefix: IpNet; code: string }[] }): void {
    if (result.failed.length) this.options.log.warn({ failed: result.failed.slice(0, 10).map((f) => `${formatIpNet(f.prefix)} ${f.code}`), count: result.failed.length }, 'some kernel routes could not be installed');
    if (result.added + result.replaced + result.deleted > 0) this.options.log.debug({ added: result.added, replaced: result.replaced, deleted: result.deleted }, 'kernel routes synced');
  }

  /** /metrics with the process metrics, and /healthz: healthy once started (listening, control socket up). */
  private serveMetrics(address: { host: string; port: number }): Promise<Server> {
    addProcessMetrics(this.metrics.registry, 'bgp');
    return serveTelemetry({ address, registry: this.metrics.registry, health: () => ({ healthy: this.started, detail: this.started ? 'ok' : 'starting' }) });
  }

  // ---- what the control socket answers

  status(): SpeakerStatus {
    const { config } = this.options;
    const stats = this.rib.stats();
    const peers: PeerStatus[] = [...this.peers.values()].map((peer) => {
      const s = peer.session.stats();
      const ribStats = stats.perPeer.get(peer.key);
      // A peer never Established has no Adj-RIB-In yet.
      // Counting walks the peer's routes: only while some are kept stale (a status poll during a
      // 1M-prefix ingest must not cost a walk per peer).
      const stale = ribStats && peer.staleTimers.size > 0 ? [...this.rib.adjRibIn(peer.key)].filter((r) => r.stale).length : 0;
      const type = peer.config.asn === config.localAsn ? 'ibgp' : 'ebgp';
      return {
        address: peer.key,
        asn: peer.config.asn,
        type,
        role: peer.config.description ?? (peer.config.routeReflectorClient ? 'rr-client' : type === 'ebgp' ? 'ebgp' : 'mesh'),
        state: s.state,
        since: s.since.toISOString(),
        prefixesReceived: ribStats?.received ?? 0,
        prefixesAccepted: ribStats?.accepted ?? 0,
        prefixesSent: ribStats?.advertised ?? 0,
        updatesIn: s.updatesIn,
        updatesOut: s.updatesOut,
        lastError: s.lastError || peer.lastError,
        staleRoutes: stale,
      };
    });
    return {
      asn: config.localAsn,
      routerId: formatIdentifier(config.routerId),
      ...(config.clusterId !== undefined ? { clusterId: formatIdentifier(config.clusterId) } : {}),
      ...(config.listenAddress ? { listen: `${formatIp(config.listenAddress)}:${config.listenPort}` } : {}),
      peers,
      rib: { ipv4: stats.prefixes['ipv4-unicast'], ipv6: stats.prefixes['ipv6-unicast'] },
    };
  }

  routes(): RouteView[] {
    return [...this.rib.best()].map(routeView);
  }

  adjRibIn(): Record<string, RouteView[]> {
    const out: Record<string, RouteView[]> = {};
    const known = this.rib.stats().perPeer;
    for (const peer of this.peers.values()) out[peer.key] = known.has(peer.key) ? [...this.rib.adjRibIn(peer.key)].map(routeView) : [];
    return out;
  }
}

function samePeerConfig(a: PeerConfig, b: PeerConfig): boolean {
  return formatIp(a.address) === formatIp(b.address) && a.asn === b.asn && a.port === b.port && a.routeReflectorClient === b.routeReflectorClient && a.passive === b.passive && a.holdTimeSeconds === b.holdTimeSeconds && a.description === b.description;
}

const ORIGIN_TEXT = { igp: 'IGP', egp: 'EGP', incomplete: 'incomplete' } as const;

function routeView(route: Route): RouteView {
  const a = route.attributes;
  const path = a.asPath.map((s) => (s.type === 'set' || s.type === 'confed-set' ? `{${s.asns.join(',')}}` : s.asns.join(' '))).join(' ');
  const hop = (ip: Ip | undefined): string => (ip ? formatIp(ip) : '-');
  return {
    prefix: formatIpNet(route.prefix),
    nextHop: hop(a.nextHop),
    asPath: path,
    origin: ORIGIN_TEXT[a.origin],
    ...(a.localPref !== undefined ? { localPref: a.localPref } : {}),
    ...(a.med !== undefined ? { med: a.med } : {}),
    from: route.from.id || 'local',
    ...(a.communities?.length ? { communities: a.communities.map((c) => `${c >>> 16}:${c & 0xffff}`) } : {}),
    ...(a.originatorId !== undefined ? { originatorId: formatIdentifier(a.originatorId) } : {}),
    ...(a.clusterList?.length ? { clusterList: a.clusterList.map(formatIdentifier) } : {}),
    ...(route.stale ? { stale: true } : {}),
  };
}
