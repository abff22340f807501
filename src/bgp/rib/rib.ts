/**
 * The RIB facade the BGP speaker drives (RFC 4271 §3.2, §9): Adj-RIBs-In per peer, the
 * Loc-RIB, Adj-RIBs-Out per session, and the policy between them. Pure data, no I/O, no
 * timers: the speaker calls `receive` for UPDATEs, `drain` when a session can send, and the
 * graceful-restart hooks when its timers say so.
 *
 * Every mutating call returns the Loc-RIB changes it caused (for the kernel route syncer);
 * the same changes are logged for the Adj-RIBs-Out, which turn them into UPDATEs at `drain`.
 *
 * Graceful restart, receiving side (RFC 4724 §4.2), in the order the speaker calls things:
 * session drops → `markStale(peer, preservedFamilies)` then `removePeer(peer)` (fresh routes
 * go, stale ones stay and keep forwarding) → session back → `addPeer` again → UPDATEs replace
 * stale routes → End-of-RIB per family (or the restart/stale timer) → `sweepStale`.
 */
import type { Ip, IpNet } from '../../lib/ip.js';
import type { Family, PathAttributes, PeerRef, Route, UpdateMessage } from '../types.js';
import { AdjRibIn } from './adj-rib-in.js';
import { AdjRibOut } from './adj-rib-out.js';
import { ChangeJournal } from './change-journal.js';
import { LOCAL_PEER_ID, selectBest, type DecisionOptions } from './decision.js';
import { RibError, UnknownPeerError } from './errors.js';
import { LocRib, type KeyedRibChange } from './loc-rib.js';
import { importAttributes, type LocalSpeaker } from './policy.js';
import { checkPrefix, FAMILIES, familyOfPrefix, prefixFromKey, prefixKey, type PrefixKey } from './prefix.js';
import { routesOf } from './routes-of.js';

export type { LocalSpeaker } from './policy.js';
export type { KeyedRibChange, RibChange } from './loc-rib.js';

export interface RibOptions {
  /** false: the route's next hop is unreachable and the route is not a candidate (RFC 4271 §9.1.2) */
  readonly nextHopUsable?: (route: Route) => boolean;
  /** LOCAL_PREF for routes without one (eBGP-learned and our own); 100 when not set */
  readonly defaultLocalPref?: number;
}

export interface PeerExportOptions {
  /** our address on the session per family: the NEXT_HOP when we advertise ourselves */
  readonly localAddress: Readonly<Record<Family, Ip | undefined>>;
  /** families negotiated on the session (RFC 4760); others are not sent */
  readonly families: readonly Family[];
  /** iBGP only: our address as NEXT_HOP on our own and eBGP-learned routes */
  readonly nextHopSelf?: boolean;
}

export interface RibChanges {
  readonly changed: readonly KeyedRibChange[];
}

export interface PeerStats {
  /** prefixes the peer currently advertises, accepted or refused by import policy */
  readonly received: number;
  readonly accepted: number;
  /** prefixes we currently advertise to it */
  readonly advertised: number;
}

export interface RibStats {
  /** prefixes with a best route */
  readonly prefixes: Record<Family, number>;
  /** paths in the Loc-RIB, over all prefixes and peers */
  readonly paths: number;
  readonly perPeer: Map<string, PeerStats>;
}

/**
 * How the next drain finds what to send: 'deltas' walks the change log from the cursor;
 * 'compare' walks the whole Loc-RIB against what was advertised (a new session, or one whose
 * backlog outgrew the table); 'resend' does the same but announces everything (route refresh).
 */
type DrainMode = 'deltas' | 'compare' | 'resend';

interface Session {
  readonly out: AdjRibOut;
  cursor: number;
  mode: DrainMode;
}

interface PeerState {
  readonly inbound: AdjRibIn;
  /** absent while the peer is down with only stale routes kept */
  session: Session | undefined;
}

const NO_CHANGES: RibChanges = { changed: [] };

/** A backlog this long is cheaper to replace by a full comparison (and must not pin the log). */
const MIN_BACKLOG_LIMIT = 4096;

export class Rib {
  private readonly peers = new Map<string, PeerState>();
  private readonly originated: AdjRibIn;
  private readonly locRib: LocRib;
  private readonly journal = new ChangeJournal();

  constructor(
    readonly local: LocalSpeaker,
    options?: RibOptions,
  ) {
    const localPeer: PeerRef = { id: LOCAL_PEER_ID, asn: local.asn, routerId: local.routerId, type: 'ibgp', rrClient: false };
    this.originated = new AdjRibIn(localPeer);
    const decision: DecisionOptions = {
      ...(options?.nextHopUsable !== undefined ? { nextHopUsable: options.nextHopUsable } : {}),
      ...(options?.defaultLocalPref !== undefined ? { defaultLocalPref: options.defaultLocalPref } : {}),
    };
    this.locRib = new LocRib((candidates) => selectBest(candidates, decision));
  }

