/**
 * test/fixtures/fuzz/<target>/*.json: inputs the fuzzer once crashed on, each kept as
 * `{ note, found, input }` — what was wrong, what the fuzzer saw, and the input as the
 * target generates it (bench/fuzz.ts writes crashes in this shape; add a `note`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Json } from './mutator.js';

export interface Fixture {
  file: string;
  note: string;
  input: Json;
}

export function fixtures(target: string): Fixture[] {
  const dir = new URL(`../../../test/fixtures/fuzz/${target}/`, import.meta.url);
  // git keeps no empty directories: a target that never crashed has none.
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => {
      const parsed = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as { note?: string; input: Json };
      return { file, note: parsed.note ?? '', input: parsed.input };
    });
}
