/**
 * Host-local allocation: one address per range set for each (container, interface), handed
 * out round-robin after the last reserved address so a freed address is not reused at once
 * (a late packet for the old owner should not reach a new one).
 */
import { formatIp, type Ip, ipEqual, type IpNet } from '../lib/ip.js';
import { AddressUnavailableError, IpamConfigError, RangeExhaustedError } from './errors.js';
import { candidates, describeRangeSet, rangeFor, type RangeSet } from './range.js';
import { type IpamStore, type Owner, type Reservation, sameOwner } from './store.js';

export interface Allocation {
  /** The address with its subnet's prefix length. */
  address: IpNet;
  gateway?: Ip;
  rangeSetIndex: number;
}

export class Allocator {
  constructor(
    private readonly store: IpamStore,
    private readonly rangeSets: readonly RangeSet[],
  ) {}

  /**
   * Gives the owner one address from every range set, using `requested` addresses where they
   * fall. All or nothing: on failure, whatever this call reserved is released.
   */
  allocate(owner: Owner, requested: readonly Ip[] = []): Allocation[] {
    return this.store.locked(() => {
      const wanted = this.assignRequested(requested);
      // One directory read for the whole call: range sets never overlap, so what one set
      // reserves cannot collide with another's candidates.
      const reservations = this.store.reservations();
      const taken = new Set(reservations.map((r) => formatIp(r.ip)));
      const allocations: Allocation[] = [];
      try {
        this.rangeSets.forEach((set, index) => {
          allocations.push(this.allocateFrom(set, index, owner, wanted.get(index), reservations, taken));
        });
      } catch (err) {
        for (const allocation of allocations) this.store.release(allocation.address);
        throw err;
      }
      return allocations;
    });
  }

  /** Frees every address the owner holds; returns them (empty when it held none). */
  release(owner: Owner): Ip[] {
    return this.store.locked(() => this.store.releaseOwner(owner));
  }

  /** The owner's current addresses. */
  addressesOf(owner: Owner): Ip[] {
    return this.store.locked(() =>
      this.store
        .reservations()
        .filter((r) => r.owner && sameOwner(r.owner, owner))
        .map((r) => r.ip),
    );
  }

  /**
   * Releases every reservation whose owner is not in `valid` (CNI GC). Files we cannot read
   * an owner from are released too: no live attachment can claim them.
   */
  collectGarbage(valid: readonly Owner[]): Ip[] {
    return this.store.locked(() => {
      const released: Ip[] = [];
      for (const reservation of this.store.reservations()) {
        const { owner } = reservation;
        if (owner && valid.some((v) => sameOwner(owner, v))) continue;
        this.store.release(reservation.ip);
        released.push(reservation.ip);
      }
      return released;
    });
  }

  /** Indexes of range sets with no free address left. */
  exhaustedRangeSets(): number[] {
    return this.store.locked(() => {
      const taken = new Set(this.store.reservations().map((r) => formatIp(r.ip)));
      const exhausted: number[] = [];
      this.rangeSets.forEach((set, index) => {
        for (const { ip } of candidates(set, undefined)) {
          if (!taken.has(formatIp(ip))) return;
        }
        exhausted.push(index);
      });
      return exhausted;
    });
  }

  private assignRequested(requested: readonly Ip[]): Map<number, Ip> {
    const wanted = new Map<number, Ip>();
    for (const ip of requested) {
      const index = this.rangeSets.findIndex((set) => rangeFor(set, ip) !== undefined);
      if (index < 0) throw new IpamConfigError('requested IPs', `${formatIp(ip)} is not in any configured range`);
      if (wanted.has(index)) throw new IpamConfigError('requested IPs', `more than one falls in range set ${index}; ask for one per range set`);
      wanted.set(index, ip);
    }
    return wanted;
  }

  private allocateFrom(set: RangeSet, index: number, owner: Owner, requested: Ip | undefined, reservations: readonly Reservation[], taken: ReadonlySet<string>): Allocation {
    if (requested) {
      const range = rangeFor(set, requested);
      if (!range) throw new IpamConfigError('requested IPs', `${formatIp(requested)} is not in range set ${describeRangeSet(set)}`);
      if (range.gateway && ipEqual(range.gateway, requested)) {
        throw new IpamConfigError('requested IPs', `${formatIp(requested)} is the subnet's gateway`);
      }
      if (!this.store.reserve(owner, requested, index)) {
        throw new AddressUnavailableError(`requested IP ${formatIp(requested)} is already allocated`);
      }
      return this.allocation(requested, range.subnet.prefixLength, range.gateway, index);
    }
    // The spec forbids two ADDs for one attachment; a second would silently double-book.
    for (const reservation of reservations) {
      if (reservation.owner && sameOwner(reservation.owner, owner) && rangeFor(set, reservation.ip)) {
        throw new AddressUnavailableError(
          `${formatIp(reservation.ip)} is already allocated to container ${owner.containerId} interface ${owner.ifname}; DEL it before adding again`,
        );
      }
    }
    for (const { ip, range } of candidates(set, this.store.lastReserved(index))) {
      // Skipping known holders saves an O_EXCL open each; reserve() still settles any race.
      if (taken.has(formatIp(ip))) continue;
      if (this.store.reserve(owner, ip, index)) return this.allocation(ip, range.subnet.prefixLength, range.gateway, index);
    }
    throw new RangeExhaustedError(`no IP addresses available in range set ${describeRangeSet(set)}`);
  }

  private allocation(ip: Ip, prefixLength: number, gateway: Ip | undefined, rangeSetIndex: number): Allocation {
    return gateway
      ? { address: { ...ip, prefixLength }, gateway, rangeSetIndex }
      : { address: { ...ip, prefixLength }, rangeSetIndex };
  }
}
