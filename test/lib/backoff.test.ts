/**
 * The shared retry schedule: exponential, capped, equal jitter, injected randomness and sleep
 * (no wall clock), and a scan that keeps hand-rolled doubling loops out of src/.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { Backoff, exponentialDelayMs, nextExponentialDelayMs, retry, RetryAbortedError } from '../../src/lib/backoff.js';

/** A sleep that only records what it was asked to wait. */
function recordingSleep(): { waits: number[]; sleep: (ms: number) => Promise<void> } {
  const waits: number[] = [];
  return { waits, sleep: async (ms) => void waits.push(ms) };
}

describe('backoff', () => {
  test('each wait lies in [delay/2, delay] of a doubling, capped delay; the two ends are reached with random 0 and ~1', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    const lows = Array.from({ length: 6 }, () => low.next());
    const highs = Array.from({ length: 6 }, () => high.next());
    // nominal 100, 200, 400, 800, 1000, 1000
    assert.deepEqual(lows, [50, 100, 200, 400, 500, 500]);
    assert.deepEqual(highs, [100, 200, 400, 800, 1000, 1000]);
  });

  test('jitter: many draws from a seeded generator spread over the interval instead of one value', () => {
    let seed = 12345;
    const lcg = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const waits = new Set<number>();
    for (let i = 0; i < 50; i++) waits.add(new Backoff({ initialMs: 1000, maxMs: 1000, random: lcg }).next());
    assert.ok(waits.size > 20, `50 daemons failing together would wait ${waits.size} distinct delays`);
    for (const w of waits) assert.ok(w >= 500 && w <= 1000, `wait ${w} outside [500, 1000]`);
  });

  test('reset starts the schedule over', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000, random: () => 0.999999 });
    b.next();
    b.next();
    assert.equal(b.currentMs, 40);
    b.reset();
    assert.equal(b.next(), 10);
  });

  test('the un-jittered schedules: exponentialDelayMs and nextExponentialDelayMs agree with base·2^n, capped', () => {
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => exponentialDelayMs(10_000, 300_000, n)), [10_000, 20_000, 40_000, 80_000, 300_000]);
    assert.equal(exponentialDelayMs(5, 1000, 10_000), 1000);
    assert.equal(exponentialDelayMs(5, 1000, -1), 5);
    const steps: number[] = [];
    let previous: number | undefined;
    for (let i = 0; i < 7; i++) steps.push((previous = nextExponentialDelayMs(previous, 1000, 15_000)));
    assert.deepEqual(steps, [1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    assert.equal(nextExponentialDelayMs(0, 10, 100), 10);
  });
});

describe('retry', () => {
  test('retries until the step succeeds, sleeping the backoff\'s jittered waits, and reports each failure', async () => {
    const { waits, sleep } = recordingSleep();
    const errors: [string, number, number][] = [];
    let calls = 0;
    const result = await retry(
      async (attempt) => {
        calls++;
        assert.equal(attempt, calls);
        if (calls < 4) throw new Error(`fail ${calls}`);
        return 'ok';
      },
      { backoff: { initialMs: 100, maxMs: 300, random: () => 0.5 }, sleep, onError: (err, ms, attempt) => errors.push([(err as Error).message, ms, attempt]) },
    );
    assert.equal(result, 'ok');
    assert.equal(calls, 4);
    assert.deepEqual(waits, [75, 150, 225]);
    assert.deepEqual(errors, [['fail 1', 75, 1], ['fail 2', 150, 2], ['fail 3', 225, 3]]);
  });

  test('a kept Backoff is reset by a success, so the next failure waits the first step again', async () => {
    const { waits, sleep } = recordingSleep();
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 0.999999 });
    let n = 0;
    const flaky = async (): Promise<void> => {
      if (n++ % 3 !== 2) throw new Error('flaky');
    };
    await retry(flaky, { backoff, sleep, onError: () => undefined });
    await retry(flaky, { backoff, sleep, onError: () => undefined });
    assert.deepEqual(waits, [100, 200, 100, 200]);
  });

  test('an error the caller calls fatal is rethrown at once', async () => {
    const { waits, sleep } = recordingSleep();
    class Fatal extends Error {}
    await assert.rejects(
      retry(async () => Promise.reject(new Fatal('no')), { backoff: { initialMs: 1, maxMs: 1 }, sleep, retryable: (err) => !(err instanceof Fatal), onError: () => undefined }),
      Fatal,
    );
    assert.deepEqual(waits, []);
  });

  test('abort ends the wait and rethrows the last failure; an aborted signal never runs the step', async () => {
    const controller = new AbortController();
    let calls = 0;
    const failing = retry(
      async () => {
        calls++;
        throw new Error(`failure ${calls}`);
      },
      {
        backoff: { initialMs: 60_000, maxMs: 60_000 },
        signal: controller.signal,
        onError: () => queueMicrotask(() => controller.abort()),
      },
    );
    // The real sleep (60 s) must end on abort, or this test would time out.
    await assert.rejects(failing, /failure 1/);
    assert.equal(calls, 1);
    await assert.rejects(retry(async () => 'never', { backoff: { initialMs: 1, maxMs: 1 }, signal: controller.signal, onError: () => undefined }), RetryAbortedError);
  });
});

describe('one backoff helper', () => {
  test('no hand-rolled doubling retry loop is left in src/: every schedule goes through src/lib/backoff.ts', () => {
    const root = join(import.meta.dirname, '..', '..', '..', 'src');
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith('.ts')) files.push(path);
      }
    };
    walk(root);
    assert.ok(files.length > 100, `found the sources (${files.length} files under ${root})`);
    // `delayMs * 2`, `retryMs * 2`, `this.baseDelayMs * 2 ** n`, `backoff.delayMs * 2`…
    const doubling = /(delay|retry|backoff)\w*\s*\*\s*2\b/i;
    const offenders: string[] = [];
    for (const file of files) {
      const rel = relative(root, file);
      if (rel === join('lib', 'backoff.ts')) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (doubling.test(line) && !line.trim().startsWith('*') && !line.trim().startsWith('//')) offenders.push(`src/${rel}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(offenders, []);
  });
});
