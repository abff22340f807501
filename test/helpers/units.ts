/**
 * What the real-hosts test needs of systemd and of the README: a unit file's [Service]
 * ExecStart and EnvironmentFile, `${VAR}` expansion as systemd does it for ExecStart, an
 * environment file's KEY=VALUE lines, and the fenced ```sh <tag> blocks of a Markdown file.
 */
import { readFileSync } from 'node:fs';

export interface UnitFile {
  sections: Map<string, Map<string, string[]>>;
}

/** INI as systemd reads it: [Section], Key=Value (a key may repeat), # and ; comments. */
export function parseUnit(text: string): UnitFile {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const pair = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    if (!pair || !current) throw new Error(`line ${index + 1} is neither a [Section] nor Key=Value inside one: ${raw}`);
    current.set(pair[1]!, [...(current.get(pair[1]!) ?? []), pair[2]!]);
  }
  return { sections };
}

export function unitValue(unit: UnitFile, section: string, key: string): string | undefined {
  return unit.sections.get(section)?.get(key)?.at(-1);
}

export function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

/** ExecStart's words with `${VAR}` replaced (systemd's form for one word); an unset variable is an error here. */
export function expandExecStart(execStart: string, env: Readonly<Record<string, string>>): string[] {
  return execStart
    .split(/\s+/)
    .filter(Boolean)
    .map((word) =>
      word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_whole, name: string) => {
        const value = env[name];
        if (value === undefined || value === '') throw new Error(`ExecStart names \${${name}}, which the environment file does not set`);
        return value;
      }),
    );
}

/** The lines of every ```sh <tag> block of a Markdown file, in order. */
export function markdownBlocks(path: string, tag: string): string[] {
  const text = readFileSync(path, 'utf8');
  const lines: string[] = [];
  const re = new RegExp('^```sh ' + tag + '\\n([\\s\\S]*?)^```$', 'gm');
  for (const match of text.matchAll(re)) lines.push(...match[1]!.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  return lines;
}
