/**
 * One conformance suite for every Store: MemoryStore (the reference), SQLite on a file and a
 * real etcd. Each backend opens a fresh store per test (its own file, its own key prefix);
 * etcd revisions are shared by the whole etcd, so no test assumes where revisions start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import type { KubeObject } from '../../src/api/meta.js';
import { EtcdStore } from '../../src/apiserver/store/etcd.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { openStore, parseEtcdEndpoints, StoreUrlError } from '../../src/apiserver/store/open.js';
import { SqliteStore } from '../../src/apiserver/store/sqlite.js';
import {
  KeyExistsError,
  KeyNotFoundError,
  ResourceVersionConflictError,
  ResourceVersionTooOldError,
  type Store,
  type StoreEvent,
  type StoreWatch,
} from '../../src/apiserver/store/store.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';

interface Opened {
  store: Store;
  /** Opens the same data again after `store.close()`; absent when the backend keeps nothing. */
  reopen?: () => Promise<Store>;
}

interface Backend {
  name: string;
  open(options?: { historyLimit?: number }): Promise<Opened>;
  /**
   * Drops history through `revision` where the backend needs telling (etcd compaction);
   * stores with a bounded history already dropped it as the test wrote past historyLimit.
   */
  compact(revision: number): Promise<void>;
}

let etcd: TestEtcd | undefined;
let etcdAdmin: Etcd3 | undefined;
const tempDir = mkdtempSync(join(tmpdir(), 'pontoon-store-'));
let opened = 0;

before(async () => {
  etcd = await startEtcd();
  etcdAdmin = new Etcd3({ hosts: [etcd.endpoint] });
});
after(async () => {
  etcdAdmin?.close();
  await etcd?.stop();
  rmSync(tempDir, { recursive: true, force: true });
});

const backends: Backend[] = [
  {
    name: 'memory',
    open: async (options) => ({ store: new MemoryStore(options?.historyLimit) }),
    compact: async () => undefined,
  },
  {
    name: 'sqlite',
    open: async (options) => {
      const path = join(tempDir, `store-${++opened}.db`);
      return { store: SqliteStore.open(path, options), reopen: async () => SqliteStore.open(path, options) };
    },
    compact: async () => undefined,
  },
  {
    name: 'etcd',
    open: async () => {
      assert.ok(etcd);
      const endpoints = [etcd.endpoint];
      const keyPrefix = `/test-${++opened}`;
      return { store: await EtcdStore.open(endpoints, { keyPrefix }), reopen: () => EtcdStore.open(endpoints, { keyPrefix }) };
    },
    compact: async (revision) => {
      assert.ok(etcdAdmin);
      await etcdAdmin.kv.compact({ revision, physical: true });
    },
  },
];

function pod(name: string, extra: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }] }, ...extra };
}

/** Collects a watch's events and its end, so tests can wait for a count. */
class Collector {
  readonly events: StoreEvent[] = [];
  readonly errors: unknown[] = [];
  private waiters: (() => void)[] = [];

  readonly listener = {
    onEvent: (event: StoreEvent) => {
      this.events.push(event);
      this.wake();
    },
    onError: (err: unknown) => {
      this.errors.push(err);
      this.wake();
    },
  };

