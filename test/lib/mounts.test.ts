import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { mountPoints, unmountUnder } from '../../src/lib/mounts.js';

test('unmountUnder detaches nested mounts deepest first so the tree can be removed', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'pontoon-mounts-'));
  t.after(() => {
    for (const point of mountPoints().filter((p) => p.startsWith(`${root}/`)).reverse()) execFileSync('umount', ['-l', point]);
    rmSync(root, { recursive: true, force: true });
  });
  const outer = join(root, 'pods', 'a b', 'volume');
  mkdirSync(outer, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', outer]);
  const inner = join(outer, 'inner');
  mkdirSync(inner);
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', inner]);
  writeFileSync(join(inner, 'token'), 'secret');
  assert.ok(mountPoints().includes(inner), 'the space in the path is unescaped');
  assert.throws(() => rmSync(root, { recursive: true }), /EBUSY/);

  unmountUnder(root);

  assert.deepEqual(mountPoints().filter((p) => p.startsWith(`${root}/`)), []);
  rmSync(root, { recursive: true });
  unmountUnder(root); // nothing left to do is not an error
});
