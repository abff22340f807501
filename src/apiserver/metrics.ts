/**
 * The apiserver's `/metrics` (on its own port, as upstream's): requests under upstream's
 * `apiserver_request_total{verb,code}` name, so existing dashboards work, their latency as
 * `pontoon_apiserver_request_duration_seconds`, which store it runs on, and the process
 * metrics every Pontoon daemon has.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { addProcessMetrics } from '../lib/telemetry.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ApiserverMetrics {
  readonly registry = addProcessMetrics(new Registry(), 'apiserver');
  private readonly requests = new Counter({ name: 'apiserver_request_total', help: 'Requests by HTTP method and response code', labelNames: ['verb', 'code'], registers: [this.registry] });
  private readonly duration = new Histogram({ name: 'pontoon_apiserver_request_duration_seconds', help: 'Time to the end of the response, by HTTP method (watches count until they end)', labelNames: ['verb'], buckets: BUCKETS, registers: [this.registry] });

  constructor(storeDescription: string) {
    new Gauge({ name: 'pontoon_apiserver_store_info', help: 'Always 1; the store label says what the apiserver keeps objects in', labelNames: ['store'], registers: [this.registry] }).set({ store: storeDescription }, 1);
  }

  observe(method: string, code: number, seconds: number): void {
    this.requests.inc({ verb: method, code: String(code) });
    this.duration.observe({ verb: method }, seconds);
  }
}
