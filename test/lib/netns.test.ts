import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { openRtnl, withNetns } from '../../src/lib/netns.js';
import { readSysctl } from '../../src/lib/sysctl.js';
import { Lab } from '../helpers/lab.js';

const lab = new Lab('netns');
after(() => lab.cleanup());

test('a created namespace is visible to ip netns, has lo up, and is removed by cleanup', () => {
  const name = lab.netns('a');
  assert.ok(existsSync(lab.path(name)));
  const rtnl = openRtnl(lab.path(name));
  try {
    const links = rtnl.links();
    assert.deepEqual(links.map((l) => l.name), ['lo']);
    assert.equal(links[0]?.up, true);
  } finally {
    rtnl.close();
  }
  assert.match(lab.exec(name, 'ip', ['-o', 'link', 'show', 'lo']), /LOOPBACK,UP/);
});

test('withNetns runs inside the namespace and restores the original one', () => {
  const name = lab.netns('b');
  const before = readSysctl('net.ipv4.ip_forward');
  withNetns(lab.path(name), () => {
    // a new namespace starts with forwarding off whatever the host has
    assert.equal(readSysctl('net.ipv4.ip_forward'), '0');
  });
  assert.equal(readSysctl('net.ipv4.ip_forward'), before);
  const here = openRtnl();
  try {
    assert.ok(here.links().some((l) => l.name !== 'lo'), 'back in the root namespace, which has more than lo');
  } finally {
    here.close();
  }
});

test('a missing namespace is a NetnsNotFoundError', () => {
  assert.throws(() => withNetns('/run/netns/ptest-does-not-exist', () => 1), { name: 'NetnsNotFoundError' });
});
