import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Reconciler, WorkQueue } from '../../src/client/workqueue.js';
import { ApiError } from '../../src/client/api.js';
import { createLogger } from '../../src/lib/log.js';

const log = createLogger('test', { level: 'silent' });

describe('WorkQueue', () => {
  test('a key waiting in the queue is not added twice', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    assert.equal(queue.length, 2);
    assert.equal(await queue.get(), 'a');
    assert.equal(await queue.get(), 'b');
    queue.done('a');
    queue.done('b');
    assert.equal(queue.idle, true);
  });

  test('a key added while processing is handed out again only after done', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const key = await queue.get();
    assert.equal(key, 'a');
    queue.add('a');
    assert.equal(queue.length, 0, 'not handed to a second worker while being processed');
    queue.done('a');
    assert.equal(queue.length, 1);
    assert.equal(await queue.get(), 'a');
  });

  test('a waiting getter receives the next add', async () => {
    const queue = new WorkQueue();
    const pending = queue.get();
    queue.add('x');
    assert.equal(await pending, 'x');
  });

  test('rate-limited adds back off exponentially and forget resets', () => {
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 100 });
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => queue.backoffMs(n)), [10, 20, 40, 80, 100, 100]);
    queue.addRateLimited('k');
    queue.addRateLimited('k');
    assert.equal(queue.requeues('k'), 2);
    queue.forget('k');
    assert.equal(queue.requeues('k'), 0);
    queue.shutDown();
  });

  test('addAfter keeps the earliest deadline', async () => {
    const queue = new WorkQueue();
    queue.addAfter('k', 5_000);
    queue.addAfter('k', 20);
    const start = Date.now();
    assert.equal(await queue.get(), 'k');
    assert.ok(Date.now() - start < 2_000);
    queue.shutDown();
  });

  test('shutDown releases waiting getters with undefined', async () => {
    const queue = new WorkQueue();
    const pending = queue.get();
    queue.shutDown();
    assert.equal(await pending, undefined);
  });
});

describe('Reconciler', () => {
  test('retries failed syncs with backoff until they succeed, conflicts included', async () => {
    const attempts: string[] = [];
    let failuresLeft = 3;
    const reconciler = new Reconciler({
      name: 'test',
      log,
      queue: { baseDelayMs: 1 },
      sync: async (key) => {
        attempts.push(key);
        if (failuresLeft-- > 0) {
          throw failuresLeft % 2 === 0
            ? new ApiError({ apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', reason: 'Conflict', code: 409 })
            : new Error('boom');
        }
      },
    });
    reconciler.start();
    reconciler.enqueue('ns/a');
    for (let i = 0; i < 200 && attempts.length < 4; i++) await sleep(5);
    assert.deepEqual(attempts, ['ns/a', 'ns/a', 'ns/a', 'ns/a']);
    assert.equal(reconciler.queue.requeues('ns/a'), 0, 'success forgets the failures');
    await reconciler.stop();
  });

  test('one key is never synced by two workers at once', async () => {
    let running = 0;
    let maxRunning = 0;
    let syncs = 0;
    const reconciler = new Reconciler({
      name: 'test',
      log,
      workers: 4,
      sync: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(10);
        running--;
        syncs++;
      },
    });
    reconciler.start();
    reconciler.enqueue('k');
    await sleep(2);
    reconciler.enqueue('k');
    reconciler.enqueue('k');
    for (let i = 0; i < 100 && syncs < 2; i++) await sleep(5);
    await sleep(30);
    assert.equal(maxRunning, 1);
    assert.equal(syncs, 2, 'adds during a sync collapse into one more sync');
    await reconciler.stop();
  });

  test('requeueAfterMs asks for another look', async () => {
    let syncs = 0;
    const reconciler = new Reconciler({
      name: 'test',
      log,
      sync: async () => (++syncs < 3 ? { requeueAfterMs: 5 } : undefined),
    });
    reconciler.start();
    reconciler.enqueue('k');
    for (let i = 0; i < 100 && syncs < 3; i++) await sleep(5);
    assert.equal(syncs, 3);
    await reconciler.stop();
  });
});
