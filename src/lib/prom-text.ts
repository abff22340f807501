/**
 * A reader for the Prometheus text exposition format (version 0.0.4), what `pontoon status`
 * reads the daemons' `/metrics` with. Strict where a scraper is strict — a sample line that
 * does not parse, a value that is not a float, a label without quotes, a TYPE given twice —
 * so a test that parses a daemon's output with it catches what Prometheus would reject.
 */
import { PontoonError } from './errors.js';

export class ExpositionError extends PontoonError {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly samples: readonly Sample[];
  /** metric family → counter, gauge, histogram, summary or untyped */
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  // Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any case (prom-client
  // writes "Nan" for a gauge with no reading yet).
  const special = /^([-+]?)(inf|infinity|nan)$/i.exec(text);
  if (special) return special[2]?.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new ExpositionError(line, `"${text}" is not a sample value`);
  return Number(text);
}

/** Labels from `{a="x",b="y\"z"}` starting at text[0] === '{'; returns them and the rest. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  for (;;) {
    while (text[i] === ' ') i++;
    if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new ExpositionError(line, 'label without "="');
    const name = text.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new ExpositionError(line, `bad label name "${name}"`);
    if (text[eq + 1] !== '"') throw new ExpositionError(line, `label ${name} value is not quoted`);
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        value += next === 'n' ? '\n' : next === '\\' ? '\\' : next === '"' ? '"' : `\\${next ?? ''}`;
      } else {
        value += text[j];
      }
    }
    if (j >= text.length) throw new ExpositionError(line, `label ${name} value is not terminated`);
    if (name in labels) throw new ExpositionError(line, `label ${name} given twice`);
    labels[name] = value;
    i = j + 1;
    while (text[i] === ' ') i++;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new ExpositionError(line, 'expected "," or "}" after a label');
  }
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '') return;
    if (trimmed.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(trimmed);
      if (!match) return; // a plain comment
      const [, keyword, name = '', rest = ''] = match;
      if (!NAME.test(name)) throw new ExpositionError(line, `bad metric name "${name}"`);
      if (keyword === 'TYPE') {
        if (!TYPES.has(rest)) throw new ExpositionError(line, `unknown type "${rest}" for ${name}`);
        if (types.has(name)) throw new ExpositionError(line, `second TYPE line for ${name}`);
        types.set(name, rest);
      } else {
        help.set(name, rest);
      }
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(trimmed);
    if (!nameMatch) throw new ExpositionError(line, `"${trimmed.slice(0, 40)}" does not start with a metric name`);
    const name = nameMatch[0];
    let rest = trimmed.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const fields = rest.trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2 || fields[0] === '') throw new ExpositionError(line, `expected "<value> [timestamp]" after ${name}`);
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new ExpositionError(line, `bad timestamp "${fields[1]}"`);
    samples.push({ name, labels, value: parseValue(fields[0] ?? '', line) });
  });
  return { samples, types, help };
}

/** The samples named `name` whose labels include `where`. */
export function samplesOf(exposition: Exposition, name: string, where: Readonly<Record<string, string>> = {}): Sample[] {
  return exposition.samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
}

/** The first such sample's value, or undefined. */
export function valueOf(exposition: Exposition, name: string, where: Readonly<Record<string, string>> = {}): number | undefined {
  return samplesOf(exposition, name, where)[0]?.value;
}
