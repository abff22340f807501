/**
 * Writes a set of files into a volume directory so a reader never sees a mix of old and
 * new contents: upstream's AtomicWriter (pkg/volume/util/atomic_writer.go), same layout.
 *
 *   <dir>/..2026_12_03_14_50_00.123456789/   the payload of one version
 *   <dir>/..data -> ..2026_12_03_...          swapped by rename(2), which is atomic
 *   <dir>/<key>  -> ..data/<key>              one symlink per top-level name, made once
 *
 * A container sees <dir> through a bind mount of the directory, so the swap is visible
 * inside at once; a subPath mount of one file binds the file itself and, as upstream, is
 * never updated. Writing an unchanged payload touches nothing.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PontoonError } from '../lib/errors.js';

export class VolumePathError extends PontoonError {}

export interface PayloadFile {
  content: Buffer;
  mode: number;
}

/** path (relative, `/`-separated) → file. */
export type Payload = Map<string, PayloadFile>;

const DATA_LINK = '..data';
const DATA_LINK_TMP = '..data_tmp';

/** upstream validatePath: relative, no `..` element, not starting with `..`. */
export function checkPayloadPath(path: string): void {
  if (path === '' || path.startsWith('/')) throw new VolumePathError(`invalid path "${path}": must be a relative path`);
  if (path.length > 4096) throw new VolumePathError(`invalid path "${path}": longer than 4096 characters`);
  if (path.split('/').some((part) => part === '..')) throw new VolumePathError(`invalid path "${path}": must not contain '..'`);
  if (path.startsWith('..')) throw new VolumePathError(`invalid path "${path}": must not start with '..'`);
}

function timestampDirName(): string {
  const now = new Date();
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const nanos = `${pad(now.getUTCMilliseconds(), 3)}${pad(Number(process.hrtime.bigint() % 1_000_000n), 6)}`;
  return `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.${nanos}`;
}

function currentVersionDir(dir: string): string | undefined {
  try {
    return readlinkSync(join(dir, DATA_LINK));
  } catch {
    return undefined;
  }
}

function samePayload(versionDir: string, payload: Payload): boolean {
  const found: string[] = [];
  const walk = (sub: string): void => {
    for (const entry of readdirSync(join(versionDir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else found.push(rel);
    }
  };
  try {
    walk('');
  } catch {
    return false;
  }
  if (found.length !== payload.size) return false;
  for (const rel of found) {
    const want = payload.get(rel);
    if (!want) return false;
    const path = join(versionDir, rel);
    if ((statSync(path).mode & 0o7777) !== want.mode || !readFileSync(path).equals(want.content)) return false;
  }
  return true;
}

/** Makes `dir` hold exactly `payload`; returns whether anything changed. */
export function writeAtomically(dir: string, payload: Payload): boolean {
  for (const path of payload.keys()) checkPayloadPath(path);
  mkdirSync(dir, { recursive: true });
  const old = currentVersionDir(dir);
  if (old && samePayload(join(dir, old), payload)) return false;

  const version = timestampDirName();
  const versionPath = join(dir, version);
  mkdirSync(versionPath, { mode: 0o755 });
  for (const [rel, file] of payload) {
    const path = join(versionPath, rel);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(path, file.content);
    // writeFile's mode is filtered by the umask; the volume's mode is not.
    chmodSync(path, file.mode);
  }
  const tmpLink = join(dir, DATA_LINK_TMP);
  rmSync(tmpLink, { force: true });
  symlinkSync(version, tmpLink);
  renameSync(tmpLink, join(dir, DATA_LINK));

  const wanted = new Set([...payload.keys()].map((rel) => rel.split('/')[0] ?? rel));
  for (const name of wanted) {
    const link = join(dir, name);
    if (!existsSync(link) && !isSymlink(link)) symlinkSync(join(DATA_LINK, name), link);
  }
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('..')) {
      if (entry !== DATA_LINK && entry !== version) rmSync(join(dir, entry), { recursive: true, force: true });
    } else if (!wanted.has(entry) && isSymlink(join(dir, entry))) {
      unlinkSync(join(dir, entry));
    }
  }
  return true;
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
