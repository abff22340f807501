/**
 * The Loc-RIB (RFC 4271 §3.2, §9.1.2): every accepted path per prefix and the best of them.
 *
 * Writers change paths with `setPath`/`removePath`, which only mark the prefix dirty; `commit`
 * then runs the decision process once per dirty prefix and returns what changed. An UPDATE
 * that touches 500 prefixes therefore costs 500 selections, however its NLRI repeat, and the
 * kernel syncer and the exporters only ever see deltas.
 *
 * A best path replaced by the same peer's path with identical attributes (a re-announcement,
 * or a route flagged stale for graceful restart) is not a change: nothing downstream would
 * do anything different.
 */
import type { IpNet } from '../../lib/ip.js';
import type { Family, Route } from '../types.js';
import { sameAttributes } from './attributes-key.js';
import type { PrefixKey } from './prefix.js';

export interface RibChange {
  readonly prefix: IpNet;
  readonly family: Family;
  /** the new best route; absent when the prefix is no longer reachable */
  readonly best?: Route;
  /** the best route before; absent when the prefix is new */
  readonly previous?: Route;
}

/** A change with the map key the RIB's own bookkeeping needs. */
export interface KeyedRibChange extends RibChange {
  readonly key: PrefixKey;
}

interface PrefixEntry {
  readonly prefix: IpNet;
  readonly family: Family;
  readonly key: PrefixKey;
  /** one path per peer; a handful at most, so an array beats a Map */
  paths: Route[];
  best: Route | undefined;
}

export type SelectBest = (candidates: readonly Route[]) => Route | undefined;

export class LocRib {
  private readonly tables: Record<Family, Map<PrefixKey, PrefixEntry>> = { 'ipv4-unicast': new Map(), 'ipv6-unicast': new Map() };
  private readonly dirty = new Set<PrefixEntry>();
  private pathTotal = 0;
  /** Prefixes with a best route, kept by commit: a status request reads it during a 100k-prefix transfer. */
  private readonly bestCount: Record<Family, number> = { 'ipv4-unicast': 0, 'ipv6-unicast': 0 };

  constructor(private readonly select: SelectBest) {}

  /** Adds the route, or replaces the path its peer had for the prefix. */
  setPath(route: Route, key: PrefixKey): void {
    const table = this.tables[route.family];
    let entry = table.get(key);
    if (entry === undefined) {
      entry = { prefix: route.prefix, family: route.family, key, paths: [route], best: undefined };
      table.set(key, entry);
      this.pathTotal++;
    } else {
      const index = entry.paths.findIndex((path) => path.from.id === route.from.id);
      if (index < 0) {
        entry.paths.push(route);
        this.pathTotal++;
      } else {
        entry.paths[index] = route;
      }
    }
    this.dirty.add(entry);
  }

  removePath(family: Family, key: PrefixKey, peerId: string): void {
    const entry = this.tables[family].get(key);
    if (entry === undefined) return;
    const index = entry.paths.findIndex((path) => path.from.id === peerId);
    if (index < 0) return;
    entry.paths.splice(index, 1);
    this.pathTotal--;
    this.dirty.add(entry);
  }

  /** Re-runs selection for every prefix (the next-hop usability callback's answers changed). */
  touchAll(): void {
    for (const table of Object.values(this.tables)) {
      for (const entry of table.values()) this.dirty.add(entry);
    }
  }

  commit(): KeyedRibChange[] {
    const changes: KeyedRibChange[] = [];
    for (const entry of this.dirty) {
      const previous = entry.best;
      const best = entry.paths.length === 0 ? undefined : this.select(entry.paths);
      entry.best = best;
      if (entry.paths.length === 0) this.tables[entry.family].delete(entry.key);
      if (previous === undefined && best !== undefined) this.bestCount[entry.family]++;
      else if (previous !== undefined && best === undefined) this.bestCount[entry.family]--;
      if (best === previous) continue;
      if (best !== undefined && previous !== undefined && best.from === previous.from && sameAttributes(best.attributes, previous.attributes)) {
        continue;
      }
      const change: KeyedRibChange = { prefix: entry.prefix, family: entry.family, key: entry.key, best, previous };
      changes.push(change);
    }
    this.dirty.clear();
    return changes;
  }

  bestFor(family: Family, key: PrefixKey): Route | undefined {
    return this.tables[family].get(key)?.best;
  }

  *best(family?: Family): IterableIterator<Route> {
    for (const table of family === undefined ? Object.values(this.tables) : [this.tables[family]]) {
      for (const entry of table.values()) {
        if (entry.best !== undefined) yield entry.best;
      }
    }
  }

  /** Calls `visit` for every prefix with a best route (a callback: no allocation per prefix). */
  forEachBest(family: Family, visit: (key: PrefixKey, prefix: IpNet, best: Route) => void): void {
    for (const entry of this.tables[family].values()) {
      if (entry.best !== undefined) visit(entry.key, entry.prefix, entry.best);
    }
  }

  /** Prefixes with a best route. */
  size(family: Family): number {
    return this.bestCount[family];
  }

  get paths(): number {
    return this.pathTotal;
  }
}