  async waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`timed out waiting for ${what}; have ${this.events.length} events, ${this.errors.length} errors`);
      await Promise.race([new Promise<void>((resolve) => this.waiters.push(resolve)), sleep(left)]);
    }
  }

  waitForEvents(count: number): Promise<void> {
    return this.waitFor(() => this.events.length >= count, `${count} events`);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

async function withStore(backend: Backend, fn: (opened: Opened) => Promise<void>, options?: { historyLimit?: number }): Promise<void> {
  const handle = await backend.open(options);
  try {
    await fn(handle);
  } finally {
    await handle.store.close();
  }
}

for (const backend of backends) {
  describe(`${backend.name} store`, () => {
    test('get/create/update/delete: stamping, copies and typed errors', () =>
      withStore(backend, async ({ store }) => {
        const key = '/pods/default/a';
        assert.equal(await store.get(key), undefined);
        const before = await store.currentResourceVersion();

        const created = await store.create(key, pod('a', { metadata: { name: 'a', namespace: 'default', resourceVersion: '999999' } }));
        assert.ok(created.resourceVersion > before);
        assert.equal(created.object.metadata.resourceVersion, String(created.resourceVersion));
        assert.equal(await store.currentResourceVersion(), created.resourceVersion);
        const existsError = await store.create(key, pod('a')).then(() => undefined, (err: unknown) => err);
        assert.ok(existsError instanceof KeyExistsError);
        assert.equal(existsError.key, key);

        const got = await store.get(key);
        assert.deepEqual(got, created);
        // Every read hands out a copy: changing one must not change the stored value.
        got!.object.metadata.labels = { changed: 'yes' };
        created.object.metadata.labels = { changed: 'yes' };
        assert.equal((await store.get(key))!.object.metadata.labels, undefined);

        const updated = await store.update(key, pod('a', { status: { phase: 'Running' } }));
        assert.ok(updated.resourceVersion > created.resourceVersion);
        assert.equal(updated.object.metadata.resourceVersion, String(updated.resourceVersion));
        assert.deepEqual(updated.object['status'], { phase: 'Running' });

        const conflict = await store.update(key, pod('a'), created.resourceVersion).then(() => undefined, (err: unknown) => err);
        assert.ok(conflict instanceof ResourceVersionConflictError);
        assert.deepEqual([conflict.key, conflict.expected, conflict.actual], [key, created.resourceVersion, updated.resourceVersion]);
        assert.deepEqual(await store.get(key), updated, 'a failed update changes nothing');

        const casUpdated = await store.update(key, pod('a', { status: { phase: 'Succeeded' } }), updated.resourceVersion);
        assert.ok(casUpdated.resourceVersion > updated.resourceVersion);

        for (const expected of [undefined, 0, casUpdated.resourceVersion]) {
          const missing = await store.update('/pods/default/none', pod('none'), expected).then(() => undefined, (err: unknown) => err);
          assert.ok(missing instanceof KeyNotFoundError, `update of a missing key with expected=${expected}`);
          assert.equal(missing.key, '/pods/default/none');
        }
        assert.equal(await store.get('/pods/default/none'), undefined, 'expected resourceVersion 0 must not create the key');

        const staleDelete = await store.delete(key, updated.resourceVersion).then(() => undefined, (err: unknown) => err);
        assert.ok(staleDelete instanceof ResourceVersionConflictError);
        assert.equal(staleDelete.actual, casUpdated.resourceVersion);

        const deleted = await store.delete(key, casUpdated.resourceVersion);
        assert.ok(deleted.resourceVersion > casUpdated.resourceVersion);
        assert.equal(deleted.object.metadata.resourceVersion, String(deleted.resourceVersion));
        assert.deepEqual(deleted.object['status'], { phase: 'Succeeded' }, 'delete returns the last value');
        assert.equal(await store.currentResourceVersion(), deleted.resourceVersion);
        assert.equal(await store.get(key), undefined);
        await assert.rejects(store.delete(key), KeyNotFoundError);

        const again = await store.create(key, pod('a'));
        assert.ok(again.resourceVersion > deleted.resourceVersion, 're-creating after delete gets a new revision');
        await store.delete(key);
      }));

    test('list: prefix filtering, key order and one snapshot revision', () =>
      withStore(backend, async ({ store }) => {
        const keys = ['/pods/b/2', '/pods/a/1', '/pods/b/1', '/podsx/a/1', '/services/a/1', '/pods/b/10'];
        for (const key of keys) await store.create(key, pod(key));
        await store.update('/pods/a/1', pod('/pods/a/1', { status: { phase: 'Running' } }));

        const pods = await store.list('/pods/');
        assert.deepEqual(pods.items.map((item) => item.object.metadata.name), ['/pods/a/1', '/pods/b/1', '/pods/b/10', '/pods/b/2']);
        assert.equal(pods.resourceVersion, await store.currentResourceVersion());
        for (const item of pods.items) {
          assert.equal(item.object.metadata.resourceVersion, String(item.resourceVersion));
          assert.ok(item.resourceVersion <= pods.resourceVersion);
        }
        assert.deepEqual(pods.items[0]!.object['status'], { phase: 'Running' });
        assert.equal((await store.list('/pods/b/')).items.length, 3);
        assert.equal((await store.list('/pods')).items.length, 5);
        assert.equal((await store.list('')).items.length, keys.length);
        assert.deepEqual((await store.list('/nothing/')).items, []);
      }));

    test('list while writers run: every item is at or below the reported revision', () =>
      withStore(backend, async ({ store }) => {
        const writes = Array.from({ length: 60 }, (_, i) => store.create(`/cm/default/c${i}`, pod(`c${i}`)));
        const lists = [];
        for (let i = 0; i < 5; i++) {
          lists.push(await store.list('/cm/'));
          await sleep(1);
        }
        const results = await Promise.all(writes);
        for (const list of lists) {
          const revisionsAtOrBelow = results.filter((r) => r.resourceVersion <= list.resourceVersion).length;
          assert.equal(list.items.length, revisionsAtOrBelow, `list at ${list.resourceVersion} holds exactly the writes up to it`);
        }
      }));

    test('watch: replay from a past revision, then live events in order, no gap or duplicate', () =>
      withStore(backend, async ({ store }) => {
        await store.create('/pods/default/old', pod('old'));
        const from = await store.currentResourceVersion();
        const a = await store.create('/pods/default/a', pod('a'));
        const aUpdated = await store.update('/pods/default/a', pod('a', { status: { phase: 'Running' } }));
        await store.create('/other/x', pod('x'));
        const aDeleted = await store.delete('/pods/default/a');

        // More writes race with the watch being set up, under the watched prefix and outside it.
        const racing = Array.from({ length: 40 }, (_, i) =>
          store.create(`/pods/default/r${i}`, pod(`r${i}`)).then(async (created) => [created, await store.update(`/pods/default/r${i}`, pod(`r${i}`, { step: 2 }))]),
        );
        const outside = Array.from({ length: 10 }, (_, i) => store.create(`/other/o${i}`, pod(`o${i}`)));
        const collector = new Collector();
        const watch = await store.watch('/pods/', from, collector.listener);
        const racedWrites = (await Promise.all(racing)).flat();
        await Promise.all(outside);
        const live = await store.create('/pods/default/live', pod('live'));

        const expected = [a, aUpdated, aDeleted, ...racedWrites, live].map((w) => w.resourceVersion).sort((x, y) => x - y);
        // Nothing more may follow: a last write's event, delivered in revision order, proves
        // the watch has delivered everything before it (a duplicate would show up first).
        const sentinel = await store.create('/pods/default/sentinel', pod('sentinel'));
        await collector.waitFor(() => collector.events.some((e) => e.key === '/pods/default/sentinel'), 'the sentinel event');
        watch.stop();
        assert.equal(collector.events.pop()?.resourceVersion, sentinel.resourceVersion, 'the sentinel comes last');
        assert.deepEqual(
          collector.events.map((e) => e.resourceVersion),
          expected,
          'every write under the prefix after `from`, once each, in revision order',
        );
        assert.deepEqual(collector.errors, []);
        for (const event of collector.events) {
          assert.ok(event.key.startsWith('/pods/'));
          assert.equal(event.object.metadata.resourceVersion, String(event.resourceVersion));
        }

        const [added, modified, deleted] = collector.events;
        assert.equal(added!.type, 'ADDED');
        assert.equal(added!.key, '/pods/default/a');
        assert.equal(added!.prevObject, undefined);
        assert.equal(modified!.type, 'MODIFIED');
        assert.deepEqual(modified!.object['status'], { phase: 'Running' });
        assert.deepEqual(modified!.prevObject, a.object);
        assert.equal(deleted!.type, 'DELETED');
        assert.deepEqual(deleted!.object, aDeleted.object);
        assert.deepEqual(deleted!.prevObject, aUpdated.object);

        const racedEvents = collector.events.filter((e) => e.key.startsWith('/pods/default/r'));
        assert.equal(racedEvents.filter((e) => e.type === 'ADDED').length, 40);
        for (const event of racedEvents.filter((e) => e.type === 'MODIFIED')) {
          assert.equal(event.object['step'], 2);
          assert.equal(event.prevObject?.['step'], undefined);
          assert.ok(Number(event.prevObject?.metadata.resourceVersion) < event.resourceVersion);
        }
      }));

    test('watch from the current revision delivers only later writes; several watchers each get them', () =>
      withStore(backend, async ({ store }) => {
        await store.create('/leases/n1', pod('n1'));
        const now = await store.currentResourceVersion();
        const collectors = [new Collector(), new Collector(), new Collector()];
        const watches = await Promise.all(collectors.map((c, i) => store.watch(i === 2 ? '/leases/n2' : '/leases/', now, c.listener)));
        await store.update('/leases/n1', pod('n1', { renewed: 1 }));
        const n2 = await store.create('/leases/n2', pod('n2'));
        await collectors[0]!.waitForEvents(2);
        await collectors[1]!.waitForEvents(2);
        await collectors[2]!.waitForEvents(1);
        // A last write every watcher sees proves each has delivered everything before it.
        const last = await store.update('/leases/n2', pod('n2', { renewed: 1 }));
        for (const c of collectors) await c.waitFor(() => c.events.some((e) => e.resourceVersion === last.resourceVersion), 'the last write');
        for (const watch of watches) watch.stop();
        for (const c of collectors) assert.equal(c.events.pop()?.resourceVersion, last.resourceVersion);
        assert.deepEqual(collectors[0]!.events.map((e) => e.type), ['MODIFIED', 'ADDED']);
        assert.deepEqual(collectors[1]!.events, collectors[0]!.events);
        assert.deepEqual(collectors[2]!.events.map((e) => e.resourceVersion), [n2.resourceVersion]);
      }));

    test('watch.stop() stops delivery', () =>
      withStore(backend, async ({ store }) => {
        const collector = new Collector();
        const watch = await store.watch('/pods/', await store.currentResourceVersion(), collector.listener);
        await store.create('/pods/default/a', pod('a'));
        await collector.waitForEvents(1);
        watch.stop();
        // A watch still running sees b; once it has, the stopped one had its chance too.
        const witness = new Collector();
        const running = await store.watch('/pods/', await store.currentResourceVersion(), witness.listener);
        await store.create('/pods/default/b', pod('b'));
        await witness.waitForEvents(1);
        running.stop();
        assert.equal(collector.events.length, 1);
        assert.deepEqual(collector.errors, [], 'stop() is not an error');
      }));

    test('close() ends running watches through onError', async () => {
      const { store } = await backend.open();
      const collector = new Collector();
      let watch: StoreWatch | undefined;
      try {
        watch = await store.watch('/', await store.currentResourceVersion(), collector.listener);
      } finally {
        await store.close();
      }
      await collector.waitFor(() => collector.errors.length === 1, 'onError after close()');
      assert.ok(watch);
      // MemoryStore, the reference fake, keeps answering after close(); the real stores refuse.
      if (backend.name !== 'memory') await assert.rejects(store.get('/x'), 'a closed store refuses work');
    });

    test('history window: too old a revision answers ResourceVersionTooOldError; the window edge still replays', () =>
      withStore(
        backend,
        async ({ store, reopen }) => {
          const from = await store.currentResourceVersion();
          await store.create('/pods/default/a', pod('a'));
          const writes = [];
          for (let i = 0; i < 30; i++) writes.push(await store.update('/pods/default/a', pod('a', { step: i })));
          const last = writes[writes.length - 1]!.resourceVersion;
          await backend.compact(last - 5);

          const tooOld = await store.watch('/pods/', from, new Collector().listener).then(() => undefined, (err: unknown) => err);
          assert.ok(tooOld instanceof ResourceVersionTooOldError, `got ${String(tooOld)}`);
          assert.equal(tooOld.requested, from);
          assert.ok(tooOld.oldestAvailable > from && tooOld.oldestAvailable <= last - 4, `oldestAvailable ${tooOld.oldestAvailable}`);

          // The oldest revision a watch may start from is the one before oldestAvailable.
          const edge = new Collector();
          const edgeWatch = await store.watch('/pods/', tooOld.oldestAvailable - 1, edge.listener);
          const expected = writes.filter((w) => w.resourceVersion >= tooOld.oldestAvailable).map((w) => w.resourceVersion);
          await edge.waitForEvents(expected.length);
          edgeWatch.stop();
          assert.deepEqual(edge.events.map((e) => e.resourceVersion), expected);
          await assert.rejects(store.watch('/pods/', tooOld.oldestAvailable - 2, new Collector().listener), ResourceVersionTooOldError);

          // Inside the window, replay works and carries prevObject.
          const recent = new Collector();
          const recentWatch = await store.watch('/pods/', last - 2, recent.listener);
          await recent.waitForEvents(2);
          recentWatch.stop();
          assert.deepEqual(recent.events.map((e) => e.object['step']), [28, 29]);
          assert.deepEqual(recent.events.map((e) => e.prevObject?.['step']), [27, 28]);

          if (!reopen) return;
          // The window survives a restart: same edge, same answers.
          await store.close();
          const reopened = await reopen();
          try {
            await assert.rejects(reopened.watch('/pods/', tooOld.oldestAvailable - 2, new Collector().listener), ResourceVersionTooOldError);
            const afterRestart = new Collector();
            const watch = await reopened.watch('/pods/', tooOld.oldestAvailable - 1, afterRestart.listener);
            await afterRestart.waitForEvents(expected.length);
            watch.stop();
            assert.deepEqual(afterRestart.events.map((e) => e.resourceVersion), expected);
          } finally {
            await reopened.close();
          }
        },
        { historyLimit: 5 },
      ));

    test('a listener that writes from onEvent does not reorder anyone\'s events', () =>
      withStore(backend, async ({ store }) => {
        const now = await store.currentResourceVersion();
        const echoes: Promise<unknown>[] = [];
        const writer = new Collector();
        const watchWriter = await store.watch('/x/', now, {
          onEvent: (event) => {
            writer.listener.onEvent(event);
            if (!event.key.endsWith('-echo')) echoes.push(store.create(`${event.key}-echo`, pod('echo')));
          },
          onError: writer.listener.onError,
        });
        const reader = new Collector();
        const watchReader = await store.watch('/x/', now, reader.listener);
        await store.create('/x/a', pod('a'));
        await store.create('/x/b', pod('b'));
        await reader.waitForEvents(4);
        await writer.waitForEvents(4);
        await Promise.all(echoes);
        await sleep(50);
        watchWriter.stop();
        watchReader.stop();
        for (const collector of [writer, reader]) {
          const revisions = collector.events.map((e) => e.resourceVersion);
          assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y));
          assert.equal(new Set(revisions).size, 4);
        }
      }));

    test('a watch from a future revision delivers only the revisions after it', () =>
      withStore(backend, async ({ store }) => {
        const now = await store.currentResourceVersion();
        const collector = new Collector();
        const watch = await store.watch('/pods/', now + 1, collector.listener);
        await store.create('/pods/default/a', pod('a'));
        const b = await store.create('/pods/default/b', pod('b'));
        await collector.waitForEvents(1);
        await sleep(50);
        watch.stop();
        assert.deepEqual(collector.events.map((e) => e.resourceVersion), [b.resourceVersion]);
      }));

    if (backend.name !== 'memory') {
      test('reopening keeps the data, continues the revisions and still replays history', async () => {
        const first = await backend.open();
        const from = await first.store.currentResourceVersion();
        const a = await first.store.create('/pods/default/a', pod('a'));
        const b = await first.store.update('/pods/default/a', pod('a', { step: 2 }));
        await first.store.close();

        assert.ok(first.reopen);
        const store = await first.reopen();
        try {
          assert.ok((await store.currentResourceVersion()) >= b.resourceVersion);
          assert.deepEqual(await store.get('/pods/default/a'), b);
          const c = await store.create('/pods/default/c', pod('c'));
          assert.ok(c.resourceVersion > b.resourceVersion);
          const collector = new Collector();
          const watch = await store.watch('/pods/', from, collector.listener);
          await collector.waitForEvents(3);
          watch.stop();
          assert.deepEqual(
            collector.events.map((e) => [e.type, e.resourceVersion]),
            [
              ['ADDED', a.resourceVersion],
              ['MODIFIED', b.resourceVersion],
              ['ADDED', c.resourceVersion],
            ],
          );
        } finally {
          await store.close();
        }
      });
    }
  });
}

