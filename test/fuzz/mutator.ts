/**
 * The seeded mutator every fuzz target shares (bench/fuzz.ts drives it, test/fuzz/*.test.ts
 * runs a short pass). Same seed, same inputs, on every machine: a crash found in a long run
 * replays from its seed and index, and the test suite's pass is the same every time.
 *
 * Two layers. `mutateBytes` works on raw octets (bit flips, boundary bytes, insertions,
 * deletions, big-endian length fields nudged, splices of two corpus inputs) and knows nothing
 * of the format. `mutateJson` works on a parsed JSON value (a field dropped, retyped, set to a
 * boundary value — huge and negative integers, NaN-ish strings, deep nesting — or replaced by
 * the same field from another corpus entry) and then, sometimes, hands the text to
 * `mutateBytes`, so both structurally odd and plainly broken documents get through.
 */

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export { rng, type Random } from '../bgp/mutate.js';
import type { Random } from '../bgp/mutate.js';

export const int = (random: Random, below: number): number => Math.floor(random() * below);

export function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[int(random, items.length)];
  if (item === undefined) throw new RangeError('pick from an empty list');
  return item;
}

const BOUNDARY_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x20, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c];

/** Integers at the edges parsers get wrong: sign, 8/16/32/53-bit limits, zero. */
export const BOUNDARY_INTEGERS: readonly number[] = [0, -1, 1, 2, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53, -(2 ** 53), Number.MAX_SAFE_INTEGER + 2, 1e308, 0.5, -0.0];

