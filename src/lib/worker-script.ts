/**
 * Where a packet loop's worker script is: bundled beside the CLI as `<bundled>.cjs` (the
 * bundle puts every loop in dist/cli/), or tsc's `<source>.js` next to the module that
 * starts it. `what` names the loop in the error when neither exists.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PontoonError } from './errors.js';

export class WorkerScriptError extends PontoonError {}

export function workerScript(moduleUrl: string, bundled: string, source: string, what: string): string {
  const here = dirname(fileURLToPath(moduleUrl));
  const candidates = [join(here, `${bundled}.cjs`), join(here, `${source}.js`)];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new WorkerScriptError(`${what} not found (looked for ${candidates.join(', ')}): run "npm run build"`);
  return found;
}
