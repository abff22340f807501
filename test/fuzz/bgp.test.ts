/**
 * A short fuzz pass of the BGP codec and FSM (test/fuzz/targets/bgp.ts has the property) with a
 * fixed seed, and every input the fuzzer ever flagged (test/fixtures/fuzz/bgp/). The long runs
 * of the codec alone are test/bgp/fuzz.test.ts and bench/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixtures } from './fixtures.js';
import { bgpTarget, judgeBgp } from './targets/bgp.js';
import { runTarget } from './target.js';

const SEED = 0xb915;
const INPUTS = 600;

test(`${INPUTS} mutated messages: a message or the RFC NOTIFICATION, in OpenSent, OpenConfirm and Established`, async (t) => {
  const report = await runTarget(bgpTarget, SEED, INPUTS);
  t.diagnostic(JSON.stringify(Object.fromEntries([...report.outcomes].sort((a, b) => b[1] - a[1]))));
  assert.deepEqual(report.crashes, []);
  const seen = [...report.outcomes.keys()];
  // Decoded messages and each class of reset must both be reached, and sessions must survive some.
  for (const part of ['decoded', 'reset 1/', 'reset 2/', 'reset 3/', '→ Established', '→ Idle']) assert.ok(seen.some((o) => o.includes(part)), `no "${part}" in ${seen.join(', ')}`);
});

describe('BGP fuzz fixtures', () => {
  for (const fixture of fixtures('bgp')) {
    test(`${fixture.file}: ${fixture.note}`, () => {
      const verdict = judgeBgp(fixture.input);
      assert.ok(!('crash' in verdict), 'crash' in verdict ? verdict.crash : '');
    });
  }
});
