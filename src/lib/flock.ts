/**
 * Advisory file locks with flock(2), the lock host-local and go-filemutex take, so our IPAM
 * and the reference plugin exclude each other on a shared data directory.
 *
 * flock belongs to the open file: the kernel drops it when the holder exits, even by
 * SIGKILL. A leftover `lock` file therefore never blocks anyone; there is no stale-lock case
 * to detect.
 */
import { closeSync, openSync } from 'node:fs';
import * as libc from './sys/libc.js';

export class FileLock {
  private constructor(private fd: number | undefined, readonly path: string) {}

  /** Blocks until the exclusive lock on `path` (created if missing) is ours. */
  static acquire(path: string): FileLock {
    const fd = openSync(path, 'a+', 0o644);
    try {
      libc.flock(fd, libc.LOCK_EX);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new FileLock(fd, path);
  }

  release(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd); // closing the last fd of the open file releases the flock
  }
}

export function withFileLock<T>(path: string, fn: () => T): T {
  const lock = FileLock.acquire(path);
  try {
    return fn();
  } finally {
    lock.release();
  }
}
