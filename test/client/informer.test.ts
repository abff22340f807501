/**
 * The Informer against a real apiserver: initial list, live events, selector scoping, the
 * 410 re-list with synthetic events, and the promise that informer-based clients
 * survive an apiserver restart (same SQLite file, same unix socket) without missing an event,
 * also while a writer races the restart.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { objectKey } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Pod } from '../../src/api/types.js';
import type { RunningApiServer } from '../../src/apiserver/server.js';
import { SqliteStore } from '../../src/apiserver/store/sqlite.js';
import { ApiError, isAlreadyExists } from '../../src/client/api.js';
import { KubeClient } from '../../src/client/client.js';
import { Informer } from '../../src/client/informer.js';
import { configMap, podObject, quietLog, sleep, startServer, tempDir, waitFor } from './harness.js';

/** Everything an informer delivered, in order, as `type key rv` plus the objects themselves. */
class Recorder<T extends KubeObject> {
  readonly events: { type: 'add' | 'update' | 'delete'; key: string; object: T; old?: T }[] = [];

  constructor(informer: Informer<T>) {
    informer.on('add', (object) => this.events.push({ type: 'add', key: objectKey(object.metadata), object }));
    informer.on('update', (old, object) => this.events.push({ type: 'update', key: objectKey(object.metadata), object, old }));
    informer.on('delete', (object) => this.events.push({ type: 'delete', key: objectKey(object.metadata), object }));
  }

  lines(from = 0): string[] {
    return this.events.slice(from).map((e) => `${e.type} ${e.key}`);
  }

  count(type: 'add' | 'update' | 'delete', key: string): number {
    return this.events.filter((e) => e.type === type && e.key === key).length;
  }

  last(key: string): (typeof this.events)[number] | undefined {
    return this.events.filter((e) => e.key === key).at(-1);
  }
}

/** key → resourceVersion of a list, for comparing an informer's cache with the server. */
function versions(objects: KubeObject[]): Map<string, string | undefined> {
  return new Map(objects.map((o) => [objectKey(o.metadata), o.metadata.resourceVersion]).sort(([a], [b]) => String(a).localeCompare(String(b))) as [string, string | undefined][]);
}

/** Waits until the informer's cache equals a fresh list, object for object and version for version. */
async function converged<T extends KubeObject>(
  informer: Informer<T>,
  client: KubeClient,
  scope: { namespace?: string; labelSelector?: string } = { namespace: 'default' },
): Promise<void> {
  let want: Map<string, string | undefined> = new Map();
  try {
    await waitFor('the informer cache to equal a fresh list', async () => {
      want = versions((await client.list(informer.resource, scope.namespace, scope.labelSelector ? { labelSelector: scope.labelSelector } : {})).items);
      return JSON.stringify([...versions(informer.list())]) === JSON.stringify([...want]);
    }, 20_000);
  } catch (err) {
    assert.deepEqual([...versions(informer.list())], [...want], String(err));
  }
}

/** Final states delivered: every listed object's last event carries its current version. */
function assertFinalStatesDelivered<T extends KubeObject>(recorder: Recorder<T>, fresh: KubeObject[], deletedKeys: Iterable<string>): void {
  for (const object of fresh) {
    const key = objectKey(object.metadata);
    const last = recorder.last(key);
    assert.ok(last && last.type !== 'delete', `${key}: last event ${last?.type ?? 'none'}`);
    assert.equal(last.object.metadata.resourceVersion, object.metadata.resourceVersion, `${key}: final state delivered`);
    assert.deepEqual(last.object['data'], object['data'], `${key}: final data delivered`);
  }
  for (const key of deletedKeys) assert.equal(recorder.last(key)?.type, 'delete', `${key}: deletion delivered`);
}

