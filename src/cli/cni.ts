/** `pontoon cni ...`: put the plugin binaries where a runtime looks for them. */
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { PontoonError } from '../lib/errors.js';
import { KOFFI_SIBLING_NAME } from '../lib/sys/libc.js';
import { cniDistDir } from './paths.js';

export const PLUGIN_BINARIES = ['pontoon-bridge', 'pontoon-ipam', 'pontoon-flannel', 'pontoon-bridge-shim', 'pontoon-flannel-shim'] as const;
export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';

/** Copies the plugins (and the FFI module they load) into `dir`; returns the paths written. */
export function installCniPlugins(dir = DEFAULT_CNI_BIN_DIR, source = cniDistDir()): string[] {
  const files = [...PLUGIN_BINARIES, KOFFI_SIBLING_NAME];
  for (const file of files) {
    if (!existsSync(join(source, file))) {
      throw new PontoonError(`"${join(source, file)}" is missing: run "npm run build" first`);
    }
  }
  mkdirSync(dir, { recursive: true });
  return files.map((file) => {
    const target = join(dir, file);
    // Copy then rename: a runtime exec'ing the old binary meanwhile never sees half a file.
    copyFileSync(join(source, file), `${target}.tmp`);
    chmodSync(`${target}.tmp`, 0o755);
    renameSync(`${target}.tmp`, target);
    return target;
  });
}
