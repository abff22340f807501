/**
 * A short fuzz pass of the CNI plugins (test/fuzz/targets/cni.ts has the property: a result or
 * a spec-shaped error with a spec code) with a fixed seed, and every input the fuzzer ever
 * crashed them with (test/fixtures/fuzz/cni/).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fixtures } from './fixtures.js';
import { cniTarget, judgeCni, judgeCniBinary } from './targets/cni.js';
import { rng } from './mutator.js';
import { runTarget } from './target.js';

const SEED = 0xc915;
const INPUTS = 500;

test(`${INPUTS} mutated configs and environments: every answer is a result or a spec CNI error`, async (t) => {
  const report = await runTarget(cniTarget, SEED, INPUTS);
  t.diagnostic(JSON.stringify(Object.fromEntries([...report.outcomes].sort((a, b) => b[1] - a[1]))));
  assert.deepEqual(report.crashes, []);
  const seen = [...report.outcomes.keys()];
  for (const outcome of ['VERSION ok', 'CHECK code 4', 'CHECK code 6', 'CHECK code 7', 'STATUS code 1']) assert.ok(seen.includes(outcome), `no "${outcome}" in ${seen.join(', ')}`);
});

const BINARIES = new URL('../../../dist/cni/', import.meta.url).pathname;

test('the built binaries answer 30 mutated inputs the same way: exit code and one spec-shaped JSON line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-fuzz-cni-bin-'));
  try {
    writeFileSync(join(dir, 'subnet.env'), 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const session = await cniTarget.open();
    const random = rng(SEED + 1);
    const crashes: string[] = [];
    const outcomes = new Set<string>();
    try {
      for (let i = 0; i < 30; i++) {
        const verdict = judgeCniBinary(session.generate(random), dir, BINARIES);
        if ('crash' in verdict) crashes.push(verdict.crash);
        else outcomes.add(verdict.outcome);
      }
    } finally {
      await session.close();
    }
    assert.deepEqual(crashes, []);
    assert.ok(outcomes.has('VERSION ok') && [...outcomes].some((o) => / code /.test(o)), `only ${[...outcomes].join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('CNI fuzz fixtures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-fuzz-cni-fixtures-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  for (const fixture of fixtures('cni')) {
    test(`${fixture.file}: ${fixture.note}`, async () => {
      const verdict = await judgeCni(fixture.input, dir);
      assert.ok(!('crash' in verdict), 'crash' in verdict ? verdict.crash : '');
    });
  }
});