describe('Informer on a live apiserver', () => {
  let server: RunningApiServer;
  let client: KubeClient;
  const informers: Informer<KubeObject>[] = [];
  before(async () => {
    server = await startServer({ store: SqliteStore.open(':memory:'), closeStore: true, bookmarkIntervalMs: 200 });
    client = new KubeClient({ server: server.url });
  });
  afterEach(() => {
    for (const informer of informers.splice(0)) informer.stop();
  });
  after(() => server?.close());

  function informer<T extends KubeObject>(resource: typeof RESOURCE.pods, options: ConstructorParameters<typeof Informer<T>>[2] = {}): Informer<T> {
    const made = new Informer<T>(client, resource, { log: quietLog(), ...options });
    informers.push(made as unknown as Informer<KubeObject>);
    return made;
  }

  test('start() delivers an add for every listed object before it resolves, then follows create/update/delete', async () => {
    await client.create(RESOURCE.configmaps, configMap('pre-1', { v: '1' }));
    await client.create(RESOURCE.configmaps, configMap('pre-2', { v: '1' }));
    const cms = informer<KubeObject>(RESOURCE.configmaps, { namespace: 'default' });
    const recorder = new Recorder(cms);
    assert.equal(cms.synced, false);
    await cms.start();
    assert.equal(cms.synced, true);
    assert.deepEqual(recorder.lines().sort(), ['add default/pre-1', 'add default/pre-2']);
    assert.equal(cms.get('default/pre-1')?.kind, 'ConfigMap', 'listed items carry their kind');
    assert.equal(cms.get('default/pre-1')?.apiVersion, 'v1');
    assert.ok(cms.resourceVersion, 'the list resourceVersion is kept to watch from');

    const mark = recorder.events.length;
    const created = await client.create(RESOURCE.configmaps, configMap('live', { v: '1' }));
    const updated = await client.update(RESOURCE.configmaps, { ...created, data: { v: '2' } });
    await client.delete(RESOURCE.configmaps, 'pre-1', 'default');
    await waitFor('three live events', () => recorder.events.length >= mark + 3);
    assert.deepEqual(recorder.lines(mark), ['add default/live', 'update default/live', 'delete default/pre-1']);
    const update = recorder.events[mark + 1]!;
    assert.deepEqual(update.old?.['data'], { v: '1' }, 'update hands over the previous state');
    assert.deepEqual(update.object['data'], { v: '2' });
    assert.equal(update.object.metadata.resourceVersion, updated.metadata.resourceVersion);
    assert.equal(cms.get('default/pre-1'), undefined);
    assert.deepEqual(cms.get('default/live')?.['data'], { v: '2' });
    await converged(cms, client);

    cms.stop();
    const stoppedAt = recorder.events.length;
    await client.create(RESOURCE.configmaps, configMap('after-stop', {}));
    await sleep(150);
    assert.equal(recorder.events.length, stoppedAt, 'a stopped informer delivers nothing');
  });

  test('a transform decides what the cache keeps and what handlers get, for listed and watched objects alike', async () => {
    await client.create(RESOURCE.configmaps, configMap('trim-listed', { keep: 'a', drop: 'b' }, { app: 'x' }));
    const trim = (object: KubeObject): KubeObject => ({ apiVersion: object.apiVersion, kind: object.kind, metadata: { name: object.metadata.name, namespace: object.metadata.namespace, resourceVersion: object.metadata.resourceVersion }, data: { keep: (object['data'] as Record<string, string>)['keep'] ?? '' } });
    const cms = informer<KubeObject>(RESOURCE.configmaps, { namespace: 'default', labelSelector: 'app=x', transform: trim });
    const recorder = new Recorder(cms);
    await cms.start();
    const created = await client.create(RESOURCE.configmaps, configMap('trim-watched', { keep: 'c', drop: 'd' }, { app: 'x' }));
    await client.update(RESOURCE.configmaps, { ...created, data: { keep: 'e', drop: 'f' } });
    await waitFor('the add and the update', () => recorder.count('update', 'default/trim-watched') === 1);
    for (const key of ['default/trim-listed', 'default/trim-watched']) {
      const cached = cms.get(key);
      assert.deepEqual(Object.keys(cached?.metadata ?? {}).sort(), ['name', 'namespace', 'resourceVersion'], `${key}: labels, uid, timestamps dropped`);
      assert.deepEqual(Object.keys((cached?.['data'] as object | undefined) ?? {}), ['keep'], key);
    }
    assert.deepEqual(recorder.events.map((e) => [e.type, e.key, e.object['data'], e.old?.['data']]), [
      ['add', 'default/trim-listed', { keep: 'a' }, undefined],
      ['add', 'default/trim-watched', { keep: 'c' }, undefined],
      ['update', 'default/trim-watched', { keep: 'e' }, { keep: 'c' }],
    ]);
    await converged(cms, client, { namespace: 'default', labelSelector: 'app=x' });
  });

  test('a delete hands over the final state of the object', async () => {
    const cms = informer<KubeObject>(RESOURCE.configmaps, { namespace: 'default', fieldSelector: 'metadata.name=final-state' });
    const recorder = new Recorder(cms);
    await cms.start();
    const created = await client.create(RESOURCE.configmaps, configMap('final-state', { v: '1' }));
    const last = await client.update(RESOURCE.configmaps, { ...created, data: { v: 'last' } });
    await client.delete(RESOURCE.configmaps, 'final-state', 'default');
    await waitFor('the delete', () => recorder.last('default/final-state')?.type === 'delete');
    assert.deepEqual(recorder.lines(), ['add default/final-state', 'update default/final-state', 'delete default/final-state']);
    const removed = recorder.last('default/final-state')!.object;
    assert.deepEqual(removed['data'], { v: 'last' });
    // The DELETED event's object (stamped with the deletion's version), not the cached copy.
    assert.ok(Number(removed.metadata.resourceVersion) > Number(last.metadata.resourceVersion), 'the delete carries the deletion version');
  });

  test('a label-scoped informer sees objects enter and leave its selector as add and delete', async () => {
    const pods = informer<Pod>(RESOURCE.pods, { labelSelector: 'app=web' });
    const recorder = new Recorder(pods);
    await client.create(RESOURCE.pods, podObject('web-1', { labels: { app: 'web' } }));
    await client.create(RESOURCE.pods, podObject('db-1', { labels: { app: 'db' } }));
    await client.create(RESOURCE.namespaces, { metadata: { name: 'other' } });
    await client.create(RESOURCE.pods, podObject('web-2', { namespace: 'other', labels: { app: 'web' } }));
    await pods.start();
    assert.deepEqual(recorder.lines().sort(), ['add default/web-1', 'add other/web-2'], 'all namespaces, selector applied');

    const mark = recorder.events.length;
    await client.patch(RESOURCE.pods, 'db-1', 'default', { metadata: { labels: { app: 'web' } } }, 'merge');
    await client.patch(RESOURCE.pods, 'web-1', 'default', { metadata: { labels: { app: 'gone' } } }, 'merge');
    await client.patch(RESOURCE.pods, 'web-2', 'other', { metadata: { labels: { app: 'web', v: '2' } } }, 'merge');
    await client.create(RESOURCE.pods, podObject('db-2', { labels: { app: 'db' } }));
    // A fence: events come in resourceVersion order, so once its add is here every earlier
    // change has been delivered (or never will be).
    await client.create(RESOURCE.pods, podObject('fence', { labels: { app: 'web' } }));
    await waitFor('the fence', () => recorder.last('default/fence') !== undefined);
    assert.deepEqual(recorder.lines(mark), ['add default/db-1', 'delete default/web-1', 'update other/web-2', 'add default/fence']);
    await client.delete(RESOURCE.pods, 'fence', 'default');
    await waitFor('the fence gone', () => recorder.last('default/fence')?.type === 'delete');
    assert.deepEqual(pods.list().map((p) => objectKey(p.metadata)).sort(), ['default/db-1', 'other/web-2']);
    await converged(pods, client, { labelSelector: 'app=web' });
  });

  test('a namespace- and field-scoped informer sees only its pods', async () => {
    const pods = informer<Pod>(RESOURCE.pods, { namespace: 'other', fieldSelector: 'spec.nodeName=node-a' });
    const recorder = new Recorder(pods);
    await pods.start();
    assert.deepEqual(recorder.lines(), []);
    await client.create(RESOURCE.pods, podObject('on-a', { namespace: 'other', nodeName: 'node-a' }));
    await client.create(RESOURCE.pods, podObject('on-b', { namespace: 'other', nodeName: 'node-b' }));
    await client.create(RESOURCE.pods, podObject('on-a', { nodeName: 'node-a' }));
    await client.create(RESOURCE.pods, podObject('unbound', { namespace: 'other' }));
    await client.bind('other', 'unbound', 'node-a');
    await client.create(RESOURCE.pods, podObject('fence', { namespace: 'other', nodeName: 'node-a' }));
    await waitFor('the fence (every earlier event delivered)', () => recorder.last('other/fence') !== undefined);
    assert.deepEqual(recorder.lines(), ['add other/on-a', 'add other/unbound', 'add other/fence']);
  });

  test('resync re-delivers every cached object as an update', async () => {
    const cms = informer<KubeObject>(RESOURCE.configmaps, { namespace: 'default', fieldSelector: 'metadata.name=live', resyncSeconds: 0.2 });
    const recorder = new Recorder(cms);
    await cms.start();
    await waitFor('a resync', () => recorder.count('update', 'default/live') >= 2);
    const resync = recorder.events.find((e) => e.type === 'update')!;
    assert.equal(resync.old, resync.object, 'a resync update has the same object on both sides');
  });

  test('bookmarks advance a quiet informer\'s resourceVersion', async () => {
    const cms = informer<KubeObject>(RESOURCE.configmaps, { namespace: 'default', fieldSelector: 'metadata.name=quiet' });
    const recorder = new Recorder(cms);
    await cms.start();
    const before = cms.resourceVersion;
    // Unrelated writes advance the store; bookmarks (every 200 ms here) carry the informer along.
    for (let i = 0; i < 5; i++) await client.create(RESOURCE.configmaps, configMap(`noise-${i}`, {}));
    await waitFor('a bookmark to advance the resourceVersion', () => Number(cms.resourceVersion) > Number(before), 5_000);
    await client.create(RESOURCE.configmaps, configMap('quiet', { v: '1' }));
    await waitFor('the add', () => recorder.count('add', 'default/quiet') === 1);
    assert.deepEqual(recorder.lines(), ['add default/quiet']);
  });
});

