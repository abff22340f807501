/**
 * The desired record set, computed from what the informers hold, one owner at a time — the
 * schema of the Kubernetes DNS specification (kubernetes/dns docs/specification.md, 1.1.0) as
 * CoreDNS's `kubernetes` plugin serves it:
 *
 *   ClusterIP Service   <svc>.<ns>.svc.<zone>            A/AAAA  every cluster IP (dual-stack: both)
 *                       _<port>._<proto>.<svc>.<ns>...   SRV     0 100 <port> <svc>.<ns>.svc.<zone>  (named ports)
 *                       <reversed IP>.in-addr.arpa       PTR     <svc>.<ns>.svc.<zone>
 *   headless Service    <svc>.<ns>.svc.<zone>            A/AAAA  every ready endpoint address
 *                       <host>.<svc>.<ns>.svc.<zone>     A/AAAA  that endpoint; <host> is its hostname or,
 *                                                                 as CoreDNS does, its dashed IP (10-244-1-5)
 *                       _<port>._<proto>.<svc>.<ns>...   SRV     0 <100/n> <port> <host>.<svc>.<ns>.svc.<zone>
 *                       <reversed IP>                    PTR     <host>.<svc>.<ns>.svc.<zone>
 *   ExternalName        <svc>.<ns>.svc.<zone>            CNAME   spec.externalName
 *   Namespace           <ns>.svc.<zone>, <ns>.pod.<zone> exist, with no records (NODATA, as CoreDNS)
 *
 * A headless Service with no ready endpoints still exists (NODATA, not NXDOMAIN): CoreDNS's
 * default without `ignore empty_service`. Pod records (`a-b-c-d.<ns>.pod.<zone>`) are not in
 * the set: under `pods insecure` they are synthesized per query (resolver.ts).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { EndpointSlice, Service } from '../api/types.js';
import { TYPE } from './wire.js';

export type DnsRecord =
  | { name: string; type: typeof TYPE.A | typeof TYPE.AAAA; ip: string }
  | { name: string; type: typeof TYPE.PTR | typeof TYPE.CNAME | typeof TYPE.NS; target: string }
  | { name: string; type: typeof TYPE.SRV; priority: number; weight: number; port: number; target: string }
  | { name: string; type: typeof TYPE.TXT; text: string }
  | { name: string; type: typeof TYPE.SOA; mname: string; rname: string; serial: number; minimum: number };

/** What one owner (a Service with its slices, a Namespace, the zone apex) puts into the zone. */
export interface OwnerRecords {
  records: DnsRecord[];
  /** Names that exist even without records of their own (NODATA rather than NXDOMAIN). */
  names: string[];
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Spec 2.3.1: `dns-version.<zone>. TXT "1.1.0"`. */
export const SCHEMA_VERSION = '1.1.0';

/**
 * What serviceRecords reads of a Service, for its informer to keep (Informer `transform`).
 * CoreDNS keeps trimmed copies (its object.Service) for the same reason: at 10k Services
 * the whole objects were the largest part of the server's heap, and every major GC marks
 * all of it (docs/dns.md, "Latency").
 */
export function serviceFields(service: Service): Service {
  const { name, namespace, resourceVersion } = service.metadata;
  const spec = service.spec ?? {};
  // Every property always present (undefined when absent): one object shape for all 10k.
  return {
    apiVersion: service.apiVersion,
    kind: service.kind,
    metadata: { name, namespace, resourceVersion },
    spec: { type: spec.type, externalName: spec.externalName, clusterIP: spec.clusterIP, clusterIPs: spec.clusterIPs, publishNotReadyAddresses: spec.publishNotReadyAddresses, ports: spec.ports?.map(portFields) },
  };
}

/** What serviceRecords reads of an EndpointSlice (see serviceFields); the controller reads its service-name label. */
export function sliceFields(slice: EndpointSlice): EndpointSlice {
  const { name, namespace, resourceVersion, labels } = slice.metadata;
  const service = labels?.[SERVICE_NAME_LABEL];
  return {
    apiVersion: slice.apiVersion,
    kind: slice.kind,
    metadata: { name, namespace, resourceVersion, labels: service === undefined ? undefined : { [SERVICE_NAME_LABEL]: service } },
    addressType: slice.addressType,
    endpoints: (slice.endpoints ?? []).map(({ addresses, hostname, conditions }) => ({ addresses, hostname, conditions: conditions?.ready === undefined ? undefined : { ready: conditions.ready } })),
    ports: slice.ports?.map(portFields),
  };
}

function portFields({ name, protocol, port }: { name?: string; protocol?: 'TCP' | 'UDP' | 'SCTP'; port: number }): { name?: string; protocol?: 'TCP' | 'UDP' | 'SCTP'; port: number } {
  return { name, protocol, port };
}

export function serviceDomain(name: string, namespace: string, zone: string): string {
  return `${name}.${namespace}.svc.${zone}`.toLowerCase();
}

/** `10.96.0.10` → `10.0.96.10.in-addr.arpa`; IPv6 → nibbles under ip6.arpa (RFC 3596 §2.5). */
export function reverseName(ip: string): string | undefined {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(ip)) return undefined;
  const nibbles = expandIpv6(ip).replace(/:/g, '');
  return `${[...nibbles].reverse().join('.')}.ip6.arpa`;
}

