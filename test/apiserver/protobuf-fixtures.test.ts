/**
 * The protobuf decoder against bytes real kubectl sent (test/fixtures/protobuf, captured by
 * capture-protobuf.ts): each body must decode to the object kubectl itself prints as JSON for
 * the same command (`--dry-run=client -o json`). The oracle is kubectl on both sides; nothing
 * here is derived from our own encoder or tables.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeProtobufObject } from '../../src/apiserver/protobuf.js';
import { ROOT } from '../helpers/cni.js';
import { CAPTURED } from './capture-protobuf.js';

const DIR = join(ROOT, 'test', 'fixtures', 'protobuf');

/**
 * What both encodings say, without what only one can: Go's JSON writes `null` timestamps and
 * empty structs (`resources: {}`, `status: {}`) that protobuf leaves out, and protobuf has no
 * way to tell an empty list or map from an absent one.
 */
function meaning(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(meaning);
    return items.length ? items : undefined;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const kept = meaning(item);
      if (kept !== undefined) out[key] = kept;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return value === null ? undefined : value;
}

test('every captured command has its fixture pair', () => {
  const names = new Set(readdirSync(DIR).filter((f) => f.endsWith('.pb')).map((f) => f.slice(0, -3)));
  assert.deepEqual([...names].sort(), Object.keys(CAPTURED).sort());
});

for (const name of Object.keys(CAPTURED)) {
  test(`kubectl ${CAPTURED[name]?.slice(0, 3).join(' ')}: the protobuf body decodes to what kubectl prints as JSON`, () => {
    const body = readFileSync(join(DIR, `${name}.pb`));
    const printed = JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as unknown;
    assert.deepEqual(meaning(decodeProtobufObject(body)), meaning(printed));
  });
}