  /** A session came up. Its first drain sends the full table. Stale routes kept from before stay. */
  addPeer(peer: PeerRef, exportOptions: PeerExportOptions): void {
    if (peer.id === LOCAL_PEER_ID) throw new RibError('failed to add peer "": the empty id is reserved for our own routes');
    const existing = this.peers.get(peer.id);
    if (existing?.session !== undefined) throw new RibError(`failed to add peer "${peer.id}": it is already up (removePeer first)`);
    const out = new AdjRibOut(this.local, { peer, ...exportOptions });
    const session: Session = { out, cursor: this.journal.end, mode: 'compare' };
    if (existing === undefined) {
      this.peers.set(peer.id, { inbound: new AdjRibIn(peer), session });
    } else {
      existing.inbound.peer = peer;
      existing.session = session;
    }
  }

  /** The session went down: its routes leave the Loc-RIB, except those `markStale` flagged. */
  removePeer(peerId: string): RibChanges {
    const state = this.peers.get(peerId);
    if (state === undefined) return NO_CHANGES;
    state.session = undefined;
    for (const [family, key] of state.inbound.takeFresh()) this.locRib.removePath(family, key, peerId);
    this.forgetIfEmpty(peerId, state);
    const changes = this.commit();
    this.compactJournal();
    return changes;
  }

  /** Announces one of our own prefixes; attributes default to ORIGIN igp and an empty AS_PATH. */
  originate(prefix: IpNet, attributes?: Partial<PathAttributes>): RibChanges {
    const family = familyOfPrefix(prefix);
    checkPrefix(prefix, family);
    const route: Route = { prefix, family, attributes: { origin: 'igp', asPath: [], ...attributes }, from: this.originated.peer };
    const key = prefixKey(prefix);
    this.originated.set(route, key);
    this.locRib.setPath(route, key);
    return this.commit();
  }

  withdrawOriginated(prefix: IpNet): RibChanges {
    const family = familyOfPrefix(prefix);
    const key = prefixKey(prefix);
    if (this.originated.delete(family, key) !== undefined) this.locRib.removePath(family, key, LOCAL_PEER_ID);
    return this.commit();
  }

  /**
   * Applies an UPDATE from the peer: withdrawals, then the NLRI with the import-checked
   * attributes. `treatAsWithdraw` is RFC 7606's "treat-as-withdraw" for a malformed attribute.
   */
  receive(peerId: string, update: UpdateMessage, options?: { readonly treatAsWithdraw?: boolean }): RibChanges {
    const state = this.peers.get(peerId);
    if (state?.session === undefined) throw new UnknownPeerError(peerId, 'receive an UPDATE from');
    const inbound = state.inbound;
    const { withdrawn, announced } = routesOf(update);
    // Check before changing anything, so a bad UPDATE leaves the RIB as it was.
    for (const { family, prefixes } of [...withdrawn, ...announced]) {
      for (const prefix of prefixes) checkPrefix(prefix, family);
    }
    const attributes = update.attributes;
    if (announced.length > 0 && attributes === undefined) {
      throw new RibError(`failed to apply UPDATE from peer "${peerId}": NLRI without path attributes`);
    }

    for (const { family, prefixes } of withdrawn) {
      for (const prefix of prefixes) this.withdrawPath(inbound, family, prefixKey(prefix));
    }
    if (attributes !== undefined && announced.length > 0) {
      const imported = options?.treatAsWithdraw === true ? undefined : importAttributes(this.local, inbound.peer, attributes);
      for (const { family, prefixes } of announced) {
        for (const prefix of prefixes) {
          const key = prefixKey(prefix);
          if (imported === undefined) {
            this.withdrawPath(inbound, family, key);
          } else if (!imported.accepted) {
            if (inbound.refuse(family, key) !== undefined) this.locRib.removePath(family, key, peerId);
          } else {
            const route: Route = { prefix, family, attributes: imported.attributes, from: inbound.peer };
            inbound.set(route, key);
            this.locRib.setPath(route, key);
          }
        }
      }
    }
    return this.commit();
  }

  /** RFC 4724 §4.2: the session went down and the peer preserves forwarding for these families. */
  markStale(peerId: string, families: readonly Family[]): void {
    const state = this.peers.get(peerId);
    if (state === undefined) throw new UnknownPeerError(peerId, 'mark stale routes of');
    for (const [key, route] of state.inbound.markStale(families)) this.locRib.setPath(route, key);
    // Same peer, same attributes: the Loc-RIB reports no change for these.
    this.commit();
  }

  /** End-of-RIB received for the family, or the restart/stale timer fired: stale routes go. */
  sweepStale(peerId: string, family: Family): RibChanges {
    const state = this.peers.get(peerId);
    if (state === undefined) return NO_CHANGES;
    for (const [key] of state.inbound.takeStale(family)) this.locRib.removePath(family, key, peerId);
    this.forgetIfEmpty(peerId, state);
    return this.commit();
  }

