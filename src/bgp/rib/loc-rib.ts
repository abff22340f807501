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
  /**
   * One path per peer: the route itself while there is one (almost every prefix on a node
   * with one upstream: an array per prefix was ~57 B of the ~550 B a route costs), an
   * array once there are more (a handful at most, so an array beats a Map), undefined when
   * the last is gone.
   */
  paths: Route | Route[] | undefined;
  best: Route | undefined;
}

export type SelectBest = (candidates: readonly Route[]) => Route | undefined;

export class LocRib {
  private readonly tables: Record<Family, Map<PrefixKey, PrefixEntry>> = { 'ipv4-unicast': new Map(), 'ipv6-unicast': new Map() };
  private readonly dirty = new Set<PrefixEntry>();
  private pathTotal = 0;
  /** `selectFrom`'s candidates for a prefix with one path (the decision process keeps no reference to it) */
  private readonly single: Route[] = [];
  /** Prefixes with a best route, kept by commit: a status request reads it during a 100k-prefix transfer. */
  private readonly bestCount: Record<Family, number> = { 'ipv4-unicast': 0, 'ipv6-unicast': 0 };

  constructor(private readonly select: SelectBest) {}

  /** Adds the route, or replaces the path its peer had for the prefix. */
  setPath(route: Route, key: PrefixKey): void {
    const table = this.tables[route.family];
    let entry = table.get(key);
    if (entry === undefined) {
      entry = { prefix: route.prefix, family: route.family, key, paths: route, best: undefined };
      table.set(key, entry);
      this.pathTotal++;
    } else {
      const paths = entry.paths;
      if (paths === undefined) {
        entry.paths = route;
        this.pathTotal++;
      } else if (!Array.isArray(paths)) {
        if (paths.from.id === route.from.id) entry.paths = route;
        else {
          entry.paths = [paths, route];
          this.pathTotal++;
        }
      } else {
        const index = paths.findIndex((path) => path.from.id === route.from.id);
        if (index < 0) {
          paths.push(route);
          this.pathTotal++;
        } else {
          paths[index] = route;
        }
      }
    }
    this.dirty.add(entry);
  }

  removePath(family: Family, key: PrefixKey, peerId: string): void {
    const entry = this.tables[family].get(key);
    if (entry === undefined) return;
    const paths = entry.paths;
    if (paths === undefined) return;
    if (!Array.isArray(paths)) {
      if (paths.from.id !== peerId) return;
      entry.paths = undefined;
    } else {
      const index = paths.findIndex((path) => path.from.id === peerId);
      if (index < 0) return;
      paths.splice(index, 1);
      if (paths.length === 1) entry.paths = paths[0];
    }
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
      const best = this.selectFrom(entry.paths);
      entry.best = best;
      if (entry.paths === undefined) this.tables[entry.family].delete(entry.key);
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

  /** The decision process over a prefix's paths; a single path goes through a reused one-element array. */
  private selectFrom(paths: PrefixEntry['paths']): Route | undefined {
    if (paths === undefined) return undefined;
    if (Array.isArray(paths)) return this.select(paths);
    this.single.push(paths);
    const best = this.select(this.single);
    this.single.pop();
    return best;
  }
}
