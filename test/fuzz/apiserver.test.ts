/**
 * A short fuzz pass of the apiserver (test/fuzz/targets/apiserver.ts has the property) with a
 * fixed seed, and every input the fuzzer ever crashed it with (test/fixtures/fuzz/apiserver/).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from '../apiserver/server-harness.js';
import { fixtures } from './fixtures.js';
import { apiserverTarget, judgeApiserver, seedApiserver } from './targets/apiserver.js';
import { runTarget } from './target.js';

const SEED = 0xa915;
const INPUTS = 250;

test(`${INPUTS} mutated requests: every answer is a 2xx or a Kubernetes Status, the store stays valid`, async (t) => {
  const report = await runTarget(apiserverTarget, SEED, INPUTS);
  t.diagnostic(JSON.stringify(Object.fromEntries([...report.outcomes].sort((a, b) => b[1] - a[1]))));
  assert.deepEqual(report.crashes, []);
  // The pass must reach both the handlers (successes) and the validators (422s), or it tests little.
  const seen = [...report.outcomes.keys()];
  for (const prefix of ['POST 201', 'PATCH 200', 'GET 200', 'POST 422', 'POST 400']) assert.ok(seen.some((o) => o.startsWith(prefix)), `no "${prefix}" in ${seen.join(', ')}`);
});

describe('apiserver fuzz fixtures', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore());
    await seedApiserver(api);
  });
  after(() => api.close());
  for (const fixture of fixtures('apiserver')) {
    test(`${fixture.file}: ${fixture.note}`, async () => {
      const verdict = await judgeApiserver(api, fixture.input);
      assert.ok(!('crash' in verdict), 'crash' in verdict ? verdict.crash : '');
    });
  }
});
