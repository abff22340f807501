/**
 * The tunnel's peer table: pod block → underlay address of the node that owns it, written by
 * the main thread whenever the BGP speaker learns or withdraws a route, read per packet by
 * the loop threads. Blocks have any prefix length (Calico's /26 blocks, /32 borrowed
 * addresses), so a lookup is a longest-prefix match, not an index as in the udp backend.
 *
 * Sharing without locks or messages: a SharedArrayBuffer guarded by a sequence lock. The
 * writer makes the sequence odd, writes the whole table (sorted longest prefix first), makes
 * it even again; a reader copies the table when the sequence changed and retries the copy if
 * it moved meanwhile. Readers keep their copy plus a per-destination cache, so the per-packet
 * cost is one Atomics.load and a Map lookup; updates are rare (routing events).
 *
 * Layout (32-bit words): [0] sequence, [1] entry count, then per entry
 * [network, prefix length, underlay address].
 */
export const MAX_PEER_ENTRIES = 16384;
const HEADER_WORDS = 2;
const ENTRY_WORDS = 3;
/** The reader's destination cache is dropped when it grows past this (a scan refills it). */
const CACHE_LIMIT = 65536;

export interface PeerEntry {
  /** IPv4 network as an unsigned 32-bit number, host bits zero. */
  network: number;
  prefixLength: number;
  /** Underlay IPv4 address of the owning node. */
  underlay: number;
}

export function maskOf(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export function newPeerTableBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer((HEADER_WORDS + MAX_PEER_ENTRIES * ENTRY_WORDS) * 4);
}

/** The main thread's side. */
export class PeerTableWriter {
  private readonly words: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = newPeerTableBuffer()) {
    this.words = new Int32Array(buffer);
  }

  publish(entries: readonly PeerEntry[]): void {
    if (entries.length > MAX_PEER_ENTRIES) throw new RangeError(`the IPIP peer table holds at most ${MAX_PEER_ENTRIES} blocks, got ${entries.length}`);
    const sorted = [...entries].sort((a, b) => b.prefixLength - a.prefixLength || a.network - b.network);
    const w = this.words;
    Atomics.add(w, 0, 1); // odd: writing
    Atomics.store(w, 1, sorted.length);
    sorted.forEach((entry, i) => {
      const at = HEADER_WORDS + i * ENTRY_WORDS;
      Atomics.store(w, at, entry.network | 0);
      Atomics.store(w, at + 1, entry.prefixLength);
      Atomics.store(w, at + 2, entry.underlay | 0);
    });
    Atomics.add(w, 0, 1); // even: done
  }
}

/** A loop thread's side: a private copy refreshed when the writer published. */
export class PeerTableReader {
  private readonly words: Int32Array;
  private seen = -1;
  private networks = new Uint32Array(0);
  private masks = new Uint32Array(0);
  private underlays = new Uint32Array(0);
  private underlaySet = new Set<number>();
  private readonly cache = new Map<number, number>();

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
  }

  /** Underlay address for `destination`, or 0 when no block holds it. */
  lookup(destination: number): number {
    this.refresh();
    const cached = this.cache.get(destination);
    if (cached !== undefined) return cached;
    let found = 0;
    for (let i = 0; i < this.networks.length; i++) {
      if (((destination & (this.masks[i] ?? 0)) >>> 0) === this.networks[i]) {
        found = this.underlays[i] ?? 0;
        break;
      }
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(destination, found);
    return found;
  }

  /** Whether `underlay` is a node in the table (the receive side hears only those). */
  isPeer(underlay: number): boolean {
    this.refresh();
    return this.underlaySet.has(underlay);
  }

  private refresh(): void {
    const w = this.words;
    if (Atomics.load(w, 0) === this.seen) return;
    for (;;) {
      const before = Atomics.load(w, 0);
      if ((before & 1) !== 0) continue; // the writer is mid-update: it finishes in microseconds
      const count = Math.min(Atomics.load(w, 1), MAX_PEER_ENTRIES);
      const networks = new Uint32Array(count);
      const masks = new Uint32Array(count);
      const underlays = new Uint32Array(count);
      for (let i = 0; i < count; i++) {
        const at = HEADER_WORDS + i * ENTRY_WORDS;
        networks[i] = Atomics.load(w, at) >>> 0;
        masks[i] = maskOf(Atomics.load(w, at + 1));
        underlays[i] = Atomics.load(w, at + 2) >>> 0;
      }
      if (Atomics.load(w, 0) !== before) continue;
      this.seen = before;
      this.networks = networks;
      this.masks = masks;
      this.underlays = underlays;
      this.underlaySet = new Set(underlays);
      this.cache.clear();
      return;
    }
  }
}

/** Counters the loops bump (Atomics.add) and `IpipTunnel.stats()` reads. */
export const COUNTER_NAMES = [
  /** tx: packets read from the TUN (a super-packet counts once) */
  'tunReads',
  /** tx: TCP super-packets cut into segments in userspace */
  'superPackets',
  /** tx: IPIP packets handed to the kernel */
  'sentPackets',
  /** tx: packets for a destination no peer's block holds (answered with ICMP host unreachable) */
  'droppedNoPeer',
  'icmpUnreachableSent',
  /** tx: not IPv4 (IPIP carries IPv4 only), or GSO the tunnel cannot segment */
  'droppedUnsupported',
  'sendErrors',
  /** rx: IPIP packets read from the raw socket */
  'receivedPackets',
  /** rx: outer source is not a node in the peer table */
  'droppedUnknownPeer',
  /** rx: inner packet missing, truncated or not IPv4 */
  'droppedMalformed',
  /** rx: super-packets written to the TUN after coalescing, and the segments they hold */
  'coalescedRecords',
  'coalescedSegments',
  'tunWrites',
  'ioErrors',
  /** Not a counter: set by stop() so the loops exit instead of retrying. */
  'stopping',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

export function counterIndex(name: CounterName): number {
  return COUNTER_NAMES.indexOf(name);
}
