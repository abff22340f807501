/**
 * Watch fan-out: one writer, `watchers` watchers of the ConfigMaps in one namespace. The
 * writer creates `count` objects at a steady pace (open loop: one every `intervalMs`
 * whether or not the previous write has answered), each stamped with the time its write
 * started; every watcher notes when the object reaches it. Latency = receipt − write start,
 * so it includes the write itself, the store's notification and, for the apiserver, the
 * encode, the HTTP chunk and the client's decode.
 *
 * The reference in the same run is the same fan-out one layer down: `watchers` listeners on
 * the Store (Store.watch) in this process and the writer calling Store.create. Runs alternate
 * reference, apiserver, reference, apiserver.
 *
 * Before the timed writes, one warm-up object must reach every watcher: that proves all
 * watches are established, so none of the timed latencies includes setting one up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeObject, KubeList } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { ConfigMap, Namespace } from '../../src/api/types.js';
import type { Store, StoreWatch } from '../../src/apiserver/store/store.js';
import { describeError, PontoonError } from '../../src/lib/errors.js';
import type { StoreKind, StoreRig } from './apiserver-rig.js';
import { asStored, benchConfigMap, configMapKey } from './apiserver-writes.js';
import { median, nowMs, percent } from './stats.js';

export const WATCH_CONTENDERS = ['store', 'api'] as const;
export type WatchContender = (typeof WATCH_CONTENDERS)[number];

export interface WatchBenchOptions {
  watchers: number;
  count: number;
  /** Time between write starts. */
  intervalMs: number;
  /** Reference/apiserver pairs. */
  pairs: number;
  checkpoint: () => Promise<void>;
  progress: (line: string) => void;
}

export interface WatchRun {
  /** Every delivery of a timed object to a watcher, in ms. */
  latenciesMs: number[];
  delivered: number;
  expected: number;
  /** First write start → last delivery. */
  elapsedMs: number;
  deliveriesPerSecond: number;
  /** Event loop utilization over the timed part: this process's (writer, watchers) and the apiserver worker's. */
  clientBusy: number;
  serverBusy: number;
}

export interface WatchBenchResult {
  kind: StoreKind;
  watchers: number;
  count: number;
  intervalMs: number;
  describe: Record<WatchContender, string>;
  runs: Record<WatchContender, WatchRun[]>;
}

export class WatchBenchError extends PontoonError {}

const SENT_AT = 'bench.pontoon.dev/write-started-ms';
const WARM_TIMEOUT_MS = 30_000;
const DRAIN_TIMEOUT_MS = 30_000;

interface FanoutTarget {
  label: WatchContender;
  describe: string;
  /** Opens the watches on `namespace`; `deliver(watcher, object)` for every ADDED. */
  open(namespace: string, watchers: number, deliver: (watcher: number, object: KubeObject) => void, fail: (err: unknown) => void): Promise<() => void>;
  write(object: ConfigMap): Promise<void>;
}

function storeTarget(store: Store): FanoutTarget {
  return {
    label: 'store',
    describe: `${store.description} (Store.watch listeners in-process)`,
    open: async (namespace, watchers, deliver, fail) => {
      const since = await store.currentResourceVersion();
      const prefix = configMapKey(namespace, '');
      const handles: StoreWatch[] = [];
      for (let w = 0; w < watchers; w++) {
        handles.push(await store.watch(prefix, since, { onEvent: (event) => event.type === 'ADDED' && deliver(w, event.object), onError: fail }));
      }
      return () => handles.forEach((handle) => handle.stop());
    },
    write: async (object) => {
      await store.create(configMapKey(object.metadata.namespace ?? '', object.metadata.name ?? ''), asStored(object));
    },
  };
}

function apiTarget(rig: StoreRig): FanoutTarget {
  const client = rig.client;
  return {
    label: 'api',
    describe: `apiserver ${rig.api.url} (KubeClient.watch, one HTTP request per watcher)`,
    open: async (namespace, watchers, deliver, fail) => {
      const object: Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } };
      await client.create(RESOURCE.namespaces, object);
      const list: KubeList<ConfigMap> = await client.list(RESOURCE.configmaps, namespace);
      const resourceVersion = list.metadata.resourceVersion;
      let stopping = false;
      const handles = Array.from({ length: watchers }, (_, w) =>
        client.watch<ConfigMap>(RESOURCE.configmaps, namespace, { resourceVersion, timeoutSeconds: 600 }, {
          onEvent: (event) => event.type === 'ADDED' && deliver(w, event.object),
          onClose: (err) => {
            if (!stopping) fail(err ?? new WatchBenchError(`watch ${w} on ${namespace} ended early`));
          },
        }),
      );
      return () => {
        stopping = true;
        handles.forEach((handle) => handle.stop());
      };
    },
    write: async (object) => {
      await client.create(RESOURCE.configmaps, object);
    },
  };
}

