/**
 * The log of Loc-RIB changes the Adj-RIBs-Out read from, each at its own cursor.
 *
 * Why a shared log rather than a dirty set per peer: a 100k-prefix table change with 50 peers
 * would be 5M set insertions and as many entries held; the log holds each change once, and
 * each peer walks it when it drains. A prefix changed twice appears twice; the Adj-RIB-Out
 * compares against the current best and what it advertised, so the second visit is a no-op.
 *
 * Entries every cursor has passed are dropped. A peer that falls far behind (it is not being
 * drained) would pin the log, so `overflowing` tells the RIB when to switch that peer to a
 * full comparison against the Loc-RIB instead.
 */
import type { KeyedRibChange } from './loc-rib.js';

export class ChangeJournal {
  private entries: KeyedRibChange[] = [];
  /** absolute position of entries[0] */
  private base = 0;

  get end(): number {
    return this.base + this.entries.length;
  }

  append(changes: readonly KeyedRibChange[]): void {
    for (const change of changes) this.entries.push(change);
  }

  /** Calls `visit` for each entry from `cursor` on (a plain loop: this runs per prefix per peer). */
  forEachSince(cursor: number, visit: (change: KeyedRibChange) => void): void {
    const entries = this.entries;
    for (let i = Math.max(cursor, this.base) - this.base; i < entries.length; i++) {
      const entry = entries[i];
      if (entry !== undefined) visit(entry);
    }
  }

  /** Entries a cursor at `cursor` has yet to read. */
  behind(cursor: number): number {
    return this.end - Math.max(cursor, this.base);
  }

  /** Drops what every cursor has read; `oldest` is the smallest live cursor (end when none). */
  compact(oldest: number): void {
    const drop = Math.min(oldest, this.end) - this.base;
    if (drop <= 0) return;
    // Splicing the front is O(n); do it only once it pays for itself.
    if (drop === this.entries.length) this.entries = [];
    else if (drop >= 1024 && drop * 2 >= this.entries.length) this.entries = this.entries.slice(drop);
    else return;
    this.base += drop;
  }
}
