/**
 * One peer's Adj-RIB-Out (RFC 4271 §3.2): what we last advertised to it, by prefix, so that
 * each drain sends only what really changed.
 *
 * The RIB feeds it candidate prefixes (`consider`) with their current best route; it runs
 * export policy, compares the result with what the peer already has, and queues an
 * announcement or a withdrawal. `flush` packs the queue into UPDATE messages: announcements
 * grouped by identical exported attributes, each message under 4096 octets.
 *
 * Speed: a full table to many peers is the expensive case (100k prefixes × 50 clients is 5M
 * considerations). Export policy runs once per distinct (attributes object, sending peer,
 * family), cached in WeakMaps, and a one-entry memo catches the common run of consecutive
 * prefixes sharing one attributes object. What is stored per prefix is a reference to a
 * shared `Exported`, never a copy.
 */
import type { IpNet } from '../../lib/ip.js';
import type { Family, PathAttributes, PeerRef, Route, UpdateMessage } from '../types.js';
import { attributesKey } from './attributes-key.js';
import { RibError } from './errors.js';
import { exportAttributes, type ExportTarget, type LocalSpeaker } from './policy.js';
import type { PrefixKey } from './prefix.js';
import { attributesLengthBound, MAX_MESSAGE_LENGTH, MP_UNREACH_OVERHEAD, nlriLength, UPDATE_FIXED_LENGTH } from './update-size.js';

/** Attributes as sent to this peer, with their identity and size bound computed once. */
interface Exported {
  readonly attributes: PathAttributes;
  readonly key: string;
  readonly lengthBound: number;
}

type ExportSlots = Partial<Record<Family, Exported | null>>;

interface AnnouncementGroup {
  readonly exported: Exported;
  readonly prefixes: IpNet[];
}

export class AdjRibOut {
  private readonly advertised: Record<Family, Map<PrefixKey, Exported>> = { 'ipv4-unicast': new Map(), 'ipv6-unicast': new Map() };
  private readonly exportCache = new WeakMap<PathAttributes, WeakMap<PeerRef, ExportSlots>>();
  private memo: { attributes: PathAttributes; from: PeerRef; family: Family; exported: Exported | null } | undefined;
  private announcements: Record<Family, Map<string, AnnouncementGroup>> = { 'ipv4-unicast': new Map(), 'ipv6-unicast': new Map() };
  private withdrawals: Record<Family, IpNet[]> = { 'ipv4-unicast': [], 'ipv6-unicast': [] };
  /** the group the previous announcement went to: consecutive prefixes mostly share one */
  private lastGroup: { exported: Exported; family: Family; group: AnnouncementGroup } | undefined;

  constructor(
    private readonly local: LocalSpeaker,
    readonly target: ExportTarget,
  ) {}

  /**
   * Queues what the peer must hear about `prefix` given its current best route: an
   * announcement when the exported attributes differ from what it has (or always, with
   * `force`, for a route refresh), a withdrawal when it has something and should not.
   * Returns whether the peer has the prefix afterwards.
   */
  consider(family: Family, key: PrefixKey, prefix: IpNet, best: Route | undefined, force: boolean): boolean {
    const exported = best === undefined ? undefined : this.exported(best);
    const table = this.advertised[family];
    const previous = table.get(key);
    if (exported !== undefined) {
      if (!force && previous !== undefined && (previous === exported || previous.key === exported.key)) return true;
      table.set(key, exported);
      const last = this.lastGroup;
      if (last !== undefined && last.exported === exported && last.family === family) {
        last.group.prefixes.push(prefix);
        return true;
      }
      const groups = this.announcements[family];
      let group = groups.get(exported.key);
      if (group === undefined) {
        group = { exported, prefixes: [prefix] };
        groups.set(exported.key, group);
      } else {
        group.prefixes.push(prefix);
      }
      this.lastGroup = { exported, family, group };
      return true;
    }
    if (previous !== undefined) {
      table.delete(key);
      this.withdrawals[family].push(prefix);
    }
    return false;
  }