async function waitUntil(what: string, timeoutMs: number, done: () => boolean, failure: () => unknown): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  while (!done()) {
    const err = failure();
    if (err !== undefined) throw new WatchBenchError(`failed while waiting for ${what}: ${describeError(err)}`, { cause: err });
    if (nowMs() > deadline) throw new WatchBenchError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function fanout(rig: StoreRig, target: FanoutTarget, namespace: string, options: WatchBenchOptions): Promise<WatchRun> {
  const { watchers, count, intervalMs } = options;
  const latenciesMs: number[] = [];
  const warmed = new Set<number>();
  let delivered = 0;
  let lastReceipt = 0;
  let failure: unknown;
  const deliver = (watcher: number, object: KubeObject): void => {
    const received = nowMs();
    const sentAt = object.metadata.annotations?.[SENT_AT];
    if (sentAt === undefined) {
      warmed.add(watcher);
      return;
    }
    latenciesMs.push(received - Number(sentAt));
    delivered++;
    lastReceipt = received;
  };
  const stop = await target.open(namespace, watchers, deliver, (err) => (failure ??= err));
  try {
    await target.write(benchConfigMap(namespace, 'warm-up'));
    await waitUntil(`the warm-up object to reach all ${watchers} watchers (${warmed.size} did)`, WARM_TIMEOUT_MS, () => warmed.size === watchers, () => failure);

    const writes: Promise<void>[] = [];
    const clientStart = performance.eventLoopUtilization();
    const serverStart = rig.api.eventLoopUtilization();
    const started = nowMs();
    for (let i = 0; i < count; i++) {
      const due = started + i * intervalMs;
      const wait = due - nowMs();
      if (wait > 0) await sleep(wait);
      const writeStarted = nowMs();
      writes.push(target.write(benchConfigMap(namespace, `cm-${i}`, { [SENT_AT]: String(writeStarted) })));
    }
    await Promise.all(writes);
    const expected = watchers * count;
    await waitUntil(`${expected} deliveries (${delivered} arrived)`, DRAIN_TIMEOUT_MS, () => delivered >= expected, () => failure);
    const elapsedMs = lastReceipt - started;
    return {
      latenciesMs,
      delivered,
      expected,
      elapsedMs,
      deliveriesPerSecond: (delivered / elapsedMs) * 1000,
      clientBusy: performance.eventLoopUtilization(clientStart).utilization,
      serverBusy: rig.api.eventLoopUtilization(serverStart).utilization,
    };
  } finally {
    stop();
  }
}

export async function runWatchBench(rig: StoreRig, options: WatchBenchOptions): Promise<WatchBenchResult> {
  const store = await rig.openStore('watch');
  try {
    const targets = { store: storeTarget(store), api: apiTarget(rig) };
    const runs: Record<WatchContender, WatchRun[]> = { store: [], api: [] };
    for (let pair = 0; pair < options.pairs; pair++) {
      for (const label of WATCH_CONTENDERS) {
        const run = await fanout(rig, targets[label], `bench-watch-${pair}`, options);
        runs[label].push(run);
        await options.checkpoint();
        const sorted = [...run.latenciesMs].sort((a, b) => a - b);
        options.progress(
          `  ${rig.kind} pair ${pair + 1}/${options.pairs} ${label}: p50 ${median(sorted).toFixed(2)} ms, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(2)} ms, ${run.deliveriesPerSecond.toFixed(0)} deliveries/s, loops busy: bench ${percent(run.clientBusy)}, apiserver ${percent(run.serverBusy)}`,
        );
      }
    }
    return {
      kind: rig.kind,
      watchers: options.watchers,
      count: options.count,
      intervalMs: options.intervalMs,
      describe: { store: targets.store.describe, api: targets.api.describe },
      runs,
    };
  } finally {
    await store.close();
  }
}
