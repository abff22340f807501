/** Where the built artefacts are, whether we run from dist/ (bundled) or build/ (tsc). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PontoonError } from '../lib/errors.js';

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new PontoonError('cannot find the pontoon package root');
    dir = parent;
  }
}

export function cniDistDir(): string {
  return join(packageRoot(), 'dist', 'cni');
}
