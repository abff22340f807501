/**
 * core/v1 Events for `kubectl describe`: "Scheduled", "SuccessfulCreate", "ScalingReplicaSet"...
 *
 * Design note: recording is fire-and-forget — a failed Event write is logged and dropped,
 * never retried through a controller's queue, because events are advice to humans and must not
 * hold up reconciliation. Repeats of the same (object, type, reason, message) within the
 * correlation window bump `count` and `lastTimestamp` on the existing Event instead of
 * creating a new one, as client-go's EventCorrelator does, so a pod that stays unschedulable
 * does not flood the namespace.
 */
import { randomBytes } from 'node:crypto';
import type { KubeObject } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Event } from '../api/types.js';
import type { KubeApi } from './api.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';

const CORRELATION_LIMIT = 4096;
const CORRELATION_WINDOW_MS = 10 * 60 * 1000;

interface Recorded {
  name: string;
  namespace: string;
  count: number;
  lastSeenMs: number;
}

export class EventRecorder {
  private readonly recent = new Map<string, Recorded>();
  /** Writes in flight, so tests and shutdown can wait for them. */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly api: KubeApi,
    private readonly component: string,
    private readonly log: Logger,
    private readonly host?: string,
  ) {}

  record(object: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const write = this.write(object, type, reason, message).catch((err: unknown) => {
      this.log.debug({ reason, object: object.metadata.name, err: describeError(err) }, 'failed to record event');
    });
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
  }

  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private async write(object: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date();
    const timestamp = now.toISOString().replace(/\.\d+Z$/, 'Z');
    const namespace = object.metadata.namespace || 'default';
    const correlationKey = [object.metadata.uid ?? object.metadata.name, type, reason, message].join('\u0000');
    const previous = this.recent.get(correlationKey);
    if (previous && now.getTime() - previous.lastSeenMs < CORRELATION_WINDOW_MS) {
      previous.count += 1;
      previous.lastSeenMs = now.getTime();
      try {
        await this.api.patch(RESOURCE.events, previous.name, previous.namespace, { count: previous.count, lastTimestamp: timestamp }, 'merge');
        return;
      } catch {
        // The event expired or was deleted: create a fresh one below.
        this.recent.delete(correlationKey);
      }
    }
    const event: Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${object.metadata.name ?? 'object'}.${now.getTime().toString(16)}${randomBytes(2).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name: object.metadata.name,
        namespace: object.metadata.namespace,
        uid: object.metadata.uid,
        resourceVersion: object.metadata.resourceVersion,
      },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      source: { component: this.component, ...(this.host ? { host: this.host } : {}) },
      reportingComponent: this.component,
      reportingInstance: this.host ?? '',
    };
    const created = await this.api.create(RESOURCE.events, event);
    if (this.recent.size >= CORRELATION_LIMIT) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
    this.recent.set(correlationKey, {
      name: created.metadata.name ?? '',
      namespace,
      count: 1,
      lastSeenMs: now.getTime(),
    });
  }
}
