/**
 * Prometheus metrics, `pontoon_dns_*` named after CoreDNS's (coredns_dns_requests_total,
 * coredns_dns_responses_total, coredns_dns_request_duration_seconds, coredns_cache_*,
 * coredns_forward_*), so its dashboards translate label for label.
 *
 * The hot path only bumps plain numbers; they are copied into prom-client at scrape time
 * (`collect`), because a labelled prom-client inc() hashes its labels on every call.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats } from './answers.js';

const BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const TYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 65: 'HTTPS', 255: 'ANY' };

export const typeLabel = (qtype: number): string => TYPE_NAMES[qtype] ?? 'other';

export class DnsMetrics {
  readonly registry = new Registry();
  private readonly pendingRequests = new Map<string, number>();
  private readonly pendingResponses = new Map<string, number>();
  private readonly forwards = new Map<string, number>();
  /** Seconds per type, observed into the histogram in batches at scrape time. */
  private readonly durations = new Map<string, number[]>();
  dropped = 0;

  constructor(cacheStats: () => CacheStats, recordCount: () => number) {
    const take = <K>(map: Map<K, number>): [K, number][] => {
      const entries = [...map.entries()];
      map.clear();
      return entries;
    };
    const self = this;
    // Registered first so that one scrape flushes the pending numbers before the others render.
    new Gauge({
      name: 'pontoon_dns_records',
      help: 'Resource records in the served set',
      registers: [this.registry],
      collect() {
        this.set(recordCount());
        for (const [labels, n] of take(self.pendingRequests)) {
          const [proto = '', type = ''] = labels.split('|');
          requests.inc({ proto, type }, n);
        }
        for (const [rcode, n] of take(self.pendingResponses)) responses.inc({ rcode }, n);
        for (const [labels, n] of take(self.forwards)) {
          const [to = '', outcome = ''] = labels.split('|');
          forwards.inc({ to, outcome }, n);
        }
        for (const [type, seconds] of self.durations) {
          for (const s of seconds) duration.observe({ type }, s);
          seconds.length = 0;
        }
        if (self.dropped) dropped.inc(self.dropped);
        self.dropped = 0;
      },
    });
    const requests = new Counter({ name: 'pontoon_dns_requests_total', help: 'DNS requests, by transport and query type (coredns_dns_requests_total)', labelNames: ['proto', 'type'], registers: [this.registry] });
    const responses = new Counter({ name: 'pontoon_dns_responses_total', help: 'DNS responses, by rcode (coredns_dns_responses_total)', labelNames: ['rcode'], registers: [this.registry] });
    const duration = new Histogram({ name: 'pontoon_dns_request_duration_seconds', help: 'Time from receiving a query to sending its answer (coredns_dns_request_duration_seconds)', labelNames: ['type'], buckets: BUCKETS, registers: [this.registry] });
    const forwards = new Counter({ name: 'pontoon_dns_forward_requests_total', help: 'Queries forwarded, by upstream and outcome (coredns_forward_requests_total)', labelNames: ['to', 'outcome'], registers: [this.registry] });
    const dropped = new Counter({ name: 'pontoon_dns_dropped_total', help: 'Messages dropped without an answer (short header, or a response sent to us)', registers: [this.registry] });
    let lastHits = 0;
    let lastMisses = 0;
    const hits = new Counter({ name: 'pontoon_dns_cache_hits_total', help: 'Queries answered from prepared wire bytes (coredns_cache_hits_total)', registers: [this.registry] });
    const misses = new Counter({ name: 'pontoon_dns_cache_misses_total', help: 'Queries whose answer had to be built (coredns_cache_misses_total)', registers: [this.registry] });
    new Gauge({
      name: 'pontoon_dns_cache_entries',
      help: 'Prepared answers, by kind: prepared (names with records, rebuilt on change) or dynamic (negative and synthesized, built on use) (coredns_cache_entries)',
      labelNames: ['type'],
      registers: [this.registry],
      collect() {
        const stats = cacheStats();
        this.set({ type: 'prepared' }, stats.prepared);
        this.set({ type: 'dynamic' }, stats.dynamic);
        hits.inc(stats.hits - lastHits);
        misses.inc(stats.misses - lastMisses);
        lastHits = stats.hits;
        lastMisses = stats.misses;
      },
    });
  }

  request(proto: 'udp' | 'tcp', qtype: number): void {
    this.requests(proto, qtype, 1);
  }

  response(rcode: number, qtype: number, seconds: number): void {
    this.responses(rcode, 1);
    this.durationsOf(qtype, [seconds]);
  }

  /** `count` requests at once (the UDP loop reports its counts in batches). */
  requests(proto: 'udp' | 'tcp', qtype: number, count: number): void {
    const key = `${proto}|${typeLabel(qtype)}`;
    this.pendingRequests.set(key, (this.pendingRequests.get(key) ?? 0) + count);
  }

  responses(rcode: number, count: number): void {
    const name = RCODE_NAMES[rcode] ?? String(rcode);
    this.pendingResponses.set(name, (this.pendingResponses.get(name) ?? 0) + count);
  }

  durationsOf(qtype: number, seconds: readonly number[]): void {
    const type = typeLabel(qtype);
    let list = this.durations.get(type);
    if (!list) this.durations.set(type, (list = []));
    // Bounded between scrapes: keep a sample of the newest when nobody scrapes.
    for (const s of seconds) if (list.length < 100_000) list.push(s);
  }

  forwarded(to: string, outcome: string): void {
    const key = `${to}|${outcome}`;
    this.forwards.set(key, (this.forwards.get(key) ?? 0) + 1);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
