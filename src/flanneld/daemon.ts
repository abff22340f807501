/**
 * The node daemon's loop: wait for the network config, prepare the backend, take a lease,
 * publish subnet.env, then keep the data plane equal to the lease table (watch events plus
 * a periodic resync that repairs drift) and renew the lease before it expires.
 *
 * Dual-stack (EnableIPv6 beside IPv4): one backend per family, each single-family and owning
 * its family's routes — the IPv6 one over the node's IPv6 underlay address (vxlan:
 * `flannel-v6.<VNI>`) — fed the IPv6 view of every lease. The lease, subnet.env and the
 * masquerade rules carry both families.
 *
 * The store may vanish at any time. At start we retry with backoff and say why in the log;
 * once running, the kernel state stays as it is while the store is away, so pods keep
 * talking, and the watch is re-established with a fresh list when it comes back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { retry } from '../lib/backoff.js';
import { describeError } from '../lib/errors.js';
import { formatIp, formatIpNet, type IpNet } from '../lib/ip.js';
import type { Logger } from '../lib/log.js';
import { Rtnl } from '../lib/netlink/rtnl.js';
import { type Backend, createBackend, type ExternalInterface } from './backend/backend.js';
import './backend/alloc.js';
import './backend/hostgw.js';
import './backend/udp.js';
import './backend/vxlan.js';
import { type NetworkConfig, NetworkConfigError, parseNetworkConfig, subnetsOf } from './config.js';
import { describeExternal, findExternalInterface, findExternalInterfaceV6 } from './extiface.js';
import { syncIpMasq } from './ipmasq.js';
import { describeLease, ipv6View, type Lease, type LeaseAttrs, type LeaseEvent, LeaseLostError, sameSubnet, type SubnetStore, subnetKey } from './subnet/lease.js';
import { subnetEnvFor, writeSubnetEnv } from '../api/subnet-env.js';

export interface FlanneldOptions {
  store: SubnetStore;
  iface?: string;
  publicIp?: string;
  /** flannel's --public-ipv6: which IPv6 address of the interface is ours. */
  publicIpv6?: string;
  subnetFile: string;
  ipMasq: boolean;
  leaseTtlSeconds: number;
  renewMarginSeconds: number;
  resyncSeconds: number;
  log: Logger;
}

const MAX_BACKOFF_MS = 30_000;

export interface FlanneldStats {
  /** subnet.env written: pods on this node can be networked */
  readonly configured: boolean;
  readonly subnet?: string;
  readonly publicIp?: string;
  readonly leaseExpiresAt?: Date;
  readonly backend?: string;
  readonly remoteLeases: number;
  readonly lastReconcile?: { readonly at: number; readonly ok: boolean; readonly error?: string };
  readonly reconcileFailures: number;
}

export class Flanneld {
  private readonly rtnl = new Rtnl();
  private stopped = false;
  private readonly stopController = new AbortController();
  private backend: Backend | undefined;
  /** Dual-stack: the IPv6 family's backend. */
  private backend6: Backend | undefined;
  private lease: Lease | undefined;
  private network: NetworkConfig | undefined;
  private readonly remotes = new Map<string, Lease>();
  private readonly reported = new Set<string>();
  private stopWatch: (() => void) | undefined;
  private candidates: IpNet[] = [];
  private mtu: number | undefined;
  /** Ends the renew loop's wait early: our lease was removed from the store. */
  private wakeRenewal: (() => void) | undefined;

  private configured = false;
  private lastReconcile: { at: number; ok: boolean; error?: string } | undefined;
  private reconcileFailures = 0;

  constructor(private readonly options: FlanneldOptions) {}

  /** For /metrics and /healthz: the lease, the backend, the last reconcile. */
  stats(): FlanneldStats {
    return {
      configured: this.configured,
      ...(this.lease ? { subnet: formatIpNet(this.lease.subnet), publicIp: this.lease.attrs.publicIp, ...(this.lease.expiresAt ? { leaseExpiresAt: this.lease.expiresAt } : {}) } : {}),
      ...(this.backend ? { backend: this.backend.type } : {}),
      remoteLeases: this.remotes.size,
      ...(this.lastReconcile ? { lastReconcile: this.lastReconcile } : {}),
      reconcileFailures: this.reconcileFailures,
    };
  }

  /** Retries `step` with exponential backoff until it succeeds or the daemon stops. */
  private async retry<T>(what: string, step: () => Promise<T>): Promise<T> {
    return retry(step, {
      backoff: { initialMs: 500, maxMs: MAX_BACKOFF_MS },
      signal: this.stopController.signal,
      onError: (err, retryInMs) => this.options.log.error({ err: describeError(err), retryInMs }, `${what} failed; retrying`),
    });
  }

