/**
 * Leases in one JSON file guarded by flock: the store for a single node, or for simulated
 * nodes sharing one filesystem, when running etcd is not worth it. Expiry is checked on every
 * access; watching is polling (a lease change every few seconds at most is what this serves).
 *
 *   { "config": "<network config JSON>", "leases": { "10.244.1.0-24": { "value": "...", "expiresAt": 1700000000000 } } }
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { withFileLock } from '../../lib/flock.js';
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
  sameSubnet,
  type SubnetStore,
  SubnetPoolExhaustedError,
  subnetKey,
} from './lease.js';

interface FileState {
  config?: string;
  leases: Record<string, { value: string; expiresAt: number }>;
}

export class FileSubnetStore implements SubnetStore {
  readonly description: string;

  constructor(
    private readonly path: string,
    private readonly pollMs = 1000,
  ) {
    this.description = `file ${path}`;
  }

  private read(): FileState {
    if (!existsSync(this.path)) return { leases: {} };
    const state = JSON.parse(readFileSync(this.path, 'utf8')) as FileState;
    const now = Date.now();
    for (const [key, entry] of Object.entries(state.leases ?? {})) if (entry.expiresAt <= now) delete state.leases[key];
    return { ...state, leases: state.leases ?? {} };
  }

  private update<T>(change: (state: FileState) => T): T {
    return withFileLock(`${this.path}.lock`, () => {
      const state = this.read();
      const result = change(state);
      writeFileSync(`${this.path}.tmp`, JSON.stringify(state, null, 2));
      renameSync(`${this.path}.tmp`, this.path);
      return result;
    });
  }

  private leasesOf(state: FileState): Lease[] {
    const leases: Lease[] = [];
    for (const [key, entry] of Object.entries(state.leases)) {
      const subnet = parseSubnetKey(key);
      if (!subnet) continue;
      try {
        leases.push({ subnet, attrs: decodeLeaseAttrs(entry.value), expiresAt: new Date(entry.expiresAt) });
      } catch {
        // corrupt entry: not routable, skip
      }
    }
    return leases;
  }

  async getNetworkConfig(): Promise<string | undefined> {
    return withFileLock(`${this.path}.lock`, () => this.read().config);
  }

  async putNetworkConfig(text: string): Promise<void> {
    this.update((state) => {
      state.config = text;
    });
  }

  async acquireLease(attrs: LeaseAttrs, candidates: readonly IpNet[], ttlSeconds: number): Promise<Lease> {
    return this.update((state) => {
      const leases = this.leasesOf(state);
      const mine = leases.find((l) => l.attrs.publicIp === attrs.publicIp && candidates.some((c) => sameSubnet(c, l.subnet)));
      const subnet = mine?.subnet ?? pickFree(candidates, leases.map((l) => l.subnet));
      if (!subnet) throw new SubnetPoolExhaustedError(`no free subnet left between SubnetMin and SubnetMax (${leases.length} leased)`);
      const expiresAt = Date.now() + ttlSeconds * 1000;
      state.leases[subnetKey(subnet)] = { value: encodeLeaseAttrs(attrs), expiresAt };
      return { subnet, attrs, expiresAt: new Date(expiresAt) };
    });
  }

  async renewLease(lease: Lease, ttlSeconds: number): Promise<Lease> {
    return this.update((state) => {
      const key = subnetKey(lease.subnet);
      const entry = state.leases[key];
      if (!entry) throw new LeaseLostError(`lease for ${formatIpNet(lease.subnet)} expired before renewal`);
      const owner = decodeLeaseAttrs(entry.value).publicIp;
      if (owner !== lease.attrs.publicIp) throw new LeaseLostError(`subnet ${formatIpNet(lease.subnet)} now belongs to ${owner}`);
      const expiresAt = Date.now() + ttlSeconds * 1000;
      state.leases[key] = { value: encodeLeaseAttrs(lease.attrs), expiresAt };
      return { ...lease, expiresAt: new Date(expiresAt) };
    });
  }

  async watchLeases(onEvents: (events: LeaseEvent[]) => void, onError: (err: unknown) => void): Promise<{ leases: Lease[]; stop(): void }> {
    const snapshot = (): Map<string, string> =>
      new Map(Object.entries(withFileLock(`${this.path}.lock`, () => this.read()).leases).map(([key, entry]) => [key, entry.value]));
    let known = snapshot();
    const timer = setInterval(() => {
      try {
        const now = snapshot();
        const events: LeaseEvent[] = [];
        for (const [key, value] of now) {
          const subnet = parseSubnetKey(key);
          if (!subnet || known.get(key) === value) continue;
          try {
            events.push({ type: 'added', lease: { subnet, attrs: decodeLeaseAttrs(value) } });
          } catch {
            // a corrupt entry is not routable; it must not stop everyone else's events
          }
        }
        for (const key of known.keys()) {
          const subnet = parseSubnetKey(key);
          if (subnet && !now.has(key)) events.push({ type: 'removed', subnet });
        }
        known = now;
        if (events.length > 0) onEvents(events);
      } catch (err) {
        onError(err);
      }
    }, this.pollMs);
    timer.unref();
    const leases = this.leasesOf({ leases: Object.fromEntries([...known].map(([k, v]) => [k, { value: v, expiresAt: Infinity }])) });
    return { leases: leases.map(({ subnet, attrs }) => ({ subnet, attrs })), stop: () => clearInterval(timer) };
  }

  async removeLease(subnet: IpNet): Promise<void> {
    this.update((state) => {
      delete state.leases[subnetKey(subnet)];
    });
  }

  async close(): Promise<void> {
    // nothing held open
  }
}
