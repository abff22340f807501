/**
 * One peer's Adj-RIB-In (RFC 4271 §3.2): the routes it advertised to us that passed import
 * policy, attributes as import left them, one per prefix. Prefixes refused by import policy
 * are remembered only by key, so the received/accepted counts stay right.
 *
 * Graceful restart (RFC 4724 §4.2): when the session drops, `markStale` flags the routes of
 * the families the peer preserves forwarding for; the RIB keeps them while the peer restarts.
 * A fresh announcement replaces a stale route; whatever is still stale at End-of-RIB (or when
 * the restart timer fires) is taken out with `takeStale`.
 */
import type { Family, PeerRef, Route } from '../types.js';
import { FAMILIES, type PrefixKey } from './prefix.js';

export class AdjRibIn {
  private readonly tables: Record<Family, Map<PrefixKey, Route>> = { 'ipv4-unicast': new Map(), 'ipv6-unicast': new Map() };
  private readonly refused: Record<Family, Set<PrefixKey>> = { 'ipv4-unicast': new Set(), 'ipv6-unicast': new Set() };

  constructor(public peer: PeerRef) {}

  get(family: Family, key: PrefixKey): Route | undefined {
    return this.table(family).get(key);
  }

  /** Stores the route; returns the one it replaces. */
  set(route: Route, key: PrefixKey): Route | undefined {
    const table = this.table(route.family);
    const previous = table.get(key);
    table.set(key, route);
    this.refusedOf(route.family).delete(key);
    return previous;
  }

  /** Import policy refused the prefix: an earlier accepted route for it is implicitly withdrawn. */
  refuse(family: Family, key: PrefixKey): Route | undefined {
    this.refusedOf(family).add(key);
    return this.take(family, key);
  }

  delete(family: Family, key: PrefixKey): Route | undefined {
    this.refusedOf(family).delete(key);
    return this.take(family, key);
  }

  routes(family?: Family): IterableIterator<Route> {
    return family === undefined ? this.allRoutes() : this.table(family).values();
  }

  entries(family: Family): IterableIterator<[PrefixKey, Route]> {
    return this.table(family).entries();
  }

  /** Flags every route of the families stale; returns the replacement route objects with their keys. */
  markStale(families: readonly Family[]): [PrefixKey, Route][] {
    const marked: [PrefixKey, Route][] = [];
    for (const family of families) {
      const table = this.table(family);
      for (const [key, route] of table) {
        if (route.stale === true) continue;
        const stale: Route = { ...route, stale: true };
        table.set(key, stale);
        marked.push([key, stale]);
      }
    }
    return marked;
  }

  /** Removes and returns the routes of the family still stale. */
  takeStale(family: Family): [PrefixKey, Route][] {
    return this.takeWhere(family, (route) => route.stale === true);
  }

  /** The session is gone: removes everything except stale routes kept for a graceful restart. */
  takeFresh(): [Family, PrefixKey, Route][] {
    const taken: [Family, PrefixKey, Route][] = [];
    for (const family of FAMILIES) {
      this.refusedOf(family).clear();
      for (const [key, route] of this.takeWhere(family, (candidate) => candidate.stale !== true)) taken.push([family, key, route]);
    }
    return taken;
  }

  get accepted(): number {
    let count = 0;
    for (const table of Object.values(this.tables)) count += table.size;
    return count;
  }

  /** Accepted plus refused prefixes: what the peer currently advertises to us. */
  get received(): number {
    let count = this.accepted;
    for (const refused of Object.values(this.refused)) count += refused.size;
    return count;
  }

  private take(family: Family, key: PrefixKey): Route | undefined {
    const table = this.table(family);
    const previous = table.get(key);
    if (previous !== undefined) table.delete(key);
    return previous;
  }

  private takeWhere(family: Family, predicate: (route: Route) => boolean): [PrefixKey, Route][] {
    const table = this.table(family);
    const taken: [PrefixKey, Route][] = [];
    for (const [key, route] of table) {
      if (predicate(route)) taken.push([key, route]);
    }
    for (const [key] of taken) table.delete(key);
    return taken;
  }

  private *allRoutes(): IterableIterator<Route> {
    for (const family of FAMILIES) yield* this.tables[family].values();
  }

  private table(family: Family): Map<PrefixKey, Route> {
    return this.tables[family];
  }

  private refusedOf(family: Family): Set<PrefixKey> {
    return this.refused[family];
  }
}
