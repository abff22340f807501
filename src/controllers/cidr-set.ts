/**
 * The pool of per-node pod CIDRs carved from the cluster CIDR (upstream's cidrset):
 * `10.244.0.0/16` with mask size 24 is 256 subnets, numbered 0..255 in address order.
 *
 * Allocation is round-robin from the subnet after the last one handed out, not lowest-free,
 * so a CIDR released by a deleted node is reused last: a late packet for the old node's pods
 * does not land on a new node's pods (upstream does the same).
 */
import { PontoonError } from '../lib/errors.js';
import { bitsOf, formatIpNet, netContains, networkOf, parseIpNet, type IpNet } from '../lib/ip.js';

export class CidrSetError extends PontoonError {}
export class CidrSetFullError extends CidrSetError {}

/** More subnets than this is a configuration mistake (upstream allows 16 bits of difference). */
const MAX_SUBNET_BITS = 16;

export class CidrSet {
  readonly cluster: IpNet;
  readonly subnetCount: number;
  private readonly used = new Set<number>();
  private next = 0;

  constructor(
    clusterCidr: string,
    readonly maskSize: number,
  ) {
    const parsed = parseIpNet(clusterCidr);
    this.cluster = networkOf(parsed);
    const bits = bitsOf(this.cluster.family);
    if (!Number.isInteger(maskSize) || maskSize < this.cluster.prefixLength || maskSize > bits) {
      throw new CidrSetError(`node CIDR mask size ${maskSize} does not fit cluster CIDR ${clusterCidr}: it must be between ${this.cluster.prefixLength} and ${bits}`);
    }
    const subnetBits = maskSize - this.cluster.prefixLength;
    if (subnetBits > MAX_SUBNET_BITS) {
      throw new CidrSetError(`cluster CIDR ${clusterCidr} with node mask size ${maskSize} makes 2^${subnetBits} subnets; at most 2^${MAX_SUBNET_BITS} are supported`);
    }
    this.subnetCount = 2 ** subnetBits;
  }

  get usedCount(): number {
    return this.used.size;
  }

  private subnetAt(index: number): IpNet {
    const hostBits = BigInt(bitsOf(this.cluster.family) - this.maskSize);
    return { family: this.cluster.family, value: this.cluster.value + (BigInt(index) << hostBits), prefixLength: this.maskSize };
  }

  /** The subnet indexes a CIDR covers, or undefined when it is not inside the cluster CIDR. */
  private indexesOf(cidr: string): number[] | undefined {
    let net: IpNet;
    try {
      net = networkOf(parseIpNet(cidr));
    } catch {
      return undefined;
    }
    if (!netContains(this.cluster, net) || net.prefixLength < this.cluster.prefixLength) return undefined;
    const hostBits = BigInt(bitsOf(this.cluster.family) - this.maskSize);
    const first = Number((net.value - this.cluster.value) >> hostBits);
    // A CIDR larger than a node subnet covers several; a smaller one lies inside one.
    const count = net.prefixLength < this.maskSize ? 2 ** (this.maskSize - net.prefixLength) : 1;
    return Array.from({ length: count }, (_, i) => first + i);
  }

  /** Takes the next free subnet, e.g. "10.244.3.0/24". */
  allocateNext(): string {
    for (let i = 0; i < this.subnetCount; i++) {
      const index = (this.next + i) % this.subnetCount;
      if (this.used.has(index)) continue;
      this.used.add(index);
      this.next = (index + 1) % this.subnetCount;
      return formatIpNet(this.subnetAt(index));
    }
    throw new CidrSetFullError(`no free /${this.maskSize} left in ${formatIpNet(this.cluster)} (${this.subnetCount} in use)`);
  }

  /** Marks a CIDR some node already has as used; false when it is outside the cluster CIDR. */
  occupy(cidr: string): boolean {
    const indexes = this.indexesOf(cidr);
    if (!indexes) return false;
    for (const index of indexes) this.used.add(index);
    return true;
  }

  isUsed(cidr: string): boolean {
    const indexes = this.indexesOf(cidr);
    return indexes !== undefined && indexes.some((index) => this.used.has(index));
  }

  release(cidr: string): void {
    for (const index of this.indexesOf(cidr) ?? []) this.used.delete(index);
  }
}
