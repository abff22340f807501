/**
 * Where allocations live. `DiskStore` is byte-compatible with the reference host-local
 * plugin's store, so either plugin can take over the other's directory:
 *
 *   <dataDir>/<network>/<ip>                  "<containerID>\r\n<ifname>"
 *   <dataDir>/<network>/last_reserved_ip.<N>  the last address handed out from range set N
 *   <dataDir>/<network>/lock                  flock(2) taken around every change
 *
 * An address file is created with O_EXCL, so a reservation is atomic even without the lock.
 * A file whose content we cannot read as an owner (empty after a crash, garbage) still holds
 * its address: we never hand it out again, and GC, which knows the live attachments,
 * releases it.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeError, hasErrno } from '../lib/errors.js';
import { withFileLock } from '../lib/flock.js';
import { formatIp, type Ip, ipEqual, tryParseIp } from '../lib/ip.js';
import { IpamStoreError } from './errors.js';

/** Line break host-local writes between container ID and interface name. */
const LINE_BREAK = '\r\n';
const LAST_RESERVED_PREFIX = 'last_reserved_ip.';

export interface Owner {
  containerId: string;
  /** Empty for reservations written by host-local before it recorded interface names. */
  ifname: string;
}

export interface Reservation {
  ip: Ip;
  /** Undefined when the file's content could not be understood. */
  owner?: Owner;
}

export interface IpamStore {
  /** Runs `fn` holding the store's exclusive lock. */
  locked<T>(fn: () => T): T;
  /** Records `ip` for the owner; false if someone already holds it. */
  reserve(owner: Owner, ip: Ip, rangeSetIndex: number): boolean;
  lastReserved(rangeSetIndex: number): Ip | undefined;
  reservations(): Reservation[];
  /** Removes every reservation of the owner and returns the addresses freed. */
  releaseOwner(owner: Owner): Ip[];
  release(ip: Ip): void;
}

export function sameOwner(a: Owner, b: Owner): boolean {
  // Legacy files carry no ifname: they belong to the container whatever the interface.
  return a.containerId === b.containerId && (a.ifname === b.ifname || a.ifname === '' || b.ifname === '');
}

export function parseOwner(content: string): Owner | undefined {
  const [containerId, ifname = '', ...rest] = content.trim().split(/\r?\n/);
  if (!containerId || rest.length > 0 || /[\0\s]/.test(containerId) || /[\0\s/]/.test(ifname)) return undefined;
  return { containerId, ifname };
}

export class DiskStore implements IpamStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    if (!network || network.includes('/') || network === '.' || network === '..') {
      throw new IpamStoreError(`network name "${network}" cannot name a data directory`);
    }
    this.dir = join(dataDir, network);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new IpamStoreError(`failed to create IPAM data directory "${this.dir}": ${describeError(err)}`, { cause: err });
    }
  }

  locked<T>(fn: () => T): T {
    return withFileLock(join(this.dir, 'lock'), fn);
  }

  reserve(owner: Owner, ip: Ip, rangeSetIndex: number): boolean {
    const address = formatIp(ip);
    try {
      writeFileSync(join(this.dir, address), `${owner.containerId.trim()}${LINE_BREAK}${owner.ifname}`, { flag: 'wx', mode: 0o644 });
    } catch (err) {
      if (hasErrno(err, 'EEXIST')) return false;
      throw new IpamStoreError(`failed to reserve ${address} in "${this.dir}": ${describeError(err)}`, { cause: err });
    }
    const last = join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSetIndex}`);
    try {
      writeFileSync(`${last}.tmp`, address);
      renameSync(`${last}.tmp`, last);
    } catch (err) {
      rmSync(join(this.dir, address), { force: true }); // all or nothing, as host-local does
      throw new IpamStoreError(`failed to record ${address} as last reserved in "${this.dir}": ${describeError(err)}`, { cause: err });
    }
    return true;
  }

  lastReserved(rangeSetIndex: number): Ip | undefined {
    try {
      return tryParseIp(readFileSync(join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSetIndex}`), 'utf8'));
    } catch {
      return undefined; // missing or unreadable: start from the beginning of the range set
    }
  }

  reservations(): Reservation[] {
    const found: Reservation[] = [];
    for (const name of this.entries()) {
      const ip = tryParseIp(name);
      if (!ip || formatIp(ip) !== name) continue; // lock, last_reserved_ip.N, stray files
      let owner: Owner | undefined;
      try {
        owner = parseOwner(readFileSync(join(this.dir, name), 'utf8'));
      } catch (err) {
        if (hasErrno(err, 'ENOENT')) continue;
        owner = undefined; // a directory or unreadable file named like an address: still taken
      }
      found.push(owner ? { ip, owner } : { ip });
    }
    return found;
  }

  releaseOwner(owner: Owner): Ip[] {
    const released: Ip[] = [];
    for (const reservation of this.reservations()) {
      if (reservation.owner && sameOwner(reservation.owner, owner)) {
        this.release(reservation.ip);
        released.push(reservation.ip);
      }
    }
    return released;
  }

  release(ip: Ip): void {
    rmSync(join(this.dir, formatIp(ip)), { force: true, recursive: true });
  }

  private entries(): string[] {
    try {
      return readdirSync(this.dir);
    } catch (err) {
      throw new IpamStoreError(`failed to read IPAM data directory "${this.dir}": ${describeError(err)}`, { cause: err });
    }
  }
}

/** An in-memory store for unit tests of allocation logic. */
export class MemoryStore implements IpamStore {
  private readonly held = new Map<string, Reservation>();
  private readonly last = new Map<number, Ip>();

  locked<T>(fn: () => T): T {
    return fn();
  }

  reserve(owner: Owner, ip: Ip, rangeSetIndex: number): boolean {
    const key = formatIp(ip);
    if (this.held.has(key)) return false;
    this.held.set(key, { ip, owner });
    this.last.set(rangeSetIndex, ip);
    return true;
  }

  lastReserved(rangeSetIndex: number): Ip | undefined {
    return this.last.get(rangeSetIndex);
  }

  reservations(): Reservation[] {
    return [...this.held.values()];
  }

  releaseOwner(owner: Owner): Ip[] {
    const released = this.reservations().filter((r) => r.owner && sameOwner(r.owner, owner)).map((r) => r.ip);
    released.forEach((ip) => this.release(ip));
    return released;
  }

  release(ip: Ip): void {
    for (const [key, reservation] of this.held) if (ipEqual(reservation.ip, ip)) this.held.delete(key);
  }
}
