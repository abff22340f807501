/**
 * Events expire. Upstream stores each Event under an etcd lease of `--event-ttl` (one hour);
 * our stores have no leases, so a sweep deletes Events whose last occurrence is older than
 * the TTL. Without it every pod start leaves records behind forever and the events prefix
 * only grows.
 */
import type { KubeObject } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Logger } from '../lib/log.js';
import { storagePrefix, type Registry } from './registry.js';
import { ApiStatusError } from './status.js';

export const DEFAULT_EVENT_TTL_SECONDS = 3600;

/** When the event last happened: lastTimestamp, eventTime (events.k8s.io style) or creation. */
export function lastSeen(event: KubeObject): number {
  for (const field of [event['lastTimestamp'], event['eventTime'], event.metadata.creationTimestamp]) {
    if (typeof field === 'string') {
      const parsed = Date.parse(field);
      if (!Number.isNaN(parsed)) return parsed;
    }
  }
  return Date.now();
}

export class EventExpiry {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
    private readonly intervalMs = Math.min(60_000, Math.max(1000, (ttlSeconds * 1000) / 10)),
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.sweep()
        .then((removed) => {
          if (removed > 0) this.log.debug({ removed }, 'expired events deleted');
        })
        .catch((err: unknown) => this.log.warn({ err }, 'event expiry sweep failed'))
        .finally(() => {
          this.running = undefined;
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Deletes every Event older than the TTL; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const cutoff = now - this.ttlSeconds * 1000;
    const listed = await this.registry.store.list(storagePrefix(RESOURCE.events));
    let removed = 0;
    for (const { object } of listed.items) {
      if (lastSeen(object) >= cutoff) continue;
      try {
        await this.registry.delete(RESOURCE.events, object.metadata.namespace, object.metadata.name ?? '', {});
        removed++;
      } catch (err) {
        if (!(err instanceof ApiStatusError && err.code === 404)) throw err;
      }
    }
    return removed;
  }
}
