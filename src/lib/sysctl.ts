/**
 * sysctl through /proc/sys. Keys under net.* are per network namespace and resolve against
 * the namespace of the thread that opens the file, so call these inside `withNetns` (they
 * use synchronous fs calls, which run on the calling thread).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function sysctlPath(key: string): string {
  // Interface names may contain dots, so callers pass them as separate parts.
  return join('/proc/sys', ...key.split('.'));
}

export function readSysctl(key: string): string {
  return readFileSync(sysctlPath(key), 'utf8').trim();
}

export function writeSysctl(key: string, value: string): void {
  writeFileSync(sysctlPath(key), value);
}

/** Writes only when the value differs, so read-only /proc/sys is fine when nothing changes. */
export function ensureSysctl(key: string, value: string): void {
  if (readSysctl(key) !== value) writeSysctl(key, value);
}
