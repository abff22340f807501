/**
 * The served record set: records by (name, type), contributed by owners (a Service with its
 * slices, a Namespace, the apex) so one object's change replaces exactly its own records.
 *
 * Existence is kept apart from records because DNS negative answers hinge on it (RFC 8020):
 * a name exists when it, or any name below it, has records or is declared by an owner — the
 * "empty non-terminals" `svc.<zone>`, `_tcp.web.default.svc.<zone>` answer NODATA, never
 * NXDOMAIN. Each contributed name counts once for itself and each ancestor.
 */
import type { DnsRecord, OwnerRecords } from './records.js';

export class Zone {
  private readonly byName = new Map<string, DnsRecord[]>();
  private readonly byOwner = new Map<string, OwnerRecords>();
  private readonly existence = new Map<string, number>();
  private recordCount = 0;

  /** Replaces `owner`'s contribution; returns the names whose records changed. */
  replace(owner: string, next: OwnerRecords | undefined): Set<string> {
    const changed = new Set<string>();
    const previous = this.byOwner.get(owner);
    if (previous) {
      for (const record of previous.records) {
        const list = this.byName.get(record.name);
        if (list) {
          const kept = list.filter((r) => r !== record);
          if (kept.length) this.byName.set(record.name, kept);
          else this.byName.delete(record.name);
        }
        changed.add(record.name);
        this.recordCount--;
      }
      for (const name of namesOf(previous)) this.count(name, -1);
      this.byOwner.delete(owner);
    }
    if (next) {
      for (const record of next.records) {
        const list = this.byName.get(record.name);
        if (list) list.push(record);
        else this.byName.set(record.name, [record]);
        changed.add(record.name);
        this.recordCount++;
      }
      for (const name of namesOf(next)) this.count(name, +1);
      this.byOwner.set(owner, next);
    }
    return changed;
  }

  records(name: string): readonly DnsRecord[] | undefined {
    return this.byName.get(name);
  }

  exists(name: string): boolean {
    return (this.existence.get(name) ?? 0) > 0;
  }

  /** Every name with records (answers.ts prebuilds these). */
  names(): IterableIterator<string> {
    return this.byName.keys();
  }

  get size(): number {
    return this.recordCount;
  }

  private count(name: string, delta: number): void {
    // The name and each ancestor: a.b.c → a.b.c, b.c, c.
    let at = 0;
    for (;;) {
      const suffix = name.slice(at);
      const next = (this.existence.get(suffix) ?? 0) + delta;
      if (next > 0) this.existence.set(suffix, next);
      else this.existence.delete(suffix);
      const dot = name.indexOf('.', at);
      if (dot < 0) return;
      at = dot + 1;
    }
  }
}

function* namesOf(owner: OwnerRecords): Generator<string> {
  for (const record of owner.records) yield record.name;
  yield* owner.names;
}
