/** The pod runner's lifecycle table: the only transitions there are, and final stops. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { POD_TRANSITIONS, PodLifecycle, PodLifecycleError, type PodLifecyclePhase } from '../../src/kubelet/pod-lifecycle.js';

const ALL: PodLifecyclePhase[] = ['created', 'starting', 'startFailed', 'initializing', 'running', 'finished', 'terminating', 'detached'];

/** A lifecycle walked to `phase` along the happy path (or the failed start). */
function at(phase: PodLifecyclePhase): PodLifecycle {
  const paths: Record<PodLifecyclePhase, PodLifecyclePhase[]> = {
    created: [],
    starting: ['starting'],
    startFailed: ['starting', 'startFailed'],
    initializing: ['starting', 'initializing'],
    running: ['starting', 'initializing', 'running'],
    finished: ['starting', 'initializing', 'running', 'finished'],
    terminating: ['terminating'],
    detached: ['detached'],
  };
  const lifecycle = new PodLifecycle();
  for (const step of paths[phase]) lifecycle.to(step === 'startFailed' ? { phase: step, message: 'boom' } : { phase: step });
  assert.equal(lifecycle.phase, phase);
  return lifecycle;
}

describe('pod lifecycle', () => {
  test('every phase allows exactly the transitions of its row, and refuses the others with PodLifecycleError', () => {
    for (const from of ALL) {
      for (const to of ALL) {
        const lifecycle = at(from);
        const next = to === 'startFailed' ? { phase: to, message: 'x' } : { phase: to };
        if (POD_TRANSITIONS[from].includes(to)) {
          lifecycle.to(next as Parameters<PodLifecycle['to']>[0]);
          assert.equal(lifecycle.phase, to);
        } else {
          assert.throws(() => lifecycle.to(next as Parameters<PodLifecycle['to']>[0]), PodLifecycleError, `${from} → ${to}`);
          assert.equal(lifecycle.phase, from, 'a refused transition changes nothing');
        }
      }
    }
  });

  test('the combinations the booleans allowed are unreachable: no start after a stop, no containers before a start, no second start', () => {
    for (const stopped of ['terminating', 'detached'] as const) {
      const lifecycle = at(stopped);
      assert.equal(lifecycle.stopping, true);
      for (const phase of ALL) assert.equal(lifecycle.can(phase), false, `${stopped} is final (${phase})`);
    }
    assert.equal(at('created').can('running'), false, 'containers run only after the sandbox');
    assert.equal(at('created').can('finished'), false);
    assert.equal(at('running').can('starting'), false, 'start() runs once');
    assert.equal(at('finished').can('running'), false, 'a finished pod does not come back');
    assert.equal(at('startFailed').can('starting'), true, 'a failed start is retried');
  });

  test('a failed start carries its message; tryTo reports instead of throwing', () => {
    const lifecycle = at('startFailed');
    const state = lifecycle.state;
    assert.equal(state.phase === 'startFailed' ? state.message : undefined, 'boom');
    assert.equal(lifecycle.tryTo({ phase: 'running' }), false);
    assert.equal(lifecycle.tryTo({ phase: 'starting' }), true);
    assert.equal(lifecycle.stopping, false);
  });
});
