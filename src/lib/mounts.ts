/**
 * The mount table, for code that must leave no mount behind: pod volumes (tmpfs for secrets
 * and tokens, bind mounts) outlive a kubelet that is killed, and a directory holding a mount
 * point cannot be removed (EBUSY) until it is unmounted.
 */
import { readFileSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { MNT_DETACH, umount2 } from './sys/libc.js';

/** Mount points in /proc/self/mountinfo (field 5), octal escapes (`\040` for a space) undone. */
export function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

/**
 * Detaches every mount at or below `dir`, deepest first, so the tree can then be removed.
 * Lazy (MNT_DETACH): a process still holding a file open there keeps its view, as `umount -l`.
 * A mount that went away meanwhile is fine.
 */
export function unmountUnder(dir: string): void {
  const root = resolve(dir);
  const below = mountPoints()
    .filter((point) => point === root || point.startsWith(root + sep))
    .sort((a, b) => b.length - a.length);
  for (const point of below) {
    try {
      umount2(point, MNT_DETACH);
    } catch (err) {
      if (!/EINVAL|ENOENT/.test(String(err))) throw err;
    }
  }
}
