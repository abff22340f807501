/**
 * Leases in etcd (v3 API), in flannel's key layout under a configurable prefix. A lease's
 * TTL is an etcd lease: when a node stops renewing, etcd deletes the key and every other
 * node's watch sees the DELETE. Acquisition is a transaction that writes only if the key was
 * never created, so two nodes racing for one subnet cannot both win.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { etcd3 } from '../../lib/lazy.js';
import { formatIpNet, type IpNet } from '../../lib/ip.js';
import {
  decodeLeaseAttrs,
  encodeLeaseAttrs,
  type Lease,
  type LeaseAttrs,
  type LeaseEvent,
  LeaseLostError,
  parseSubnetKey,
  pickFree,
  type SubnetStore,
  SubnetPoolExhaustedError,
  subnetKey,
} from './lease.js';

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix?: string;
  /** Per-request deadline; etcd being down must not hang the daemon. */
  requestTimeoutMs?: number;
}

export class EtcdSubnetStore implements SubnetStore {
  readonly description: string;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(options: EtcdStoreOptions) {
    this.prefix = (options.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    this.timeoutMs = options.requestTimeoutMs ?? 5000;
    this.client = new (etcd3().Etcd3)({ hosts: options.endpoints, dialTimeout: this.timeoutMs });
    this.description = `etcd ${options.endpoints.join(',')} ${this.prefix}`;
  }

  private get subnetsPrefix(): string {
    return `${this.prefix}/subnets/`;
  }

  private keyOf(subnet: IpNet): string {
    return `${this.subnetsPrefix}${subnetKey(subnet)}`;
  }

  private deadline<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: etcd did not answer within ${this.timeoutMs} ms (${this.description})`)), this.timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async getNetworkConfig(): Promise<string | undefined> {
    const value = await this.deadline(this.client.get(`${this.prefix}/config`).string(), 'read network config');
    return value ?? undefined;
  }

  /** Writes the network config (used by `cluster up` and tests). */
  async putNetworkConfig(text: string): Promise<void> {
    await this.deadline(this.client.put(`${this.prefix}/config`).value(text).exec(), 'write network config');
  }

  private leaseFrom(kv: IKeyValue): Lease | undefined {
    const subnet = parseSubnetKey(kv.key.toString());
    if (!subnet) return undefined;
    try {
      return { subnet, attrs: decodeLeaseAttrs(kv.value.toString()) };
    } catch {
      return undefined; // a foreign or corrupt value: not a lease we can route to
    }
  }

  private async listLeases(): Promise<{ leases: Lease[]; revision: string }> {
    const response = await this.deadline(this.client.getAll().prefix(this.subnetsPrefix).exec(), 'list leases');
    const leases = response.kvs.map((kv) => this.leaseFrom(kv)).filter((l): l is Lease => l !== undefined);
    return { leases, revision: response.header.revision };
  }

  private async grant(ttlSeconds: number): Promise<string> {
    const response = await this.deadline(this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }), 'grant etcd lease');
    return response.ID;
  }

  async acquireLease(attrs: LeaseAttrs, candidates: readonly IpNet[], ttlSeconds: number): Promise<Lease> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const { leases } = await this.listLeases();
      const mine = leases.find((lease) => lease.attrs.publicIp === attrs.publicIp && candidates.some((c) => formatIpNet(c) === formatIpNet(lease.subnet)));
      if (mine) {
        // A restarted node keeps its subnet: its pods and routes elsewhere stay valid.
        return this.renewLease({ subnet: mine.subnet, attrs }, ttlSeconds, true);
      }
      const subnet = pickFree(candidates, leases.map((l) => l.subnet));
      if (!subnet) throw new SubnetPoolExhaustedError(`no free subnet left between SubnetMin and SubnetMax (${leases.length} leased)`);
      const leaseId = await this.grant(ttlSeconds);
      const key = this.keyOf(subnet);
      const result = await this.deadline(
        this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(encodeLeaseAttrs(attrs)).lease(leaseId)).commit(),
        'create lease',
      );
      if (result.succeeded) return { subnet, attrs, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
      await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
    }
    throw new SubnetPoolExhaustedError('lost the race for a free subnet 10 times in a row');
  }

  async renewLease(lease: Lease, ttlSeconds: number, overwrite = false): Promise<Lease> {
    const key = this.keyOf(lease.subnet);
    const value = encodeLeaseAttrs(lease.attrs);
    const current = await this.deadline(this.client.get(key).string(), 'read lease');
    if (current !== null && !overwrite) {
      const owner = decodeLeaseAttrs(current).publicIp;
      if (owner !== lease.attrs.publicIp) throw new LeaseLostError(`subnet ${formatIpNet(lease.subnet)} now belongs to ${owner}`);
    }
    if (current === null && !overwrite) throw new LeaseLostError(`lease for ${formatIpNet(lease.subnet)} expired before renewal`);
    const leaseId = await this.grant(ttlSeconds);
    const guard = current === null ? this.client.if(key, 'Create', '==', 0) : this.client.if(key, 'Value', '==', current);
    const result = await this.deadline(guard.then(this.client.put(key).value(value).lease(leaseId)).commit(), 'renew lease');
    if (!result.succeeded) {
      await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
      throw new LeaseLostError(`lease for ${formatIpNet(lease.subnet)} changed while renewing`);
    }
    return { subnet: lease.subnet, attrs: lease.attrs, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
  }

  async watchLeases(
    onEvents: (events: LeaseEvent[]) => void,
    onError: (err: unknown) => void,
    onConnection?: (connected: boolean, err?: unknown) => void,
  ): Promise<{ leases: Lease[]; stop(): void }> {
    const { leases, revision } = await this.listLeases();
    const watcher = await this.client
      .watch()
      .prefix(this.subnetsPrefix)
      .startRevision(String(BigInt(revision) + 1n))
      .create();
    watcher.on('put', (kv) => {
      const lease = this.leaseFrom(kv);
      if (lease) onEvents([{ type: 'added', lease }]);
    });
    watcher.on('delete', (kv) => {
      const subnet = parseSubnetKey(kv.key.toString());
      if (subnet) onEvents([{ type: 'removed', subnet }]);
    });
    watcher.on('error', onError);
    // The library re-dials a lost member and resumes from the last revision it saw; every
    // failed dial is another 'disconnected', told once until the watch is connected again.
    let lost = false;
    watcher.on('disconnected', (err) => {
      if (lost) return;
      lost = true;
      onConnection?.(false, err);
    });
    watcher.on('connected', () => {
      if (!lost) return;
      lost = false;
      onConnection?.(true);
    });
    return { leases, stop: () => void watcher.cancel().catch(() => undefined) };
  }

  async removeLease(subnet: IpNet): Promise<void> {
    await this.deadline(this.client.delete().key(this.keyOf(subnet)).exec(), 'delete lease');
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
