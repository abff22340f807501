/** The watch cache: one Store watch per resource shared by all HTTP watches, its ring, fallback and failure. */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { KubeObject, Status, WatchEvent } from '../../src/api/meta.js';
import type { ApiServerOptions } from '../../src/apiserver/server.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import type { Store, StoredObject, StoreWatch, StoreWatchListener } from '../../src/apiserver/store/store.js';
import { pod, startTestApi, type TestApi } from './server-harness.js';
import { WatchStream } from './watch-stream.js';
import { poll } from '../helpers/wait.js';

/** A MemoryStore that counts watches and can end them all as a lost etcd connection would. */
class WatchCountingStore implements Store {
  readonly description = 'counting memory';
  watchesOpened = 0;
  private readonly live = new Set<StoreWatchListener>();

  constructor(private readonly inner: MemoryStore) {}

  get(key: string): Promise<StoredObject | undefined> {
    return this.inner.get(key);
  }
  list(prefix: string): Promise<{ items: StoredObject[]; resourceVersion: number }> {
    return this.inner.list(prefix);
  }
  create(key: string, object: KubeObject): Promise<StoredObject> {
    return this.inner.create(key, object);
  }
  update(key: string, object: KubeObject, expectedResourceVersion?: number): Promise<StoredObject> {
    return this.inner.update(key, object, expectedResourceVersion);
  }
  delete(key: string, expectedResourceVersion?: number): Promise<StoredObject> {
    return this.inner.delete(key, expectedResourceVersion);
  }
  currentResourceVersion(): Promise<number> {
    return this.inner.currentResourceVersion();
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  /** Watches of pods only: other resources' watches (none in these tests) are not counted. */
  async watch(prefix: string, sinceResourceVersion: number, listener: StoreWatchListener): Promise<StoreWatch> {
    if (prefix.includes('/pods/')) this.watchesOpened += 1;
    const inner = await this.inner.watch(prefix, sinceResourceVersion, listener);
    this.live.add(listener);
    return {
      stop: () => {
        this.live.delete(listener);
        inner.stop();
      },
    };
  }

  /** Ends every open watch with an error and stops it in the inner store. */
  failWatches(): void {
    for (const listener of [...this.live]) listener.onError(new Error('connection lost'));
  }
}

const PODS = '/api/v1/namespaces/default/pods';
const summary = (events: WatchEvent[]): string[] => events.map((e) => `${e.type} ${e.object.metadata.name ?? ''}`);
const mergePatch = { contentType: 'application/merge-patch+json' };

describe('watch cache', () => {
  let api: TestApi | undefined;
  let store: WatchCountingStore;
  const streams: WatchStream[] = [];
  const start = async (options: Partial<ApiServerOptions> = {}, history?: number): Promise<TestApi> => {
    store = new WatchCountingStore(new MemoryStore(history));
    api = await startTestApi(store, { bootstrap: false, ...options });
    await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'default' } });
    await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'other' } });
    return api;
  };
  const watch = (path: string, accept?: string): WatchStream => {
    const stream = new WatchStream(api!.url, path, accept);
    streams.push(stream);
    return stream;
  };
  const createPod = async (name: string, namespace = 'default', labels?: Record<string, string>): Promise<number> => {
    const created = await api!.call<KubeObject>('POST', `/api/v1/namespaces/${namespace}/pods`, pod(name, labels ? { labels } : {}));
    assert.equal(created.status, 201);
    return Number(created.body.metadata.resourceVersion);
  };
  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.close();
    await api?.close();
    api = undefined;
  });

  test('many watchers share one Store watch and see identical ordered streams', async () => {
    await start();
    const from = await createPod('seed');
    const watchers = Array.from({ length: 25 }, () => watch(`${PODS}?watch=true&resourceVersion=${from}`));
    // Each watcher has its response headers once it is attached.
    await waitUntil(() => watchers.every((w) => w.status === 200));
    for (let i = 0; i < 20; i++) await createPod(`p${i}`);
    await api!.call('PATCH', `${PODS}/p3`, { metadata: { labels: { x: 'y' } } }, mergePatch);
    await api!.call('DELETE', `${PODS}/p5`);
    const expected = [...Array.from({ length: 20 }, (_, i) => `ADDED p${i}`), 'MODIFIED p3', 'DELETED p5'];
    const texts = new Set<string>();
    for (const watcher of watchers) {
      const events = await watcher.waitFor(22);
      assert.deepEqual(summary(events), expected);
      const versions = events.map((e) => Number(e.object.metadata.resourceVersion));
      assert.deepEqual(versions, [...versions].sort((a, b) => a - b));
      texts.add(JSON.stringify(events));
    }
    assert.equal(texts.size, 1, 'every watcher received the same events, byte for byte');
    assert.equal(store.watchesOpened, 1, 'one Store watch for all watchers of pods');
  });

  test('a watch from a resourceVersion inside the ring is served from it', async () => {
    await start({ watchCacheEvents: 50 });
    const first = watch(`${PODS}?watch=true`);
    await waitUntil(() => first.status === 200);
    const from = await createPod('r1');
    await createPod('r2');
    await api!.call('DELETE', `${PODS}/r1`);
    await createPod('r3', 'other');
    const resumed = watch(`${PODS}?watch=true&resourceVersion=${from}`);
    assert.deepEqual(summary(await resumed.waitFor(2)), ['ADDED r2', 'DELETED r1']);
    const everywhere = watch(`/api/v1/pods?watch=true&resourceVersion=${from}`);
    assert.deepEqual(summary(await everywhere.waitFor(3)), ['ADDED r2', 'DELETED r1', 'ADDED r3']);
    await createPod('r4');
    assert.deepEqual(summary(await resumed.waitFor(3)), ['ADDED r2', 'DELETED r1', 'ADDED r4'], 'then live changes');
    assert.equal(store.watchesOpened, 1);
  });

  test('a watch from before the ring falls back to a Store watch (replay, or 410 when the store compacted)', async () => {
    await start({ watchCacheEvents: 3 }, 8);
    const first = watch(`${PODS}?watch=true`);
    await waitUntil(() => first.status === 200);
    const from = await createPod('f0');
    for (let i = 1; i <= 5; i++) await createPod(`f${i}`);
    const resumed = watch(`${PODS}?watch=true&resourceVersion=${from}`);
    assert.deepEqual(summary(await resumed.waitFor(5)), ['ADDED f1', 'ADDED f2', 'ADDED f3', 'ADDED f4', 'ADDED f5'], 'not 410: the store still has it');
    assert.equal(store.watchesOpened, 2, 'the cache, and one direct Store watch');
    for (let i = 6; i <= 12; i++) await createPod(`f${i}`);
    const tooOld = watch(`${PODS}?watch=true&resourceVersion=${from}`);
    const events = await tooOld.waitFor(1);
    await tooOld.waitEnd();
    assert.equal(events[0]!.type, 'ERROR');
    assert.equal((events[0]!.object as unknown as Status).code, 410);
  });

  test('a failing Store watch ends every cached watcher, and the next watch starts a fresh cache', async () => {
    await start();
    const watchers = [watch(`${PODS}?watch=true`), watch(`/api/v1/pods?watch=true&labelSelector=a%3Db`), watch(`${PODS}?watch=true&allowWatchBookmarks=true`)];
    await waitUntil(() => watchers.every((w) => w.status === 200));
    assert.equal(store.watchesOpened, 1);
    store.failWatches();
    for (const watcher of watchers) await watcher.waitEnd();
    const again = watch(`${PODS}?watch=true`);
    await waitUntil(() => again.status === 200);
    await createPod('after');
    assert.deepEqual(summary(await again.waitFor(1)), ['ADDED after']);
    assert.equal(store.watchesOpened, 2, 'a new Store watch for the new cache');
  });

  test('selectors and namespaces per watcher: leaving is DELETED, entering is ADDED', async () => {
    await start();
    const selected = watch(`/api/v1/pods?watch=true&labelSelector=app%3Din`);
    const inDefault = watch(`${PODS}?watch=true`);
    const byName = watch(`${PODS}?watch=true&fieldSelector=metadata.name%3Ds1`);
    await waitUntil(() => [selected, inDefault, byName].every((w) => w.status === 200));
    await createPod('s1', 'default', { app: 'in' });
    await api!.call('PATCH', `${PODS}/s1`, { metadata: { labels: { app: 'out' } } }, mergePatch);
    await api!.call('PATCH', `${PODS}/s1`, { metadata: { labels: { app: 'in' } } }, mergePatch);
    await createPod('s2', 'other', { app: 'in' });
    await createPod('s3', 'default', { app: 'out' });
    await api!.call('DELETE', `${PODS}/s1`);

    const events = await selected.waitFor(5);
    assert.deepEqual(summary(events), ['ADDED s1', 'DELETED s1', 'ADDED s1', 'ADDED s2', 'DELETED s1']);
    assert.equal(events[1]!.object.metadata.labels?.['app'], 'in', 'the DELETED object is the last state that matched');
    assert.ok(Number(events[1]!.object.metadata.resourceVersion) > Number(events[0]!.object.metadata.resourceVersion), 'at the revision it left');
    assert.deepEqual(summary(await inDefault.waitFor(5)), ['ADDED s1', 'MODIFIED s1', 'MODIFIED s1', 'ADDED s3', 'DELETED s1']);
    assert.deepEqual(summary(await byName.waitFor(4)), ['ADDED s1', 'MODIFIED s1', 'MODIFIED s1', 'DELETED s1']);
    assert.equal(store.watchesOpened, 1);
  });

  test('watchCacheEvents 0 turns the cache off: one Store watch per request', async () => {
    await start({ watchCacheEvents: 0 });
    const watchers = [watch(`${PODS}?watch=true`), watch(`${PODS}?watch=true`)];
    await waitUntil(() => watchers.every((w) => w.status === 200));
    await createPod('o1');
    for (const watcher of watchers) assert.deepEqual(summary(await watcher.waitFor(1)), ['ADDED o1']);
    assert.equal(store.watchesOpened, 2);
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  await poll('the condition', check, { timeoutMs, intervalMs: 10 });
}