  async run(): Promise<void> {
    const { log, store } = this.options;
    log.info({ store: store.description }, 'starting');
    const network: NetworkConfig = (this.network = await this.retry(`read network config from ${store.description}`, async () => {
      const text = await store.getNetworkConfig();
      if (text === undefined) throw new NetworkConfigError('config', `none stored yet (${store.description})`);
      return parseNetworkConfig(text);
    }));
    // The primary family's underlay: IPv6 for an IPv6-only network.
    const ext: ExternalInterface = findExternalInterface(this.rtnl, this.options, network.network.family);
    log.info({ external: describeExternal(ext) }, 'external interface');
    const backend = (this.backend = createBackend(network.backend.type, { rtnl: this.rtnl, ext, network, log: log.child({ backend: network.backend.type }) }));
    const setup = await backend.prepare();
    let attrs: LeaseAttrs = { publicIp: formatIp(ext.address), backendType: backend.type, backendData: setup.backendData };
    let mtu = setup.mtu;
    if (network.ipv6) {
      const ext6 = findExternalInterfaceV6(this.rtnl, ext, this.options.publicIpv6);
      log.info({ external: describeExternal(ext6) }, 'IPv6 external interface');
      const backend6 = (this.backend6 = createBackend(network.backend.type, { rtnl: this.rtnl, ext: ext6, network: network.ipv6, log: log.child({ backend: network.backend.type, family: 6 }) }));
      const setup6 = await backend6.prepare();
      attrs = { ...attrs, publicIpv6: formatIp(ext6.address), backendV6Data: setup6.backendData };
      mtu = Math.min(mtu, setup6.mtu); // one MTU for the pod's interface, both families
    }
    const candidates = (this.candidates = [...subnetsOf(network)]);
    this.lease = await this.retry('acquire subnet lease', () => store.acquireLease(attrs, candidates, this.options.leaseTtlSeconds));
    if (network.ipv6 && !this.lease.ipv6Subnet) {
      throw new NetworkConfigError('EnableIPv6', `the ${store.description} store gave no IPv6 subnet: dual-stack needs the kube subnet manager (--kube-subnet-mgr) with --cluster-cidr v4,v6`);
    }
    log.info({ lease: describeLease(this.lease), mtu }, 'lease acquired');

    this.mtu = mtu;
    this.configureLocal(this.lease);
    log.info({ subnetFile: this.options.subnetFile }, 'wrote subnet.env');
    this.configured = true;

    await this.watch();
    void this.renewLoop();
    while (!this.stopped) {
      await sleep(this.options.resyncSeconds * 1000, undefined, { signal: this.stopController.signal }).catch(() => undefined);
      if (!this.stopped) this.reconcile('resync');
      this.logStats();
    }
  }

  private lastStats = '';

  /** A userspace data path's counters, logged when they changed since the last resync. */
  private logStats(): void {
    const stats = this.backend?.stats?.();
    if (!stats) return;
    const text = JSON.stringify(stats);
    if (text !== this.lastStats) this.options.log.info({ counters: stats }, 'data path counters');
    this.lastStats = text;
  }

  /** Bumped on every (re)watch: errors from an older watcher must not start a second one. */
  private watchGeneration = 0;

  private async watch(): Promise<void> {
    const { store, log } = this.options;
    const generation = ++this.watchGeneration;
    const { leases, stop } = await this.retry('watch leases', () =>
      store.watchLeases(
        (events) => this.onEvents(events),
        (err) => {
          if (generation !== this.watchGeneration || this.stopped) return;
          this.watchGeneration++;
          log.error({ err: describeError(err) }, 'lease watch failed; data plane kept, re-listing');
          this.stopWatch?.();
          void sleep(1000)
            .then(() => (this.stopped ? undefined : this.watch()))
            .catch((retryErr: unknown) => {
              if (!this.stopped) log.error({ err: describeError(retryErr) }, 'could not re-establish the lease watch');
            });
        },
        (connected, err) => {
          if (generation !== this.watchGeneration || this.stopped) return;
          if (connected) log.info({ store: store.description }, 'lease watch resumed; the store is back');
          else log.warn({ store: store.description, err: describeError(err) }, 'lease watch lost the store; data plane kept, resuming when it is back');
        },
      ),
    );
    this.stopWatch = stop;
    this.remotes.clear();
    for (const lease of leases) if (!this.isOwn(lease.subnet)) this.remotes.set(subnetKey(lease.subnet), lease);
    this.reconcile('list');
  }

  private isOwn(subnet: IpNet): boolean {
    return this.lease !== undefined && sameSubnet(this.lease.subnet, subnet);
  }

  private onEvents(events: readonly LeaseEvent[]): void {
    for (const event of events) {
      const subnet = event.type === 'added' ? event.lease.subnet : event.subnet;
      if (this.isOwn(subnet)) {
        if (event.type === 'removed') {
          // Renew now rather than at the next due time (hours away): with the apiserver store
          // a deleted Node comes back with a new podCIDR, and the node is cut off until then.
          this.options.log.warn({ subnet: formatIpNet(subnet) }, 'our lease was removed from the store; renewing it now');
          this.wakeRenewal?.();
        }
        continue;
      }
      if (event.type === 'added') this.remotes.set(subnetKey(subnet), event.lease);
      else this.remotes.delete(subnetKey(subnet));
    }
    this.reconcile('watch');
  }