/** One to `maxRounds` byte-level mutations of `input`; `corpus` supplies splice partners. */
export function mutateBytes(random: Random, input: Uint8Array, corpus: readonly Uint8Array[], maxRounds = 4): Uint8Array {
  let bytes: Uint8Array = new Uint8Array(input);
  const rounds = 1 + int(random, maxRounds);
  for (let round = 0; round < rounds; round++) {
    const at = int(random, Math.max(bytes.length, 1));
    switch (int(random, 7)) {
      case 0: // bit flip
        if (bytes.length > 0) bytes[at] = (bytes[at] ?? 0) ^ (1 << int(random, 8));
        break;
      case 1: // boundary byte
        if (bytes.length > 0) bytes[at] = pick(random, BOUNDARY_BYTES);
        break;
      case 2: {
        // insertion of random bytes
        const insert = Uint8Array.from({ length: 1 + int(random, 8) }, () => int(random, 256));
        bytes = concat(bytes.subarray(0, at), insert, bytes.subarray(at));
        break;
      }
      case 3: {
        // deletion of a run
        const count = 1 + int(random, 16);
        bytes = concat(bytes.subarray(0, at), bytes.subarray(Math.min(at + count, bytes.length)));
        break;
      }
      case 4: {
        // a big-endian 1/2/4-octet field nudged or set to a limit: length and count fields
        const width = pick(random, [1, 2, 4]);
        if (bytes.length < width) break;
        const where = Math.min(at, bytes.length - width);
        const max = 2 ** (8 * width) - 1;
        let value = 0;
        for (let i = 0; i < width; i++) value = value * 256 + (bytes[where + i] ?? 0);
        value = pick(random, [value + 1, value - 1, value + 16, value * 2, 0, max, Math.floor(max / 2) + 1]);
        value = ((value % (max + 1)) + max + 1) % (max + 1);
        for (let i = width - 1; i >= 0; i--) {
          bytes[where + i] = value % 256;
          value = Math.floor(value / 256);
        }
        break;
      }
      case 5: {
        // splice: our head, another input's tail
        const other = corpus.length > 0 ? pick(random, corpus) : bytes;
        bytes = concat(bytes.subarray(0, at), other.subarray(int(random, other.length + 1)));
        break;
      }
      default: // truncation
        bytes = bytes.slice(0, at);
    }
  }
  return bytes;
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Values that are the wrong type or at an edge for almost any field. */
function oddValue(random: Random): Json {
  switch (int(random, 12)) {
    case 0:
      return null;
    case 1:
      return pick(random, BOUNDARY_INTEGERS);
    case 2:
      return pick(random, ['', ' ', '-1', '0x10', 'NaN', '1e400', '../x', '\u0000', 'é', '\ud800', '10.0.0.0/33', '::/129', '256.1.1.1', 'a'.repeat(300)]);
    case 3:
      return [];
    case 4:
      return {};
    case 5:
      return pick(random, [true, false]);
    case 6:
      return [null, 1, 'x', {}];
    case 7: {
      // deep nesting: recursive walkers overflow the stack on it
      let value: Json = 1;
      for (let i = 0; i < 200; i++) value = [value];
      return value;
    }
    case 8:
      return { '': 1, __proto__x: 2, constructor: 'x' };
    case 9:
      return 'x'.repeat(1 + int(random, 5000));
    case 10:
      return -int(random, 1000);
    default:
      return int(random, 70000);
  }
}

function paths(value: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (out.length > 400) return out;
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

function getAt(value: Json, path: readonly (string | number)[]): Json | undefined {
  let here: Json | undefined = value;
  for (const key of path) {
    if (here === null || typeof here !== 'object') return undefined;
    here = Array.isArray(here) ? here[key as number] : here[key as string];
  }
  return here;
}

function setAt(root: Json, path: readonly (string | number)[], next: Json | undefined): Json {
  if (path.length === 0) return next ?? null;
  const parent = getAt(root, path.slice(0, -1));
  const key = path[path.length - 1];
  if (parent === null || parent === undefined || typeof parent !== 'object' || key === undefined) return root;
  if (Array.isArray(parent)) {
    if (next === undefined) parent.splice(key as number, 1);
    else parent[key as number] = next;
  } else if (next === undefined) delete parent[key as string];
  else parent[key as string] = next;
  return root;
}

/**
 * One to three structural mutations of a deep copy of `input`. `donors` are other corpus
 * documents: a value at a path taken from one of them keeps the mutation near valid input.
 */
export function mutateJsonValue(random: Random, input: Json, donors: readonly Json[]): Json {
  let doc = structuredClone(input);
  const rounds = 1 + int(random, 3);
  for (let round = 0; round < rounds; round++) {
    const all = paths(doc);
    const path = pick(random, all);
    switch (int(random, 6)) {
      case 0: // drop a field or element
        doc = setAt(doc, path, undefined);
        break;
      case 1: // wrong type or edge value
        doc = setAt(doc, path, oddValue(random));
        break;
      case 2: {
        // a value from a donor at some path
        const donor = donors.length > 0 ? pick(random, donors) : doc;
        doc = setAt(doc, path, structuredClone(getAt(donor, pick(random, paths(donor))) ?? null));
        break;
      }
      case 3: {
        // a new field with an odd value
        const here = getAt(doc, path);
        if (here !== null && typeof here === 'object' && !Array.isArray(here)) here[pick(random, ['extra', 'cniVersion', 'kind', 'apiVersion', 'metadata', 'spec', 'ipam', 'ranges', 'prevResult'])] = oddValue(random);
        else if (Array.isArray(here)) here.push(oddValue(random));
        break;
      }
      case 4: {
        // a number nudged to a boundary, a string cut or doubled
        const here = getAt(doc, path);
        if (typeof here === 'number') doc = setAt(doc, path, pick(random, BOUNDARY_INTEGERS));
        else if (typeof here === 'string') doc = setAt(doc, path, random() < 0.5 ? here.slice(0, int(random, here.length + 1)) : here + here);
        break;
      }
      default: {
        // an array emptied or its element duplicated
        const here = getAt(doc, path);
        if (Array.isArray(here)) {
          if (random() < 0.5) here.length = 0;
          else if (here.length > 0) here.push(structuredClone(here[0] ?? null));
        }
      }
    }
  }
  return doc;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A mutated JSON document as text: mostly structural mutations (so inputs get past
 * JSON.parse to the validators), now and then bytes mangled as well.
 */
export function mutateJsonText(random: Random, input: Json, donors: readonly Json[]): string {
  const doc = random() < 0.85 ? mutateJsonValue(random, input, donors) : input;
  const text = JSON.stringify(doc);
  if (random() < 0.75) return text;
  const corpus = donors.map((d) => encoder.encode(JSON.stringify(d)));
  return decoder.decode(mutateBytes(random, encoder.encode(text), corpus, 3));
}
