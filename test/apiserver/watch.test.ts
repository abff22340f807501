/** Watch over HTTP: start points, replay, 410, selector transitions, bookmarks, timeouts, Tables. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KubeObject, Status, WatchEvent } from '../../src/api/meta.js';
import type { Table } from '../../src/api/table.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { openStore } from '../../src/apiserver/store/open.js';
import { pod, startTestApi, storeKinds, type TestApi, type TestStore } from './server-harness.js';
import { WatchStream } from './watch-stream.js';

const PODS = '/api/v1/namespaces/default/pods';

const summary = (events: WatchEvent[]): string[] => events.map((e) => `${e.type} ${e.object.metadata.name ?? ''}`);

for (const [storeName, makeStore] of storeKinds()) {
  describe(`watch over the ${storeName} store`, () => {
    let api: TestApi;
    let backing: TestStore | undefined;
    const streams: WatchStream[] = [];
    const watch = (path: string, accept?: string): WatchStream => {
      const stream = new WatchStream(api.url, path, accept);
      streams.push(stream);
      return stream;
    };
    before(async () => {
      backing = await makeStore();
      api = await startTestApi(backing.store, { bookmarkIntervalMs: 200 });
    });
    after(async () => {
      for (const stream of streams) stream.close();
      await api?.close();
      await backing?.cleanup();
    });

    test('without a resourceVersion: ADDED for what exists, then the changes in order', async () => {
      await api.call('POST', '/api/v1/namespaces', { metadata: { name: 'w1' } });
      const base = '/api/v1/namespaces/w1/pods';
      await api.call('POST', base, pod('a'));
      await api.call('POST', base, pod('b'));
      const stream = watch(`${base}?watch=true`);
      assert.deepEqual(summary(await stream.waitFor(2)), ['ADDED a', 'ADDED b']);
      await api.call('PATCH', `${base}/a`, { metadata: { labels: { x: '1' } } }, { contentType: 'application/merge-patch+json' });
      await api.call('POST', base, pod('c'));
      await api.call('DELETE', `${base}/b`);
      const events = await stream.waitFor(5);
      assert.deepEqual(summary(events), ['ADDED a', 'ADDED b', 'MODIFIED a', 'ADDED c', 'DELETED b']);
      const versions = events.slice(2).map((e) => Number(e.object.metadata.resourceVersion));
      assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
      assert.equal(stream.status, 200);
    });

    test('from a resourceVersion: replays what happened after it; legacy /watch/ paths work', async () => {
      const created = await api.call<KubeObject>('POST', PODS, pod('r1'));
      const from = created.body.metadata.resourceVersion!;
      await api.call('POST', PODS, pod('r2'));
      await api.call('DELETE', `${PODS}/r1`);
      const stream = watch(`${PODS}?watch=1&resourceVersion=${from}`);
      assert.deepEqual(summary(await stream.waitFor(2)), ['ADDED r2', 'DELETED r1']);
      const legacy = watch(`/api/v1/watch/namespaces/default/pods/r2?resourceVersion=${from}`);
      assert.deepEqual(summary(await legacy.waitFor(1)), ['ADDED r2']);
      assert.equal((await api.call('GET', `${PODS}?watch=true&resourceVersion=abc`)).status, 400);
    });

    test('selectors: leaving the selector is DELETED, entering it is ADDED; field selectors too', async () => {
      await api.call('POST', PODS, pod('s1', { labels: { app: 'in' } }));
      const stream = watch(`${PODS}?watch=true&labelSelector=app%3Din`);
      const byName = watch(`${PODS}?watch=true&fieldSelector=metadata.name%3Ds1`);
      assert.deepEqual(summary(await stream.waitFor(1)), ['ADDED s1']);
      await api.call('PATCH', `${PODS}/s1`, { metadata: { labels: { app: 'out' } } }, { contentType: 'application/merge-patch+json' });
      await api.call('PATCH', `${PODS}/s1`, { metadata: { labels: { app: 'in' } } }, { contentType: 'application/merge-patch+json' });
      await api.call('POST', PODS, pod('s2', { labels: { app: 'out' } }));
      await api.call('POST', PODS, pod('s3', { labels: { app: 'in' } }));
      const events = await stream.waitFor(4);
      assert.deepEqual(summary(events), ['ADDED s1', 'DELETED s1', 'ADDED s1', 'ADDED s3']);
      assert.equal(events[1]!.object.metadata.labels?.['app'], 'in', 'the DELETED object is the last state that matched');
      assert.ok(Number(events[1]!.object.metadata.resourceVersion) < Number(events[2]!.object.metadata.resourceVersion));
      assert.deepEqual(summary(await byName.waitFor(3)), ['ADDED s1', 'MODIFIED s1', 'MODIFIED s1']);
    });

    test('bookmarks carry a resourceVersion a client can resume from', async () => {
      const stream = watch(`${PODS}?watch=true&allowWatchBookmarks=true&labelSelector=none%3Dnone`);
      await api.call('POST', PODS, pod('bm'));
      const events = await stream.waitFor(2);
      const bookmarks = events.filter((e) => e.type === 'BOOKMARK');
      assert.equal(bookmarks.length, events.length, 'nothing but bookmarks for a selector that matches nothing');
      const last = bookmarks[bookmarks.length - 1]!;
      assert.equal(last.object.kind, 'Pod');
      assert.ok(Number(last.object.metadata.resourceVersion) > 0);
      const created = await api.call<KubeObject>('GET', `${PODS}/bm`);
      await waitUntil(() => stream.events.some((e) => e.type === 'BOOKMARK' && Number(e.object.metadata.resourceVersion) >= Number(created.body.metadata.resourceVersion)));
      const plain = watch(`${PODS}?watch=true&timeoutSeconds=1&labelSelector=none%3Dnone`);
      await plain.waitEnd(3000);
      assert.equal(plain.events.length, 0, 'no bookmarks unless asked for');
    });

    test('sendInitialEvents ends the initial ADDED events with an annotated BOOKMARK', async () => {
      await api.call('POST', PODS, pod('init1'));
      const stream = watch(`${PODS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Dinit1`);
      const events = await stream.waitFor(2);
      assert.equal(events[0]!.type, 'ADDED');
      assert.equal(events[1]!.type, 'BOOKMARK');
      assert.equal(events[1]!.object.metadata.annotations?.['k8s.io/initial-events-end'], 'true');
    });

    test('timeoutSeconds ends the stream', async () => {
      const started = Date.now();
      const stream = watch(`${PODS}?watch=true&timeoutSeconds=1&resourceVersion=1`);
      await stream.waitEnd(4000);
      assert.ok(Date.now() - started >= 900);
    });

    test('a Table watch sends one-row Tables, column definitions first', async () => {
      const stream = watch(`${PODS}?watch=true&fieldSelector=metadata.name%3Dtbl`, 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json');
      await api.call('POST', PODS, pod('tbl'));
      await api.call('PATCH', `${PODS}/tbl`, { metadata: { labels: { a: 'b' } } }, { contentType: 'application/merge-patch+json' });
      const events = await stream.waitFor(2);
      const [first, second] = events.map((e) => e.object as unknown as Table);
      assert.equal(first!.kind, 'Table');
      assert.ok(first!.columnDefinitions.length > 0);
      assert.equal(first!.rows.length, 1);
      assert.equal(first!.rows[0]!.cells[0], 'tbl');
      assert.equal(second!.rows[0]!.cells[0], 'tbl');
    });
  });
}

describe('watch from a compacted resourceVersion', () => {
  let api: TestApi;
  before(async () => {
    // A store that keeps only a few events of history, like a compacted etcd.
    api = await startTestApi(new MemoryStore(3));
  });
  after(async () => {
    await api?.close();
  });

  test('answers 200 with one ERROR event holding a 410 Expired Status, then ends', async () => {
    for (let i = 0; i < 6; i++) await api.call('POST', PODS, pod(`old-${i}`));
    const stream = new WatchStream(api.url, `${PODS}?watch=true&resourceVersion=1`);
    try {
      const events = await stream.waitFor(1);
      await stream.waitEnd();
      assert.equal(stream.status, 200);
      assert.equal(events.length, 1);
      assert.equal(events[0]!.type, 'ERROR');
      const status = events[0]!.object as unknown as Status;
      assert.equal(status.code, 410);
      assert.equal(status.reason, 'Expired');
    } finally {
      stream.close();
    }
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('watch across an apiserver restart (SQLite file)', () => {
  test('a watch from a version seen before the restart resumes with what happened since', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pontoon-restart-'));
    const url = `sqlite:${join(dir, 'state.db')}`;
    try {
      let api = await startTestApi(await openStore(url));
      const created = await api.call<KubeObject>('POST', PODS, pod('survivor'));
      const seen = created.body.metadata.resourceVersion!;
      await api.call('POST', PODS, pod('while-away'));
      await api.close();

      api = await startTestApi(await openStore(url));
      try {
        await api.call('DELETE', `${PODS}/survivor`);
        const stream = new WatchStream(api.url, `${PODS}?watch=true&resourceVersion=${seen}`);
        try {
          assert.deepEqual(summary(await stream.waitFor(2)), ['ADDED while-away', 'DELETED survivor']);
        } finally {
          stream.close();
        }
        const listed = await api.call<KubeObject & { items: KubeObject[] }>('GET', PODS);
        assert.deepEqual(listed.body.items.map((p) => p.metadata.name), ['while-away']);
        assert.ok(Number(listed.body.metadata.resourceVersion) > Number(seen), 'revisions keep increasing across restarts');
      } finally {
        await api.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
