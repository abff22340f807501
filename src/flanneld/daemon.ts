/**
 * The node daemon's loop: wait for the network config, prepare the backend, take a lease,
 * publish subnet.env, then keep the data plane equal to the lease table (watch events plus
 * a periodic resync that repairs drift) and renew the lease before it expires.
 *
 * The store may vanish at any time. At start we retry with backoff and say why in the log;
 * once running, the kernel state stays as it is while the store is away, so pods keep
 * talking, and the watch is re-established with a fresh list when it comes back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
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
import { describeExternal, findExternalInterface } from './extiface.js';
import { syncIpMasq } from './ipmasq.js';
import { describeLease, type Lease, type LeaseEvent, LeaseLostError, sameSubnet, type SubnetStore, subnetKey } from './subnet/lease.js';
import { subnetEnvFor, writeSubnetEnv } from './subnetenv.js';

export interface FlanneldOptions {
  store: SubnetStore;
  iface?: string;
  publicIp?: string;
  subnetFile: string;
  ipMasq: boolean;
  leaseTtlSeconds: number;
  renewMarginSeconds: number;
  resyncSeconds: number;
  log: Logger;
}

const MAX_BACKOFF_MS = 30_000;

export class Flanneld {
  private readonly rtnl = new Rtnl();
  private stopped = false;
  private readonly stopController = new AbortController();
  private backend: Backend | undefined;
  private lease: Lease | undefined;
  private network: NetworkConfig | undefined;
  private readonly remotes = new Map<string, Lease>();
  private readonly reported = new Set<string>();
  private stopWatch: (() => void) | undefined;
  private candidates: IpNet[] = [];
  private mtu: number | undefined;
  /** Ends the renew loop's wait early: our lease was removed from the store. */
  private wakeRenewal: (() => void) | undefined;

  constructor(private readonly options: FlanneldOptions) {}

  /** Retries `step` with exponential backoff until it succeeds or the daemon stops. */
  private async retry<T>(what: string, step: () => Promise<T>): Promise<T> {
    let delayMs = 500;
    for (;;) {
      try {
        return await step();
      } catch (err) {
        if (this.stopped) throw err;
        this.options.log.error({ err: describeError(err), retryInMs: delayMs }, `${what} failed; retrying`);
        await sleep(delayMs, undefined, { signal: this.stopController.signal }).catch(() => undefined);
        if (this.stopped) throw err;
        delayMs = Math.min(delayMs * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async run(): Promise<void> {
    const { log, store } = this.options;
    const ext: ExternalInterface = findExternalInterface(this.rtnl, this.options);
    log.info({ external: describeExternal(ext), store: store.description }, 'starting');

    const network: NetworkConfig = (this.network = await this.retry(`read network config from ${store.description}`, async () => {
      const text = await store.getNetworkConfig();
      if (text === undefined) throw new NetworkConfigError('config', `none stored yet (${store.description})`);
      return parseNetworkConfig(text);
    }));
    const backend = (this.backend = createBackend(network.backend.type, { rtnl: this.rtnl, ext, network, log: log.child({ backend: network.backend.type }) }));
    const setup = await backend.prepare();
    const attrs = { publicIp: formatIp(ext.address), backendType: backend.type, backendData: setup.backendData };
    const candidates = (this.candidates = [...subnetsOf(network)]);
    this.lease = await this.retry('acquire subnet lease', () => store.acquireLease(attrs, candidates, this.options.leaseTtlSeconds));
    log.info({ lease: describeLease(this.lease), mtu: setup.mtu }, 'lease acquired');

    backend.configureLocal(this.lease);
    this.mtu = setup.mtu;
    writeSubnetEnv(this.options.subnetFile, subnetEnvFor(network.network, this.lease.subnet, setup.mtu, this.options.ipMasq));
    if (this.options.ipMasq) syncIpMasq(network.network, this.lease.subnet);
    log.info({ subnetFile: this.options.subnetFile }, 'wrote subnet.env');

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
      if (reason === 'resync' && this.options.ipMasq && this.network && this.lease) syncIpMasq(this.network.network, this.lease.subnet);
      const report = this.backend.reconcile([...this.remotes.values()]);
      if (report.added || report.removed) this.options.log.info({ reason, added: report.added, removed: report.removed, remotes: this.remotes.size }, 'data plane updated');
      for (const { lease, reason: why } of report.rejected) {
        const key = `${subnetKey(lease.subnet)}|${why}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        this.options.log.error({ lease: describeLease(lease) }, `cannot route to this node: ${why}`);
      }
    } catch (err) {
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
    const { log, ipMasq, subnetFile } = this.options;
    log.warn({ from: formatIpNet(previous.subnet), to: formatIpNet(lease.subnet) }, 'our subnet changed; re-configuring this node (existing pods keep their old addresses)');
    this.remotes.delete(subnetKey(lease.subnet));
    this.backend.configureLocal(lease);
    writeSubnetEnv(subnetFile, subnetEnvFor(this.network.network, lease.subnet, this.mtu ?? 1500, ipMasq));
    if (ipMasq) syncIpMasq(this.network.network, lease.subnet);
    this.reconcile('lease changed');
  }

  /** Stops the loops; the kernel state stays so traffic keeps flowing across a restart. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    this.stopWatch?.();
    await this.backend?.close();
    await this.options.store.close();
    this.rtnl.close();
  }
}
