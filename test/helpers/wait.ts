/**
 * The one polling loop of the test suite. The helpers of each area (waitUntil, waitFor,
 * eventually, ...) keep their argument orders for their many call sites and delegate here.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Appended to the timeout error: what the state was (a log tail, say). */
  describe?: () => string;
  /** Treat a probe that throws as "not yet", and name the last error if time runs out. */
  retryErrors?: boolean;
}

/** Polls `probe` until it yields something other than undefined/false; throws after `timeoutMs`. */
export async function poll<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (!options.retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = `${lastError ? `: ${String(lastError)}` : ''}${options.describe ? `\n${options.describe()}` : ''}`;
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}