  advertisedKeys(family: Family): IterableIterator<PrefixKey> {
    return this.advertised[family].keys();
  }

  advertisedCount(family: Family): number {
    return this.advertised[family].size;
  }

  get size(): number {
    return this.advertised['ipv4-unicast'].size + this.advertised['ipv6-unicast'].size;
  }

  /** The queued changes as UPDATE messages, withdrawals first; empties the queue. */
  flush(): UpdateMessage[] {
    const updates: UpdateMessage[] = [];
    const withdrawnV4 = this.withdrawals['ipv4-unicast'];
    for (const chunk of chunkByLength(withdrawnV4, MAX_MESSAGE_LENGTH - UPDATE_FIXED_LENGTH)) {
      updates.push({ type: 'update', withdrawn: chunk, nlri: [] });
    }
    const withdrawnV6 = this.withdrawals['ipv6-unicast'];
    for (const chunk of chunkByLength(withdrawnV6, MAX_MESSAGE_LENGTH - UPDATE_FIXED_LENGTH - MP_UNREACH_OVERHEAD)) {
      updates.push({ type: 'update', withdrawn: [], nlri: [], mpUnreach: { family: 'ipv6-unicast', withdrawn: chunk } });
    }
    for (const [family, groups] of Object.entries(this.announcements) as [Family, Map<string, AnnouncementGroup>][]) {
      for (const { exported, prefixes } of groups.values()) {
        const budget = MAX_MESSAGE_LENGTH - UPDATE_FIXED_LENGTH - exported.lengthBound;
        if (budget < nlriLength(128)) {
          throw new RibError(`failed to pack UPDATE for peer "${this.target.peer.id}": path attributes need up to ${exported.lengthBound} octets`);
        }
        for (const chunk of chunkByLength(prefixes, budget)) {
          updates.push(
            family === 'ipv4-unicast'
              ? { type: 'update', withdrawn: [], attributes: exported.attributes, nlri: chunk }
              : { type: 'update', withdrawn: [], attributes: exported.attributes, nlri: [], mpReach: { family, nlri: chunk } },
          );
        }
      }
    }
    this.announcements = { 'ipv4-unicast': new Map(), 'ipv6-unicast': new Map() };
    this.withdrawals = { 'ipv4-unicast': [], 'ipv6-unicast': [] };
    this.lastGroup = undefined;
    return updates;
  }

  private exported(route: Route): Exported | undefined {
    const memo = this.memo;
    if (memo !== undefined && memo.attributes === route.attributes && memo.from === route.from && memo.family === route.family) {
      return memo.exported ?? undefined;
    }
    let byPeer = this.exportCache.get(route.attributes);
    if (byPeer === undefined) {
      byPeer = new WeakMap();
      this.exportCache.set(route.attributes, byPeer);
    }
    let slots = byPeer.get(route.from);
    if (slots === undefined) {
      slots = {};
      byPeer.set(route.from, slots);
    }
    let exported = slots[route.family];
    if (exported === undefined) {
      const attributes = exportAttributes(this.local, route, this.target);
      exported =
        attributes === undefined
          ? null
          : { attributes, key: attributesKey(attributes), lengthBound: attributesLengthBound(attributes, route.family) };
      slots[route.family] = exported;
    }
    this.memo = { attributes: route.attributes, from: route.from, family: route.family, exported };
    return exported ?? undefined;
  }
}

function chunkByLength(prefixes: readonly IpNet[], budget: number): IpNet[][] {
  const chunks: IpNet[][] = [];
  let chunk: IpNet[] = [];
  let used = 0;
  for (const prefix of prefixes) {
    const length = nlriLength(prefix.prefixLength);
    if (used + length > budget && chunk.length > 0) {
      chunks.push(chunk);
      chunk = [];
      used = 0;
    }
    chunk.push(prefix);
    used += length;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
