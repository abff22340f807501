/**
 * What every benchmark script shares: the namespace prefix scripts/sweep.sh understands, the
 * error classes, and Ctrl-C handling. Signals reach JavaScript only between turns of the event
 * loop, so the handler records the signal (and runs the script's `onSignal`, e.g. to kill the
 * children it is waiting on), and `checkpoint()` after every step turns the record into an
 * exception that unwinds through the script's cleanup.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describeError, PontoonError } from '../../src/lib/errors.js';

/** Every namespace and cluster a run creates starts with this; the final sweep uses it. */
// ptest-<pid36>-...: scripts/sweep.sh removes it only once this process is gone.
export const RUN_PREFIX = `ptest-${process.pid.toString(36)}-bench-`;

export class BenchError extends PontoonError {}

export class BenchInterrupted extends PontoonError {
  constructor(readonly signal: NodeJS.Signals) {
    super(`benchmark interrupted by ${signal}`);
  }
}

let pendingSignal: NodeJS.Signals | undefined;

export async function checkpoint(): Promise<void> {
  await nextTurn();
  if (pendingSignal) throw new BenchInterrupted(pendingSignal);
}

/**
 * Runs a benchmark's `main` with SIGINT/SIGTERM recorded for `checkpoint`; exits 130 when
 * interrupted, 1 on any other failure (after printing it).
 */
export function runBench(main: () => Promise<void>, onSignal?: (signal: NodeJS.Signals) => void): void {
  const record = (signal: NodeJS.Signals): void => {
    pendingSignal = signal;
    onSignal?.(signal);
  };
  process.on('SIGINT', record);
  process.on('SIGTERM', record);
  main()
    .catch((err: unknown) => {
      console.error(describeError(err));
      process.exitCode = err instanceof BenchInterrupted ? 130 : 1;
    })
    .finally(() => {
      process.off('SIGINT', record);
      process.off('SIGTERM', record);
    });
}
