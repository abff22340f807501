/**
 * What a fuzz target is, and the loop that drives one. A target generates inputs from a
 * seeded random source and judges each: an `outcome` (a name, counted, so a run shows which
 * reactions it reached) or a `crash` with the reason. Inputs are plain JSON so a crash can
 * be written to a file and become a fixture (test/fixtures/fuzz/<target>/) that replays with
 * `judge` alone.
 */
import type { Json, Random } from './mutator.js';
import { rng } from './mutator.js';

export type Verdict = { readonly outcome: string } | { readonly crash: string };

export interface FuzzSession {
  /** The next input; the same random sequence gives the same inputs. */
  generate(random: Random): Json;
  judge(input: Json): Promise<Verdict>;
  close(): Promise<void>;
}

export interface FuzzTarget {
  readonly name: string;
  open(): Promise<FuzzSession>;
}

export interface Crash {
  readonly index: number;
  readonly input: Json;
  readonly reason: string;
}

export interface FuzzReport {
  readonly inputs: number;
  readonly crashes: Crash[];
  readonly outcomes: Map<string, number>;
}

/** A judge that neither answers nor throws within this long is a hang, and a crash. */
export const HANG_MS = 10_000;

/** `judge`, with exceptions and hangs turned into crash verdicts. */
export async function judgeSafely(session: FuzzSession, input: Json): Promise<Verdict> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<Verdict>((resolve) => {
    timer = setTimeout(() => resolve({ crash: `no answer within ${HANG_MS} ms` }), HANG_MS);
  });
  try {
    return await Promise.race([
      session.judge(input).catch((err: unknown): Verdict => ({ crash: `judge threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` })),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `count` inputs from `seed`; `onProgress` after each. */
export async function runTarget(target: FuzzTarget, seed: number, count: number, onProgress?: (done: number, crashes: number) => void | Promise<void>): Promise<FuzzReport> {
  const random = rng(seed);
  const session = await target.open();
  const crashes: Crash[] = [];
  const outcomes = new Map<string, number>();
  try {
    for (let index = 0; index < count; index++) {
      const input = session.generate(random);
      const verdict = await judgeSafely(session, input);
      if ('crash' in verdict) crashes.push({ index, input, reason: verdict.crash });
      else outcomes.set(verdict.outcome, (outcomes.get(verdict.outcome) ?? 0) + 1);
      await onProgress?.(index + 1, crashes.length);
    }
  } finally {
    await session.close();
  }
  return { inputs: count, crashes, outcomes };
}
