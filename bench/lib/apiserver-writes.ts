/**
 * Write throughput of ConfigMaps (~1 KiB) on one store kind, three ways, in alternating
 * rounds of the same run:
 *   raw    the JSON straight into the engine (better-sqlite3 transaction / etcd3 put);
 *   store  the Store class used in-process (SqliteStore / EtcdStore: CAS, revisions, log);
 *   api    POST (create) and PUT with resourceVersion (update) through the apiserver over
 *          HTTP on 127.0.0.1, KubeClient with keep-alive, the same concurrency.
 * Each round writes `count` new objects, then updates each once; the order of the three
 * rotates every round so a slow spell on the machine does not always land on the same one.
 */
import { randomUUID } from 'node:crypto';
import { RESOURCE } from '../../src/api/resources.js';
import type { ConfigMap, Namespace } from '../../src/api/types.js';
import type { Store } from '../../src/apiserver/store/store.js';
import { PontoonError } from '../../src/lib/errors.js';
import type { RawWriter, StoreKind, StoreRig } from './apiserver-rig.js';
import { median, nowMs } from './stats.js';

export const WRITE_CONTENDERS = ['raw', 'store', 'api'] as const;
export type WriteContender = (typeof WRITE_CONTENDERS)[number];

export interface WriteBenchOptions {
  /** Objects created (then updated) per contender per round. */
  count: number;
  /** Writes in flight at once, for every contender. */
  concurrency: number;
  rounds: number;
  /** Objects per contender in an untimed first round (JIT, page cache, connections). */
  warmup: number;
  checkpoint: () => Promise<void>;
  progress: (line: string) => void;
}

export interface WriteRates {
  /** One entry per timed round. */
  createsPerSecond: number[];
  updatesPerSecond: number[];
  /**
   * Share of the time the benchmark's own event loop (the client, or the whole in-process
   * contender) was busy, per round and phase; and the apiserver worker's, for `api`.
   */
  clientBusy: number[];
  serverBusy: number[];
}

export interface WriteBenchResult {
  kind: StoreKind;
  objectBytes: number;
  count: number;
  concurrency: number;
  rounds: number;
  describe: Record<WriteContender, string>;
  rates: Record<WriteContender, WriteRates>;
}

export class WriteBenchError extends PontoonError {}

const PAYLOAD_TARGET_BYTES = 1024;
const BENCH_LABELS = { 'app.kubernetes.io/name': 'pontoon-bench', 'pontoon.dev/bench': 'apiserver-writes' };

/** A ConfigMap whose JSON is about PAYLOAD_TARGET_BYTES long as the client sends it. */
export function benchConfigMap(namespace: string, name: string, annotations?: Record<string, string>): ConfigMap {
  const object: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: BENCH_LABELS, ...(annotations ? { annotations } : {}) },
    data: { generation: '0', payload: '' },
  };
  const filler = Math.max(0, PAYLOAD_TARGET_BYTES - JSON.stringify(object).length);
  return { ...object, data: { generation: '0', payload: 'x'.repeat(filler) } };
}

/** What the apiserver adds before storing, so the references write objects of the same size. */
export function asStored(object: ConfigMap): ConfigMap {
  return { ...object, metadata: { ...object.metadata, uid: randomUUID(), creationTimestamp: new Date().toISOString() } };
}

export function configMapKey(namespace: string, name: string): string {
  return `/registry/core/configmaps/${namespace}/${name}`;
}

function bumped(object: ConfigMap): ConfigMap {
  return { ...object, data: { ...object.data, generation: String(Number(object.data?.['generation'] ?? '0') + 1) } };
}

/** Runs `op(0..count-1)` with `concurrency` in flight; returns the wall time in ms. */
export async function pump(count: number, concurrency: number, op: (index: number) => Promise<void>): Promise<number> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await op(next++);
  };
  const started = nowMs();
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, lane));
  return nowMs() - started;
}

/** One contender's create and update steps for one round's namespace. */
interface WriteTarget {
  label: WriteContender;
  describe: string;
  begin(namespace: string, count: number): Promise<void>;
  create(index: number): Promise<void>;
  update(index: number): Promise<void>;
}

function rawTarget(raw: RawWriter): WriteTarget {
  let objects: ConfigMap[] = [];
  let namespace = '';
  return {
    label: 'raw',
    describe: raw.description,
    begin: async (ns, count) => {
      namespace = ns;
      objects = Array.from({ length: count }, (_, i) => asStored(benchConfigMap(ns, `cm-${i}`)));
    },
    create: async (i) => {
      const object = objects[i] as ConfigMap;
      await raw.create(configMapKey(namespace, object.metadata.name ?? ''), JSON.stringify(object));
    },
    update: async (i) => {
      const object = bumped(objects[i] as ConfigMap);
      await raw.update(configMapKey(namespace, object.metadata.name ?? ''), JSON.stringify(object));
    },
  };
}

