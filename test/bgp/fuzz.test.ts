/**
 * 100,000 seeded mutations of valid BGP messages through MessageFramer and decodeMessage
 * (test/bgp/mutate.ts has the mutator and the property). A failure prints the input's hex,
 * so it can be added to the malformed corpus or a unit test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMessage } from '../../src/bgp/codec/index.js';
import { fuzzOne, runFuzz, seedMessages } from './mutate.js';

const INPUTS = 100_000;

test('every seed decodes and round-trips unchanged', () => {
  for (const message of seedMessages()) {
    for (const fourOctetAsn of [true, false]) {
      const outcomes = fuzzOne(encodeMessage(message, { fourOctetAsn }), { fourOctetAsn }, 7);
      assert.ok(outcomes.every((o) => o === 'decoded'), outcomes.join(','));
    }
  }
});

test(`${INPUTS} mutated inputs: only BgpMessageError, and decoded messages round-trip`, () => {
  const counts = new Map<string, number>();
  runFuzz(0x5eed, INPUTS, (outcome) => counts.set(outcome, (counts.get(outcome) ?? 0) + 1));
  // The fuzzer must reach every reaction, or it is not testing the decoders behind them.
  for (const outcome of ['decoded', 'treat-as-withdraw', 'discard', 'reset 1/1', 'reset 1/2', 'reset 1/3', 'reset 2/0', 'reset 3/1', 'reset 3/10']) {
    assert.ok((counts.get(outcome) ?? 0) > 0, `no "${outcome}" in ${JSON.stringify([...counts])}`);
  }
});
