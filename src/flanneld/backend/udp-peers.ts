/**
 * The udp backend's lease table, shared between the daemon's main thread (which writes it on
 * every reconcile) and the packet-loop threads (which read it per packet) without locks or
 * messages: a SharedArrayBuffer indexed by subnet number, two 32-bit words per subnet
 * (underlay IPv4 address, flags), read and written with Atomics.
 */
export const PEER_PRESENT = 1;
export const PEER_OFFLOAD = 2;
/** Bounds the table at 512 KB: a /8 network of /24 subnets fits exactly. */
export const MAX_SUBNETS = 1 << 16;

export interface PeerTableLayout {
  /** Host bits of a node subnet: 8 for /24s. */
  hostBits: number;
  /** Subnet number of the network's first subnet (address >>> hostBits). */
  base: number;
  slots: number;
}

export function peerTableLayout(networkAddress: number, networkPrefix: number, subnetPrefix: number): PeerTableLayout {
  const slots = 2 ** (subnetPrefix - networkPrefix);
  if (slots > MAX_SUBNETS) throw new RangeError(`the udp backend handles at most ${MAX_SUBNETS} subnets; Network/SubnetLen give ${slots}`);
  const hostBits = 32 - subnetPrefix;
  return { hostBits, base: networkAddress >>> hostBits, slots };
}

export class PeerTable {
  readonly words: Uint32Array;

  constructor(
    readonly layout: PeerTableLayout,
    shared: SharedArrayBuffer = new SharedArrayBuffer(layout.slots * 8),
  ) {
    this.words = new Uint32Array(shared);
  }

  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Slot of the subnet holding `address`, or -1 outside the network. */
  slotOf(address: number): number {
    const slot = (address >>> this.layout.hostBits) - this.layout.base;
    return slot >= 0 && slot < this.layout.slots ? slot : -1;
  }

  set(slot: number, underlay: number, flags: number): void {
    // Address first, flags last: a reader that sees PRESENT also sees the address.
    Atomics.store(this.words, slot * 2, underlay >>> 0);
    Atomics.store(this.words, slot * 2 + 1, flags | PEER_PRESENT);
  }

  clear(slot: number): void {
    Atomics.store(this.words, slot * 2 + 1, 0);
  }

  underlay(slot: number): number {
    return Atomics.load(this.words, slot * 2);
  }

  flags(slot: number): number {
    return Atomics.load(this.words, slot * 2 + 1);
  }

  /** Whether any present peer has this underlay address (a full scan: callers cache it). */
  hasUnderlay(underlay: number): boolean {
    for (let slot = 0; slot < this.layout.slots; slot++) {
      if ((this.flags(slot) & PEER_PRESENT) !== 0 && this.underlay(slot) === underlay >>> 0) return true;
    }
    return false;
  }
}

/** Counters the loops bump and `pontoon`'s logs read. */
export const COUNTER_NAMES = [
  'tunPackets',
  'sentDatagrams',
  'receivedDatagrams',
  'droppedNoRoute',
  'droppedIncompatible',
  'droppedIncomplete',
  'droppedCorrupt',
  'droppedUnknownSender',
  'ioErrors',
  'sendErrors',
  /** Not a counter: set by the daemon so the loops stop instead of retrying. */
  'stopping',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

export function counterIndex(name: CounterName): number {
  return COUNTER_NAMES.indexOf(name);
}