  /** Re-runs the decision process everywhere: the `nextHopUsable` answers have changed. */
  reevaluateNextHops(): RibChanges {
    this.locRib.touchAll();
    return this.commit();
  }

  best(family?: Family): Iterable<Route> {
    return this.locRib.best(family);
  }

  /** `key`: the prefix's key, when the caller has it (a RibChange's) and need not compute it again. */
  bestFor(prefix: IpNet, key: PrefixKey = prefixKey(prefix)): Route | undefined {
    return this.locRib.bestFor(familyOfPrefix(prefix), key);
  }

  /** The peer's accepted routes ('' for our own). */
  adjRibIn(peerId: string): Iterable<Route> {
    if (peerId === LOCAL_PEER_ID) return this.originated.routes();
    const state = this.peers.get(peerId);
    if (state === undefined) throw new UnknownPeerError(peerId, 'read the Adj-RIB-In of');
    return state.inbound.routes();
  }

  /** The UPDATEs the peer needs to be current: the full table after `addPeer`, deltas after that. */
  drain(peerId: string): UpdateMessage[] {
    const session = this.peers.get(peerId)?.session;
    if (session === undefined) throw new UnknownPeerError(peerId, 'drain the Adj-RIB-Out of');
    const out = session.out;
    if (session.mode === 'deltas') {
      const locRib = this.locRib;
      this.journal.forEachSince(session.cursor, (change) => {
        out.consider(change.family, change.key, change.prefix, locRib.bestFor(change.family, change.key), false);
      });
    } else {
      const force = session.mode === 'resend';
      for (const family of FAMILIES) {
        let kept = 0;
        this.locRib.forEachBest(family, (key, prefix, best) => {
          if (out.consider(family, key, prefix, best, force)) kept++;
        });
        // Whatever the walk did not keep is advertised for a prefix with no best route now.
        if (out.advertisedCount(family) === kept) continue;
        const gone: PrefixKey[] = [];
        for (const key of out.advertisedKeys(family)) {
          if (this.locRib.bestFor(family, key) === undefined) gone.push(key);
        }
        for (const key of gone) out.consider(family, key, prefixFromKey(family, key), undefined, false);
      }
    }
    session.cursor = this.journal.end;
    session.mode = 'deltas';
    this.compactJournal();
    return out.flush();
  }

  /** Route refresh (RFC 2918): the next drain re-advertises everything the peer should have. */
  resend(peerId: string): void {
    const session = this.peers.get(peerId)?.session;
    if (session === undefined) throw new UnknownPeerError(peerId, 'resend to');
    session.mode = 'resend';
  }

  stats(): RibStats {
    const perPeer = new Map<string, PeerStats>();
    for (const [id, state] of this.peers) {
      perPeer.set(id, { received: state.inbound.received, accepted: state.inbound.accepted, advertised: state.session?.out.size ?? 0 });
    }
    return {
      prefixes: { 'ipv4-unicast': this.locRib.size('ipv4-unicast'), 'ipv6-unicast': this.locRib.size('ipv6-unicast') },
      paths: this.locRib.paths,
      perPeer,
    };
  }

  private withdrawPath(inbound: AdjRibIn, family: Family, key: PrefixKey): void {
    if (inbound.delete(family, key) !== undefined) this.locRib.removePath(family, key, inbound.peer.id);
  }

  private forgetIfEmpty(peerId: string, state: PeerState): void {
    if (state.session === undefined && state.inbound.accepted === 0) this.peers.delete(peerId);
  }

  private commit(): RibChanges {
    const changes: KeyedRibChange[] = this.locRib.commit();
    if (changes.length > 0) {
      // Only sessions draining deltas read the log; the others will compare the whole table.
      const readers = this.sessions().filter((session) => session.mode === 'deltas');
      if (readers.length > 0) {
        this.journal.append(changes);
        this.limitBacklogs(readers);
      }
    }
    return { changed: changes };
  }

  private limitBacklogs(sessions: readonly Session[]): void {
    const limit = Math.max(MIN_BACKLOG_LIMIT, this.locRib.paths);
    let moved = false;
    for (const session of sessions) {
      if (this.journal.behind(session.cursor) > limit) {
        session.mode = 'compare';
        moved = true;
      }
    }
    if (moved) this.compactJournal();
  }

  /** Sessions that will do a full comparison do not need the log, whatever their cursor. */
  private compactJournal(): void {
    let oldest = this.journal.end;
    for (const session of this.sessions()) {
      if (session.mode === 'deltas') oldest = Math.min(oldest, session.cursor);
    }
    this.journal.compact(oldest);
  }

  private sessions(): Session[] {
    const sessions: Session[] = [];
    for (const state of this.peers.values()) {
      if (state.session !== undefined) sessions.push(state.session);
    }
    return sessions;
  }
}
