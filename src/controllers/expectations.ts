/**
 * Creations and deletions a controller has asked for but not yet seen in its informer cache
 * (client-go's UIDTrackingControllerExpectations).
 *
 * Design note: pods are created with generateName, so a sync that runs before the informer
 * has delivered the pods of the previous sync would count too few and create duplicates.
 * A controller therefore records what it expects before writing, the pod informer's handlers
 * tick the expectations off as the events arrive, and `sync` only creates or deletes while
 * nothing is outstanding. Expectations expire after EXPECTATIONS_TTL_MS so a lost write (a
 * create that failed after being counted) cannot stall an owner forever.
 */
export const EXPECTATIONS_TTL_MS = 60_000;

interface Expectation {
  adds: number;
  /** Keys of the objects we deleted and have not yet seen go (or start terminating). */
  deletes: Set<string>;
  setAtMs: number;
}

export class Expectations {
  private readonly byOwner = new Map<string, Expectation>();

  constructor(private readonly ttlMs = EXPECTATIONS_TTL_MS) {}

  /** True when the owner may act on what the cache shows. */
  satisfied(owner: string, nowMs = Date.now()): boolean {
    const e = this.byOwner.get(owner);
    if (!e) return true;
    if (e.adds <= 0 && e.deletes.size === 0) return true;
    return nowMs - e.setAtMs > this.ttlMs;
  }

  expectCreations(owner: string, count: number): void {
    this.byOwner.set(owner, { adds: count, deletes: new Set(), setAtMs: Date.now() });
  }

  expectDeletions(owner: string, keys: readonly string[]): void {
    this.byOwner.set(owner, { adds: 0, deletes: new Set(keys), setAtMs: Date.now() });
  }

  /** One more creation on top of what is expected (an owner that creates and deletes in one sync). */
  raiseCreations(owner: string): void {
    const e = this.byOwner.get(owner);
    if (e) e.adds += 1;
    else this.byOwner.set(owner, { adds: 1, deletes: new Set(), setAtMs: Date.now() });
  }

  creationObserved(owner: string): void {
    const e = this.byOwner.get(owner);
    if (e) e.adds -= 1;
  }

  deletionObserved(owner: string, key: string): void {
    this.byOwner.get(owner)?.deletes.delete(key);
  }

  delete(owner: string): void {
    this.byOwner.delete(owner);
  }
}
