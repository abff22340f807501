/**
 * A pod runner's lifecycle as one explicit state machine. It used to be four booleans
 * (started, mainStarted, finished, stopping) whose sixteen combinations included ones that
 * mean nothing ("finished but never started", "stopping and starting the containers"); every
 * transition is now in the table below, and a state carries the data only it has (the error
 * of a failed start).
 *
 *   created ─▶ starting ─▶ initializing ─▶ running ─▶ finished
 *                 │  ▲          └──────────────────────▲
 *                 ▼  │ (retried on the next sync)
 *             startFailed
 *
 *   any state but the last two ─▶ terminating (pod deleted) | detached (kubelet exiting)
 *
 * `initializing`: volumes, sandbox and network are ready, the container runners exist and
 * the init containers run one by one; `running`: the main containers were started;
 * `finished`: every container is done for good and the network was released.
 */
import { PontoonError } from '../lib/errors.js';

export type PodLifecycleState =
  | { readonly phase: 'created' }
  | { readonly phase: 'starting' }
  | { readonly phase: 'startFailed'; readonly message: string }
  | { readonly phase: 'initializing' }
  | { readonly phase: 'running' }
  | { readonly phase: 'finished' }
  | { readonly phase: 'terminating' }
  | { readonly phase: 'detached' };

export type PodLifecyclePhase = PodLifecycleState['phase'];

const STOPPED: readonly PodLifecyclePhase[] = ['terminating', 'detached'];

/** Where each phase may go next; terminating and detached are final. */
export const POD_TRANSITIONS: Readonly<Record<PodLifecyclePhase, readonly PodLifecyclePhase[]>> = {
  created: ['starting', ...STOPPED],
  starting: ['initializing', 'startFailed', ...STOPPED],
  startFailed: ['starting', ...STOPPED],
  initializing: ['running', 'finished', ...STOPPED],
  running: ['finished', ...STOPPED],
  finished: STOPPED,
  terminating: [],
  detached: [],
};

export class PodLifecycleError extends PontoonError {}

export class PodLifecycle {
  private current: PodLifecycleState = { phase: 'created' };

  get state(): PodLifecycleState {
    return this.current;
  }

  get phase(): PodLifecyclePhase {
    return this.current.phase;
  }

  /** Terminating or detached: no new work may begin. */
  get stopping(): boolean {
    return STOPPED.includes(this.current.phase);
  }

  can(next: PodLifecyclePhase): boolean {
    return POD_TRANSITIONS[this.current.phase].includes(next);
  }

  /** Moves to `next`; a transition the table does not allow is a bug, and throws. */
  to(next: PodLifecycleState): void {
    if (!this.can(next.phase)) throw new PodLifecycleError(`failed to move pod lifecycle "${this.current.phase}" to "${next.phase}": not a transition`);
    this.current = next;
  }

  /** Moves when allowed and says whether it did (for steps that race a teardown). */
  tryTo(next: PodLifecycleState): boolean {
    if (!this.can(next.phase)) return false;
    this.current = next;
    return true;
  }
}
