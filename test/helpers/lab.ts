/**
 * Test fixture for kernel tests: network namespaces named with a per-run prefix, temp dirs,
 * all removed when the test ends, passed or failed. `scripts/test.sh` also sweeps the common
 * prefix before and after a run, for runs that were killed outright.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, deleteNetnsWithPrefix, netnsPath, openRtnl } from '../../src/lib/netns.js';
import { run, type RunOptions } from '../../src/lib/exec.js';

/**
 * Every namespace a test creates is named `ptest-<pid in base 36>-...`, so a sweep can find
 * leftovers of runs that died and leave alone those of runs still going (scripts/sweep.sh).
 */
export const TEST_NETNS_PREFIX = `ptest-${process.pid.toString(36)}-`;

let counter = 0;

export class Lab {
  readonly prefix: string;
  private readonly dirs: string[] = [];

  constructor(tag = 'lab') {
    this.prefix = `${TEST_NETNS_PREFIX}${tag}${(counter++).toString(36)}-`;
  }

  /** Creates a namespace; returns its name (use `path()` for /run/netns/<name>). */
  netns(name: string): string {
    const full = `${this.prefix}${name}`;
    createNetns(full);
    return full;
  }

  path(name: string): string {
    return netnsPath(name);
  }

  tempDir(tag = 'tmp'): string {
    const dir = mkdtempSync(join(tmpdir(), `pontoon-${tag}-`));
    this.dirs.push(dir);
    return dir;
  }

  /** The names of a namespace's links, sorted (read over rtnetlink). */
  linkNames(netns: string): string[] {
    const rtnl = openRtnl(netnsPath(netns));
    try {
      return rtnl.links().map((l) => l.name).sort();
    } finally {
      rtnl.close();
    }
  }

  /** Runs a command inside one of this lab's namespaces. */
  exec(netns: string, command: string, args: readonly string[], options: RunOptions = {}): string {
    return run(command, args, { ...options, netns });
  }

  cleanup(): void {
    deleteNetnsWithPrefix(this.prefix);
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}