describe('Informer when the apiserver ends every watch after a second', () => {
  let server: RunningApiServer;
  before(async () => {
    server = await startServer({ store: SqliteStore.open(':memory:'), closeStore: true, watchTimeoutMs: () => 1_000 });
  });
  after(() => server?.close());

  test('re-watches from where it was and misses nothing written across the re-watches', async () => {
    const client = new KubeClient({ server: server.url });
    const informer = new Informer<KubeObject>(client, RESOURCE.configmaps, { namespace: 'default', log: quietLog() });
    const recorder = new Recorder(informer);
    await informer.start();
    try {
      const names: string[] = [];
      for (let i = 0; i < 70; i++) {
        const name = `tick-${i}`;
        await client.create(RESOURCE.configmaps, configMap(name, { i: String(i) }));
        if (i % 2 === 1) await client.delete(RESOURCE.configmaps, name, 'default');
        names.push(name);
        await sleep(40);
      }
      await converged(informer, client);
      assert.deepEqual(names.filter((name) => recorder.count('add', `default/${name}`) !== 1), []);
      assert.deepEqual(names.filter((name, i) => recorder.count('delete', `default/${name}`) !== i % 2), []);
    } finally {
      informer.stop();
    }
  });
});

describe('Informer after a 410 Gone', () => {
  const dir = tempDir('informer-410');
  const socketPath = join(dir.path, 'apiserver.sock');
  // One store outlives the apiserver processes in front of it, with a history of only 5 events.
  const store = SqliteStore.open(':memory:', { historyLimit: 5 });
  let server: RunningApiServer | undefined;
  let informer: Informer<KubeObject> | undefined;
  after(async () => {
    informer?.stop();
    await server?.close();
    await store.close();
    dir.remove();
  });

  test('re-lists and emits synthetic add/update/delete for what changed while it could not watch', async () => {
    server = await startServer({ store, closeStore: false, listen: false, socketPath });
    const client = new KubeClient({ server: `unix:${socketPath}` });
    const keep = await client.create(RESOURCE.configmaps, configMap('keep', { v: '1' }));
    const change = await client.create(RESOURCE.configmaps, configMap('change', { v: '1' }));
    await client.create(RESOURCE.configmaps, configMap('remove', { v: '1' }));
    informer = new Informer<KubeObject>(client, RESOURCE.configmaps, { namespace: 'default', log: quietLog() });
    const recorder = new Recorder(informer);
    await informer.start();
    assert.deepEqual(recorder.lines().sort(), ['add default/change', 'add default/keep', 'add default/remove']);
    const watchedFrom = informer.resourceVersion;

    // The informer's apiserver goes away; another one on the same store takes writes.
    await server.close();
    server = undefined;
    const other = await startServer({ store, closeStore: false, listen: false, socketPath: join(dir.path, 'other.sock') });
    const writer = new KubeClient({ server: other.url });
    await writer.update(RESOURCE.configmaps, { ...change, data: { v: '2' } });
    await writer.delete(RESOURCE.configmaps, 'remove', 'default');
    await writer.create(RESOURCE.configmaps, configMap('new', { v: '1' }));
    // Enough unrelated writes to push the informer's resourceVersion out of the 5-event history.
    for (let i = 0; i < 20; i++) await writer.create(RESOURCE.namespaces, { metadata: { name: `filler-${i}` } });
    await other.close();

    // The same socket again: the watch from the old version is answered 410 and the informer re-lists.
    const mark = recorder.events.length;
    assert.equal(mark, 3, 'nothing was delivered while the apiserver was away');
    server = await startServer({ store, closeStore: false, listen: false, socketPath });
    await waitFor('the re-list events', () => recorder.events.length >= mark + 3, 15_000);
    await sleep(100);
    assert.deepEqual(recorder.lines(mark).sort(), ['add default/new', 'delete default/remove', 'update default/change']);
    const update = recorder.events.slice(mark).find((e) => e.type === 'update')!;
    assert.deepEqual(update.old?.['data'], { v: '1' });
    assert.deepEqual(update.object['data'], { v: '2' });
    assert.equal(recorder.count('update', 'default/keep'), 0, 'an unchanged object gets no synthetic update');
    assert.equal(informer.get('default/keep')?.metadata.resourceVersion, keep.metadata.resourceVersion);
    assert.ok(Number(informer.resourceVersion) > Number(watchedFrom) + 20, 'the re-list moved the resourceVersion past the gap');
    await converged(informer, client);

    // And it watches again afterwards.
    await client.create(RESOURCE.configmaps, configMap('after-relist', {}));
    await waitFor('a live add after the re-list', () => recorder.count('add', 'default/after-relist') === 1);
  });
});