function expandIpv6(ip: string): string {
  const [head = '', tail] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => g.padStart(4, '0')).join(':');
}

/** CoreDNS's endpoint name when the endpoint has no hostname: the address with dashes. */
export function dashedIp(ip: string): string {
  return isIPv4(ip) ? ip.replace(/\./g, '-') : expandIpv6(ip).replace(/:/g, '-');
}

function addressRecord(name: string, ip: string): DnsRecord | undefined {
  if (isIPv4(ip)) return { name, type: TYPE.A, ip };
  if (isIPv6(ip)) return { name, type: TYPE.AAAA, ip };
  return undefined;
}

/** An endpoint counts when ready (unset means ready, per discovery/v1) or the Service publishes not-ready ones. */
function endpointServes(ready: boolean | undefined, publishNotReady: boolean): boolean {
  return publishNotReady || ready !== false;
}

const isLabel = (text: string): boolean => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(text);

/** Records of one Service and the EndpointSlices that name it. */
export function serviceRecords(service: Service, slices: readonly EndpointSlice[], zone: string): OwnerRecords {
  const namespace = service.metadata.namespace ?? 'default';
  const base = serviceDomain(service.metadata.name ?? '', namespace, zone);
  const spec = service.spec ?? {};
  const records: DnsRecord[] = [];
  if (spec.type === 'ExternalName') {
    const target = (spec.externalName ?? '').replace(/\.$/, '').toLowerCase();
    if (target) records.push({ name: base, type: TYPE.CNAME, target });
    return { records, names: [base] };
  }
  const clusterIPs = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  const headless = clusterIPs[0] === 'None';
  if (!headless) {
    // A Service still waiting for its cluster IP has none to publish yet; it exists meanwhile.
    for (const ip of clusterIPs) {
      const record = addressRecord(base, ip);
      if (!record) continue;
      records.push(record);
      const ptr = reverseName(ip);
      if (ptr) records.push({ name: ptr, type: TYPE.PTR, target: base });
    }
    for (const port of spec.ports ?? []) {
      if (!port.name || !isLabel(port.name)) continue;
      records.push({ name: `_${port.name}._${(port.protocol ?? 'TCP').toLowerCase()}.${base}`.toLowerCase(), type: TYPE.SRV, priority: 0, weight: 100, port: port.port, target: base });
    }
    return { records, names: [base] };
  }
  const publishNotReady = spec.publishNotReadyAddresses === true;
  const srv = new Map<string, { port: number; target: string }[]>();
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (!endpointServes(endpoint.conditions?.ready, publishNotReady)) continue;
      for (const ip of endpoint.addresses ?? []) {
        const hostname = endpoint.hostname && isLabel(endpoint.hostname) ? endpoint.hostname.toLowerCase() : dashedIp(ip);
        const host = `${hostname}.${base}`;
        // The same address in two slices (a slice being replaced) is one endpoint.
        if (seen.has(`${host}/${ip}`)) continue;
        seen.add(`${host}/${ip}`);
        const a = addressRecord(base, ip);
        if (!a) continue;
        records.push(a, { ...a, name: host });
        const ptr = reverseName(ip);
        if (ptr) records.push({ name: ptr, type: TYPE.PTR, target: host });
        for (const port of slice.ports ?? []) {
          if (!port.name || !isLabel(port.name) || typeof port.port !== 'number') continue;
          const name = `_${port.name}._${(port.protocol ?? 'TCP').toLowerCase()}.${base}`.toLowerCase();
          const list = srv.get(name) ?? [];
          if (!list.some((s) => s.target === host && s.port === port.port)) list.push({ port: port.port, target: host });
          srv.set(name, list);
        }
      }
    }
  }
  for (const [name, targets] of srv) {
    // CoreDNS spreads weight 100 over the records of one name.
    const weight = Math.floor(100 / targets.length);
    for (const target of targets) records.push({ name, type: TYPE.SRV, priority: 0, weight, port: target.port, target: target.target });
  }
  return { records, names: [base] };
}

export function namespaceRecords(namespace: string, zone: string): OwnerRecords {
  const ns = namespace.toLowerCase();
  return { records: [], names: [`${ns}.svc.${zone}`, `${ns}.pod.${zone}`] };
}

/** The zone apex: SOA and NS as CoreDNS serves them, the schema version TXT. */
export function apexRecords(zone: string, serial: number, ttlSeconds: number): OwnerRecords {
  return {
    records: [
      { name: zone, type: TYPE.SOA, mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}`, serial, minimum: ttlSeconds },
      { name: zone, type: TYPE.NS, target: `ns.dns.${zone}` },
      { name: `dns-version.${zone}`, type: TYPE.TXT, text: SCHEMA_VERSION },
    ],
    names: [`svc.${zone}`, `pod.${zone}`],
  };
}