  private reconcile(reason: string): void {
    if (!this.backend) return;
    try {
      // Rules are reconciled like routes: rewritten whole, so drift is repaired.
      if (reason === 'resync' && this.options.ipMasq && this.lease) this.syncMasq(this.lease);
      const remotes = [...this.remotes.values()];
      const report = this.backend.reconcile(remotes);
      if (this.backend6) {
        const v6 = this.backend6.reconcile(remotes.map(ipv6View).filter((lease): lease is Lease => lease !== undefined));
        report.added += v6.added;
        report.removed += v6.removed;
        report.rejected.push(...v6.rejected);
      }
      this.lastReconcile = { at: Date.now(), ok: true };
      if (report.added || report.removed) this.options.log.info({ reason, added: report.added, removed: report.removed, remotes: this.remotes.size }, 'data plane updated');
      for (const { lease, reason: why } of report.rejected) {
        const key = `${subnetKey(lease.subnet)}|${why}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        this.options.log.error({ lease: describeLease(lease) }, `cannot route to this node: ${why}`);
      }
    } catch (err) {
      this.reconcileFailures++;
      this.lastReconcile = { at: Date.now(), ok: false, error: describeError(err) };
      this.options.log.error({ err: describeError(err), reason }, 'reconcile failed; will retry at next resync');
    }
  }

  private async renewLoop(): Promise<void> {
    const { store, log, leaseTtlSeconds, renewMarginSeconds } = this.options;
    while (!this.stopped && this.lease) {
      const dueMs = (this.lease.expiresAt?.getTime() ?? Date.now()) - renewMarginSeconds * 1000 - Date.now();
      const woken = new Promise<void>((resolve) => (this.wakeRenewal = resolve));
      await Promise.race([sleep(Math.max(dueMs, 1000), undefined, { signal: this.stopController.signal }).catch(() => undefined), woken]);
      this.wakeRenewal = undefined;
      if (this.stopped) return;
      try {
        this.lease = await store.renewLease(this.lease, leaseTtlSeconds);
        log.debug({ lease: describeLease(this.lease) }, 'lease renewed');
      } catch (err) {
        if (err instanceof LeaseLostError) {
          log.warn({ err: err.message }, 'lease lost; acquiring again');
          const { attrs, subnet } = this.lease;
          // The same subnet if the store still has it free (pods keep working), else any.
          const again = await store
            .acquireLease(attrs, [subnet], leaseTtlSeconds)
            .catch(() => store.acquireLease(attrs, this.candidates, leaseTtlSeconds))
            .catch(() => undefined);
          if (again) {
            this.adoptLease(again);
            continue;
          }
        }
        log.error({ err: describeError(err) }, 'lease renewal failed; retrying in 5 s');
        await sleep(5000, undefined, { signal: this.stopController.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * Takes over a re-acquired lease. A different subnet (the apiserver store's node-ipam gave
   * a re-registered Node a new podCIDR) is re-applied locally: backend addresses, subnet.env
   * for new pods, masquerade rules. Pods already running keep addresses from the old subnet
   * and stay unreachable until they are re-created, as with flannel.
   */
  private adoptLease(lease: Lease): void {
    const previous = this.lease;
    this.lease = lease;
    if (!previous || sameSubnet(previous.subnet, lease.subnet) || !this.backend || !this.network) return;
    const { log } = this.options;
    log.warn({ from: formatIpNet(previous.subnet), to: formatIpNet(lease.subnet) }, 'our subnet changed; re-configuring this node (existing pods keep their old addresses)');
    this.remotes.delete(subnetKey(lease.subnet));
    this.configureLocal(lease);
    this.reconcile('lease changed');
  }

  /** Our lease on the local devices, subnet.env and the masquerade rules, every family. */
  private configureLocal(lease: Lease): void {
    const network = this.network;
    if (!network || !this.backend) return;
    this.backend.configureLocal(lease);
    const v6 = ipv6View(lease);
    if (this.backend6 && v6) this.backend6.configureLocal(v6);
    const ipv6 = network.ipv6 && lease.ipv6Subnet ? { network: network.ipv6.network, lease: lease.ipv6Subnet } : undefined;
    writeSubnetEnv(this.options.subnetFile, subnetEnvFor(network.network, lease.subnet, this.mtu ?? 1500, this.options.ipMasq, ipv6));
    if (this.options.ipMasq) this.syncMasq(lease);
  }

  /** flannel's --ip-masq rules for each family (ip6tables for IPv6). */
  private syncMasq(lease: Lease): void {
    if (!this.network) return;
    syncIpMasq(this.network.network, lease.subnet);
    if (this.network.ipv6 && lease.ipv6Subnet) syncIpMasq(this.network.ipv6.network, lease.ipv6Subnet);
  }

  /** Stops the loops; the kernel state stays so traffic keeps flowing across a restart. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    this.stopWatch?.();
    await this.backend?.close();
    await this.backend6?.close();
    await this.options.store.close();
    this.rtnl.close();
  }
}