describe('etcd store specifics', () => {
  test('stores with different key prefixes share one etcd without seeing each other', async () => {
    assert.ok(etcd);
    const one = await EtcdStore.open([etcd.endpoint], { keyPrefix: '/cluster-one' });
    const two = await EtcdStore.open([etcd.endpoint], { keyPrefix: '/cluster-two' });
    try {
      const collector = new Collector();
      const watch = await two.watch('', await two.currentResourceVersion(), collector.listener);
      await one.create('/pods/default/a', pod('a'));
      const mine = await two.create('/pods/default/b', pod('b'));
      await collector.waitForEvents(1);
      await sleep(100);
      watch.stop();
      assert.deepEqual(collector.events.map((e) => [e.key, e.resourceVersion]), [['/pods/default/b', mine.resourceVersion]]);
      assert.deepEqual((await one.list('')).items.map((i) => i.object.metadata.name), ['a']);
      assert.deepEqual((await two.list('')).items.map((i) => i.object.metadata.name), ['b']);
      assert.ok(etcdAdmin);
      assert.equal(await etcdAdmin.get('/cluster-one/pods/default/a').exists(), true, 'etcd key is keyPrefix + key');
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('list pages through large prefixes at one revision', async () => {
    assert.ok(etcd);
    const store = await EtcdStore.open([etcd.endpoint], { keyPrefix: '/paged', listPageSize: 7 });
    try {
      for (let i = 0; i < 30; i++) await store.create(`/cm/c${String(i).padStart(2, '0')}`, pod(`c${i}`));
      const list = await store.list('/cm/');
      assert.deepEqual(
        list.items.map((i) => i.object.metadata.name),
        Array.from({ length: 30 }, (_, i) => `c${i}`),
      );
      assert.equal(list.resourceVersion, await store.currentResourceVersion());
    } finally {
      await store.close();
    }
  });

  test('losing the etcd connection ends the watch through onError', async () => {
    assert.ok(etcd);
    const store = await EtcdStore.open([etcd.endpoint], { keyPrefix: '/outage', requestTimeoutMs: 2000 });
    const collector = new Collector();
    try {
      await store.watch('/', await store.currentResourceVersion(), collector.listener);
      await store.create('/a', pod('a'));
      await collector.waitForEvents(1);
      await etcd.kill();
      await collector.waitFor(() => collector.errors.length === 1, 'onError after etcd went away', 10_000);
    } finally {
      await etcd.restart();
      await store.close();
    }
    assert.equal(collector.errors.length, 1, 'onError once; close() does not report an ended watch again');
  });

  // An open() that hung would outlast the test's timeout; no clock is read.
  test('an unreachable etcd fails open() within the request timeout', { timeout: 60_000 }, async () => {
    await assert.rejects(EtcdStore.open(['http://127.0.0.1:9'], { requestTimeoutMs: 500 }));
  });
});

describe('openStore', () => {
  test('store URLs', async () => {
    const memory = await openStore('memory:');
    assert.ok(memory instanceof MemoryStore);
    await memory.close();

    const inMemorySqlite = await openStore('sqlite::memory:');
    assert.ok(inMemorySqlite instanceof SqliteStore);
    await inMemorySqlite.create('/a', pod('a'));
    assert.equal((await inMemorySqlite.list('')).items.length, 1);
    await inMemorySqlite.close();

    const file = join(tempDir, 'nested', 'dir', 'state.db');
    const sqlite = await openStore(`sqlite:${file}`);
    assert.equal(sqlite.description, `sqlite ${file}`);
    await sqlite.close();

    assert.ok(etcd);
    const fromUrl = await openStore(etcd.endpoint.replace('http://', 'etcd://'));
    assert.ok(fromUrl instanceof EtcdStore);
    await fromUrl.close();

    assert.deepEqual(parseEtcdEndpoints('etcd://10.0.0.1:2379,etcd-2:2380'), ['http://10.0.0.1:2379', 'http://etcd-2:2380']);
    assert.deepEqual(parseEtcdEndpoints('etcd://[::1]:2379/'), ['http://[::1]:2379']);
    for (const bad of ['sqlite:relative.db', 'etcd://', 'etcd://host', 'etcd://h:99999', 'postgres://x', '', 'memory']) {
      await assert.rejects(openStore(bad), (err: unknown) => err instanceof StoreUrlError && err.message.includes('--store'), bad);
    }
  });
});
