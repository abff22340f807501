import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DurationFlagError, parseDuration } from '../../src/cli/controller-manager.js';
import { CONTROLLER_NAMES, ControllerSelectionError, selectControllers } from '../../src/controllers/manager.js';

describe('--controllers', () => {
  test('"*" is all, "-name" leaves one out, lists pick', () => {
    assert.deepEqual([...selectControllers('*')].sort(), [...CONTROLLER_NAMES].sort());
    assert.deepEqual([...selectControllers('*,-node-lifecycle')].includes('node-lifecycle'), false);
    assert.deepEqual([...selectControllers('endpoints, endpointslice')].sort(), ['endpoints', 'endpointslice']);
    assert.throws(() => selectControllers('replicaset,bogus'), ControllerSelectionError);
  });
});

describe('duration flags', () => {
  test('Go-style durations', () => {
    assert.equal(parseDuration('40s', 'x'), 40_000);
    assert.equal(parseDuration('5m', 'x'), 300_000);
    assert.equal(parseDuration('1m30s', 'x'), 90_000);
    assert.equal(parseDuration('500ms', 'x'), 500);
    assert.equal(parseDuration('1.5s', 'x'), 1500);
    assert.equal(parseDuration('0', 'x'), 0);
    for (const bad of ['40', 'forty', '5x', '1m 30s', '']) assert.throws(() => parseDuration(bad, 'x'), DurationFlagError, bad);
  });
});
