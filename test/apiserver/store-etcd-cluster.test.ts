/**
 * EtcdStore on a real 3-member etcd cluster (loopback ports): kill -9 of the leader while a
 * writer creates and updates keys one after another. Every write resolves (the store retries
 * through the election), none is applied twice (each key holds exactly the value written, at
 * the revision the write answered), and a watch started before the kill, re-started from its
 * last revision when the member's connection goes, sees every write once, in order.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { EtcdStore } from '../../src/apiserver/store/etcd.js';
import type { StoreEvent } from '../../src/apiserver/store/store.js';
import { poll } from '../helpers/wait.js';

interface Member {
  name: string;
  client: string;
  peer: string;
  child?: ChildProcess;
}

const dir = mkdtempSync(join(tmpdir(), 'pontoon-etcd3-'));
const base = 20000 + Math.floor(Math.random() * 20000);
const members: Member[] = [0, 1, 2].map((i) => ({ name: `m${i}`, client: `http://127.0.0.1:${base + 2 * i}`, peer: `http://127.0.0.1:${base + 2 * i + 1}` }));

function launch(member: Member): void {
  member.child = spawn(
    'etcd',
    [
      '--name', member.name,
      '--data-dir', join(dir, member.name),
      '--listen-client-urls', member.client,
      '--advertise-client-urls', member.client,
      '--listen-peer-urls', member.peer,
      '--initial-advertise-peer-urls', member.peer,
      '--initial-cluster', members.map((m) => `${m.name}=${m.peer}`).join(','),
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `t-${base}`,
      '--log-level', 'error',
    ],
    { stdio: 'ignore' },
  );
}

async function status(member: Member): Promise<{ id: string; leader: string } | undefined> {
  try {
    const response = await fetch(`${member.client}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) });
    const body = (await response.json()) as { header: { member_id: string }; leader: string };
    return { id: body.header.member_id, leader: body.leader };
  } catch {
    return undefined;
  }
}

let store: EtcdStore;

before(async () => {
  for (const member of members) launch(member);
  await poll('a leader', async () => (await status(members[0]!))?.leader !== '0' && (await status(members[0]!)) !== undefined, { timeoutMs: 20_000, intervalMs: 100, retryErrors: true });
  store = await EtcdStore.open(members.map((m) => m.client), { keyPrefix: '/cluster-test' });
});

after(async () => {
  await store?.close();
  for (const member of members) member.child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const object = (name: string, generation: number): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', uid: `uid-${name}` }, data: { generation: String(generation) } }) as KubeObject;

test('kill -9 of the leader during writes: every write succeeds once and the watch misses nothing', async () => {
  const events: StoreEvent[] = [];
  let stopped = false;
  let lastSeen = await store.currentResourceVersion();
  const watchFrom = async (since: number): Promise<void> => {
    await store.watch('/cm/', since, {
      onEvent: (event) => {
        events.push(event);
        lastSeen = event.resourceVersion;
      },
      // The member under the watch may be the one killed: resume from the last revision seen.
      onError: () => {
        if (!stopped) void poll('the watch to resume', () => watchFrom(lastSeen).then(() => true), { timeoutMs: 30_000, intervalMs: 200, retryErrors: true });
      },
    });
  };
  await watchFrom(lastSeen);

  const statuses = await Promise.all(members.map((m) => status(m)));
  const leaderId = statuses[0]?.leader;
  const leader = members[statuses.findIndex((s) => s?.id === leaderId)];
  assert.ok(leader, 'found the leader');

  const written = new Map<string, number>();
  const count = 240;
  let next = 0;
  // Eight writers, so writes are in flight on the leader when it dies.
  const writer = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      if (i === count / 3) leader.child?.kill('SIGKILL');
      const created = await store.create(`/cm/k${i}`, object(`k${i}`, 1));
      // Every other key is updated too (guarded by the revision its create answered).
      const final = i % 2 === 0 ? await store.update(`/cm/k${i}`, object(`k${i}`, 2), created.resourceVersion) : created;
      written.set(`/cm/k${i}`, final.resourceVersion);
    }
  };
  await Promise.all(Array.from({ length: 8 }, writer));

  const listed = await store.list('/cm/');
  assert.equal(listed.items.length, count);
  for (const item of listed.items) {
    const key = `/cm/${item.object.metadata.name}`;
    assert.equal(item.resourceVersion, written.get(key), `${key} is at the revision its last write answered`);
    const index = Number(item.object.metadata.name?.slice(1));
    assert.equal((item.object as KubeObject & { data: { generation: string } }).data.generation, index % 2 === 0 ? '2' : '1');
  }
  await poll('every write to be watched', () => events.length >= count + count / 2, { timeoutMs: 30_000 });
  const revisions = events.map((e) => e.resourceVersion);
  assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y), 'in order');
  assert.equal(new Set(revisions).size, revisions.length, 'each once');
  assert.equal(events.length, count + count / 2);
  stopped = true;
});