function storeTarget(store: Store): WriteTarget {
  let objects: ConfigMap[] = [];
  let versions: number[] = [];
  let namespace = '';
  return {
    label: 'store',
    describe: store.description,
    begin: async (ns, count) => {
      namespace = ns;
      objects = Array.from({ length: count }, (_, i) => asStored(benchConfigMap(ns, `cm-${i}`)));
      versions = new Array<number>(count).fill(0);
    },
    create: async (i) => {
      const object = objects[i] as ConfigMap;
      versions[i] = (await store.create(configMapKey(namespace, object.metadata.name ?? ''), object)).resourceVersion;
    },
    update: async (i) => {
      const object = bumped(objects[i] as ConfigMap);
      // With the expected revision, as the registry does for a PUT that carries one.
      await store.update(configMapKey(namespace, object.metadata.name ?? ''), object, versions[i]);
    },
  };
}

function apiTarget(rig: StoreRig): WriteTarget {
  let created: ConfigMap[] = [];
  let namespace = '';
  return {
    label: 'api',
    describe: `apiserver ${rig.api.url} (KubeClient, HTTP keep-alive)`,
    begin: async (ns, count) => {
      namespace = ns;
      created = new Array<ConfigMap>(count);
      const object: Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } };
      await rig.client.create(RESOURCE.namespaces, object);
    },
    create: async (i) => {
      created[i] = await rig.client.create(RESOURCE.configmaps, benchConfigMap(namespace, `cm-${i}`));
    },
    update: async (i) => {
      const current = created[i];
      if (!current) throw new WriteBenchError(`failed to update ConfigMap "${namespace}/cm-${i}": it was not created`);
      // The object as created, resourceVersion included: an optimistic-concurrency PUT.
      await rig.client.update(RESOURCE.configmaps, bumped(current));
    },
  };
}

export async function runWriteBench(rig: StoreRig, options: WriteBenchOptions): Promise<WriteBenchResult> {
  const raw = await rig.openRaw('writes');
  const store = await rig.openStore('writes');
  try {
    const targets = [rawTarget(raw), storeTarget(store), apiTarget(rig)];
    const rates: Record<WriteContender, WriteRates> = {
      raw: { createsPerSecond: [], updatesPerSecond: [], clientBusy: [], serverBusy: [] },
      store: { createsPerSecond: [], updatesPerSecond: [], clientBusy: [], serverBusy: [] },
      api: { createsPerSecond: [], updatesPerSecond: [], clientBusy: [], serverBusy: [] },
    };
    for (let round = -1; round < options.rounds; round++) {
      const count = round < 0 ? options.warmup : options.count;
      // Rotate who goes first; round -1 is the untimed warmup.
      const order = targets.map((_, i) => targets[(i + Math.max(0, round)) % targets.length] as WriteTarget);
      for (const target of order) {
        const namespace = round < 0 ? 'bench-warmup' : `bench-writes-${round}`;
        await target.begin(namespace, count);
        const clientStart = performance.eventLoopUtilization();
        const serverStart = rig.api.eventLoopUtilization();
        const createMs = await pump(count, options.concurrency, (i) => target.create(i));
        await options.checkpoint();
        const updateMs = await pump(count, options.concurrency, (i) => target.update(i));
        const clientBusy = performance.eventLoopUtilization(clientStart).utilization;
        const serverBusy = rig.api.eventLoopUtilization(serverStart).utilization;
        await options.checkpoint();
        if (round < 0) continue;
        const creates = (count / createMs) * 1000;
        const updates = (count / updateMs) * 1000;
        rates[target.label].createsPerSecond.push(creates);
        rates[target.label].updatesPerSecond.push(updates);
        rates[target.label].clientBusy.push(clientBusy);
        rates[target.label].serverBusy.push(serverBusy);
        options.progress(`  ${rig.kind} round ${round + 1}/${options.rounds} ${target.label}: ${creates.toFixed(0)} creates/s, ${updates.toFixed(0)} updates/s`);
      }
    }
    return {
      kind: rig.kind,
      objectBytes: JSON.stringify(benchConfigMap('bench-writes-0', 'cm-0')).length,
      count: options.count,
      concurrency: options.concurrency,
      rounds: options.rounds,
      describe: { raw: targets[0]?.describe ?? '', store: targets[1]?.describe ?? '', api: targets[2]?.describe ?? '' },
      rates,
    };
  } finally {
    await store.close();
    await raw.close();
  }
}

export function medianRates(rates: WriteRates): { creates: number; updates: number; clientBusy: number; serverBusy: number } {
  return {
    creates: median(rates.createsPerSecond, 'create rates'),
    updates: median(rates.updatesPerSecond, 'update rates'),
    clientBusy: median(rates.clientBusy, 'client loop utilization'),
    serverBusy: median(rates.serverBusy, 'server loop utilization'),
  };
}
