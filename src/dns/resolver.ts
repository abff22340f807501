/**
 * Turns one question into an answer from the zone, by the rules the clients depend on:
 *   - a name with records of the type: those records (SRV: the targets' addresses in the
 *     additional section, as CoreDNS sends them);
 *   - a CNAME (ExternalName Service) answers every type, with the target's records appended
 *     when the target is in the zone (RFC 1034 §4.3.2 step 3a);
 *   - a name that exists with other types, or only as a parent of other names: NODATA —
 *     NOERROR, no answers, the zone's SOA in the authority section (RFC 2308 §2.2);
 *   - a name that does not exist: NXDOMAIN with the SOA (RFC 2308 §2.1);
 *   - `a-b-c-d.<ns>.pod.<zone>`: synthesized from the name (CoreDNS `pods insecure`) when the
 *     namespace exists, or only when a pod there has that IP (`pods verified`);
 *   - reverse names we hold no PTR for, and names outside the cluster domain: not ours
 *     ("forward"), as CoreDNS's `fallthrough in-addr.arpa ip6.arpa` and `forward .` do.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { DnsRecord } from './records.js';
import { RCODE, TYPE, type Rcode } from './wire.js';
import type { Zone } from './zone.js';

export type PodMode = 'disabled' | 'insecure' | 'verified';

export interface Resolution {
  rcode: Rcode;
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

export interface ResolverOptions {
  zone: string;
  podMode: PodMode;
  /** For `pods verified`: does a pod in `namespace` have `ip`? */
  podHasIp?: (namespace: string, ip: string) => boolean;
}

const REVERSE_ZONES = ['in-addr.arpa', 'ip6.arpa'];

const within = (name: string, zone: string): boolean => name === zone || name.endsWith(`.${zone}`);

export class Resolver {
  constructor(
    private readonly records: Zone,
    private readonly options: ResolverOptions,
  ) {}

  /** `name` lower case, no trailing dot. */
  resolve(name: string, qtype: number): Resolution | 'forward' {
    const zone = this.options.zone;
    if (!within(name, zone)) {
      const reverse = REVERSE_ZONES.find((z) => within(name, z));
      if (!reverse || !this.records.exists(name)) return 'forward';
      return this.answerFrom(name, qtype, reverse);
    }
    return this.answerFrom(name, qtype, zone);
  }

  private answerFrom(name: string, qtype: number, soaZone: string): Resolution {
    const here = this.records.records(name) ?? this.podRecords(name);
    const result: Resolution = { rcode: RCODE.NOERROR, answers: [], authorities: [], additionals: [] };
    if (here?.length) {
      const cname = here.find((r) => r.type === TYPE.CNAME);
      if (cname && qtype !== TYPE.CNAME && qtype !== TYPE.ANY) {
        result.answers.push(cname);
        if (cname.type === TYPE.CNAME && within(cname.target, this.options.zone)) {
          result.answers.push(...(this.records.records(cname.target) ?? []).filter((r) => r.type === qtype));
        }
        return result;
      }
      result.answers.push(...here.filter((r) => qtype === TYPE.ANY || r.type === qtype));
      for (const record of result.answers) {
        if (record.type !== TYPE.SRV) continue;
        result.additionals.push(...(this.records.records(record.target) ?? []).filter((r) => r.type === TYPE.A || r.type === TYPE.AAAA));
      }
      if (result.answers.length) return result;
    }
    const exists = (here?.length ?? 0) > 0 || this.records.exists(name);
    if (!exists) result.rcode = RCODE.NXDOMAIN;
    result.authorities.push(this.soa(soaZone));
    return result;
  }

  private soa(zone: string): DnsRecord {
    const apex = this.records.records(this.options.zone)?.find((r) => r.type === TYPE.SOA);
    const fallback: DnsRecord = { name: zone, type: TYPE.SOA, mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, minimum: 5 };
    if (!apex || apex.type !== TYPE.SOA) return fallback;
    return zone === this.options.zone ? apex : { ...apex, name: zone, mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}` };
  }

  /** `a-b-c-d.<ns>.pod.<zone>` (IPv6: groups joined by dashes, `--` for `::`). */
  private podRecords(name: string): DnsRecord[] | undefined {
    if (this.options.podMode === 'disabled') return undefined;
    const suffix = `.pod.${this.options.zone}`;
    if (!name.endsWith(suffix)) return undefined;
    const labels = name.slice(0, -suffix.length).split('.');
    if (labels.length !== 2) return undefined;
    const [dashed = '', namespace = ''] = labels;
    if (!this.records.exists(`${namespace}${suffix}`)) return undefined;
    const ip = podIp(dashed);
    if (!ip) return undefined;
    if (this.options.podMode === 'verified' && !this.options.podHasIp?.(namespace, ip)) return undefined;
    return [{ name, type: isIPv4(ip) ? TYPE.A : TYPE.AAAA, ip }];
  }
}

/** CoreDNS's rule: exactly three dashes and no `--` is IPv4; otherwise dashes are colons. */
export function podIp(dashed: string): string | undefined {
  const dashes = dashed.split('-').length - 1;
  if (dashes === 3 && !dashed.includes('--')) {
    const ip = dashed.replace(/-/g, '.');
    return isIPv4(ip) ? ip : undefined;
  }
  const ip = dashed.replace(/-/g, ':');
  return isIPv6(ip) ? ip : undefined;
}