/** True for failures that mean "the apiserver is not there right now": retry them. */
function transient(err: unknown): boolean {
  if (err instanceof ApiError) return err.code >= 500;
  return true;
}

/** Failed attempts retried so far, so a test can tell that its writes really raced a restart. */
let retriedAttempts = 0;

async function retry<T>(what: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await what();
    } catch (err) {
      if (!transient(err) || attempt > 500) throw err;
      retriedAttempts++;
      await sleep(10);
    }
  }
}

describe('Informer across apiserver restarts (SQLite file, fixed unix socket)', () => {
  const dir = tempDir('informer-restart');
  const socketPath = join(dir.path, 'apiserver.sock');
  const storeUrl = `sqlite:${join(dir.path, 'state.db')}`;
  let server: RunningApiServer | undefined;
  const informers: Informer<KubeObject>[] = [];
  const start = async (): Promise<RunningApiServer> => (server = await startServer({ store: storeUrl, listen: false, socketPath }));
  const stop = async (): Promise<void> => {
    const running = server;
    server = undefined;
    await running?.close();
  };
  after(async () => {
    for (const informer of informers) informer.stop();
    await stop();
    dir.remove();
  });

  test('an apiserver restarts on its own bootstrapped SQLite file', async () => {
    const file = `sqlite:${join(dir.path, 'bootstrap-twice.db')}`;
    await (await startServer({ store: file, listen: false, socketPath: join(dir.path, 'b.sock') })).close();
    const again = await startServer({ store: file, listen: false, socketPath: join(dir.path, 'b.sock') });
    try {
      const client = new KubeClient({ server: again.url });
      assert.ok(await client.get(RESOURCE.services, 'kubernetes', 'default'), 'the bootstrapped Service is still there');
    } finally {
      await again.close();
    }
  });

  test('changes made just before the stop and just after the restart all arrive, none twice', async () => {
    await start();
    const client = new KubeClient({ server: `unix:${socketPath}`, timeoutMs: 5_000 });
    const names = ['a', 'b', 'c', 'd'];
    const objects = new Map<string, KubeObject>();
    for (const name of names) objects.set(name, await client.create(RESOURCE.configmaps, configMap(`quiet-${name}`, { v: '0' }, { set: 'quiet' })));
    const informer = new Informer<KubeObject>(client, RESOURCE.configmaps, { namespace: 'default', labelSelector: 'set=quiet', log: quietLog() });
    informers.push(informer);
    const recorder = new Recorder(informer);
    await informer.start();

    // Right before the stop: written and committed, possibly not yet streamed to the informer.
    await client.update(RESOURCE.configmaps, { ...objects.get('a')!, data: { v: 'before-stop' } });
    await client.delete(RESOURCE.configmaps, 'quiet-b', 'default');
    await client.create(RESOURCE.configmaps, configMap('quiet-e', { v: 'before-stop' }, { set: 'quiet' }));
    await stop();
    await sleep(300);
    await start();
    // Right after the restart, before the informer has necessarily reconnected.
    await client.patch(RESOURCE.configmaps, 'quiet-c', 'default', { data: { v: 'after-restart' } }, 'merge');
    await client.delete(RESOURCE.configmaps, 'quiet-d', 'default');
    await client.create(RESOURCE.configmaps, configMap('quiet-f', { v: 'after-restart' }, { set: 'quiet' }));
    await client.patch(RESOURCE.configmaps, 'quiet-e', 'default', { data: { v: 'after-restart' } }, 'merge');

    await converged(informer, client, { namespace: 'default', labelSelector: 'set=quiet' });
    const fresh = (await client.list(RESOURCE.configmaps, 'default', { labelSelector: 'set=quiet' })).items;
    assert.deepEqual(fresh.map((o) => o.metadata.name).sort(), ['quiet-a', 'quiet-c', 'quiet-e', 'quiet-f']);
    assertFinalStatesDelivered(recorder, fresh, ['default/quiet-b', 'default/quiet-d']);
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) assert.equal(recorder.count('add', `default/quiet-${name}`), 1, `one add for quiet-${name}`);
    assert.equal(recorder.count('delete', 'default/quiet-b'), 1);
    assert.equal(recorder.count('delete', 'default/quiet-d'), 1);
    // The persisted event log let the watch resume: every single change came as its own event.
    assert.deepEqual(
      recorder.lines(names.length),
      ['update default/quiet-a', 'delete default/quiet-b', 'add default/quiet-e', 'update default/quiet-c', 'delete default/quiet-d', 'add default/quiet-f', 'update default/quiet-e'],
    );
  });

  test('a writer racing three restarts: every create is seen once as add, every delete once as delete', async () => {
    if (!server) await start();
    const client = new KubeClient({ server: `unix:${socketPath}`, timeoutMs: 5_000 });
    const informer = new Informer<KubeObject>(client, RESOURCE.configmaps, { namespace: 'default', labelSelector: 'set=race', log: quietLog() });
    informers.push(informer);
    const recorder = new Recorder(informer);
    await informer.start();

    const created: string[] = [];
    const deleted: string[] = [];
    const retriedBefore = retriedAttempts;
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const name = `race-${i}`;
        await retry(async () => {
          try {
            await client.create(RESOURCE.configmaps, configMap(name, { v: '1' }, { set: 'race' }));
          } catch (err) {
            // The first attempt committed but its answer was lost in the restart.
            if (!isAlreadyExists(err)) throw err;
          }
        });
        created.push(name);
        await retry(() => client.patch(RESOURCE.configmaps, name, 'default', { data: { v: '2' } }, 'merge'));
        if (i % 3 === 0) {
          await retry(() => client.delete(RESOURCE.configmaps, name, 'default'));
          deleted.push(name);
        }
      }
    })();

    for (let restart = 0; restart < 3; restart++) {
      await sleep(150 + restart * 70);
      await stop();
      await sleep(50);
      await start();
    }
    await sleep(200);
    writing = false;
    await writer;
    assert.ok(created.length >= 5, `the writer made progress (${created.length} objects)`);
    assert.ok(retriedAttempts > retriedBefore, 'some writes hit a stopped apiserver and were retried');

    await converged(informer, client, { namespace: 'default', labelSelector: 'set=race' });
    const fresh = (await client.list(RESOURCE.configmaps, 'default', { labelSelector: 'set=race' })).items;
    assert.equal(fresh.length, created.length - deleted.length);
    const missing = created.filter((name) => recorder.count('add', `default/${name}`) !== 1);
    assert.deepEqual(missing, [], 'objects not seen exactly once as add');
    const undeleted = deleted.filter((name) => recorder.count('delete', `default/${name}`) !== 1);
    assert.deepEqual(undeleted, [], 'deletions not seen exactly once');
    assert.equal(recorder.events.filter((e) => e.type === 'delete').length, deleted.length, 'no spurious deletes');
    assertFinalStatesDelivered(recorder, fresh, deleted.map((name) => `default/${name}`));
  });

  test('a quiet informer reconnects promptly after each of several restarts', async () => {
    if (!server) await start();
    const client = new KubeClient({ server: `unix:${socketPath}`, timeoutMs: 5_000 });
    const informer = new Informer<KubeObject>(client, RESOURCE.configmaps, { namespace: 'default', labelSelector: 'set=idle', log: quietLog() });
    informers.push(informer);
    const recorder = new Recorder(informer);
    await informer.start();
    // No events between restarts, so nothing but a healthy watch can reset the retry backoff.
    for (let restart = 0; restart < 5; restart++) {
      await sleep(1_200);
      await stop();
      await start();
    }
    const written = Date.now();
    await client.create(RESOURCE.configmaps, configMap('idle-1', {}, { set: 'idle' }));
    await waitFor('the add', () => recorder.count('add', 'default/idle-1') === 1);
    const latencyMs = Date.now() - written;
    assert.ok(latencyMs < 1_000, `the add arrived ${latencyMs} ms after the write`);
  });
});
