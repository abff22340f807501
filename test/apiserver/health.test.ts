/**
 * /readyz, /healthz and /livez as kube-apiserver answers them, on a real etcd: `[+]etcd ok`
 * with ?verbose while etcd answers; `[-]etcd failed` and 500 once it is gone (healthz too,
 * livez not: restarting the apiserver would not bring etcd back); /readyz/etcd alone; back to
 * ok when etcd returns. A store in the apiserver's own process (memory) has no such check.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseEtcdEndpoints } from '../../src/apiserver/store/open.js';
import { EtcdStore } from '../../src/apiserver/store/etcd.js';
import type { RunningApiServer } from '../../src/apiserver/server.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { poll } from '../helpers/wait.js';
import { startServer } from '../client/harness.js';

let etcd: TestEtcd;
let store: EtcdStore;
let server: RunningApiServer;

before(async () => {
  etcd = await startEtcd();
  store = await EtcdStore.open(parseEtcdEndpoints(`etcd://${etcd.endpoint.slice('http://'.length)}`), { keyPrefix: '/health-test', requestTimeoutMs: 1000 });
  server = await startServer({ store, listen: '127.0.0.1:0' });
});

after(async () => {
  await server?.close();
  await store?.close();
  await etcd?.stop();
});

async function get(path: string): Promise<{ code: number; text: string }> {
  const response = await fetch(`${server.url}${path}`);
  return { code: response.status, text: await response.text() };
}

test('with etcd up: ok, and ?verbose lists [+]etcd ok', async () => {
  assert.deepEqual(await get('/readyz'), { code: 200, text: 'ok' });
  const verbose = await get('/readyz?verbose');
  assert.equal(verbose.code, 200);
  assert.match(verbose.text, /^\[\+\]ping ok$/m);
  assert.match(verbose.text, /^\[\+\]etcd ok$/m);
  assert.match(verbose.text, /readyz check passed\n$/);
  assert.deepEqual(await get('/readyz/etcd'), { code: 200, text: 'ok' });
  assert.match((await get('/readyz?verbose&exclude=etcd')).text, /^\[\+\]etcd excluded: ok$/m);
  assert.equal((await get('/readyz/nonesuch')).code, 404);
});

test('with etcd gone: readyz and healthz fail on etcd (listing every check), livez stays ok; ok again when it returns', async () => {
  await etcd.kill();
  try {
    const readyz = await get('/readyz');
    assert.equal(readyz.code, 500);
    assert.match(readyz.text, /^\[-\]etcd failed: reason withheld$/m);
    assert.match(readyz.text, /^\[\+\]ping ok$/m);
    assert.match(readyz.text, /readyz check failed\n$/);
    assert.equal((await get('/healthz')).code, 500);
    assert.equal((await get('/readyz/etcd')).code, 500);
    assert.deepEqual(await get('/livez'), { code: 200, text: 'ok' });
    assert.deepEqual(await get('/readyz?exclude=etcd'), { code: 200, text: 'ok' });
  } finally {
    await etcd.restart();
  }
  await poll('readyz ok again', async () => (await get('/readyz')).code === 200, { timeoutMs: 20_000, intervalMs: 100 });
});

test('a store in the apiserver process has no store check', async () => {
  const memory = await startServer({ store: 'memory:', listen: '127.0.0.1:0' });
  try {
    const text = await (await fetch(`${memory.url}/readyz?verbose`)).text();
    assert.doesNotMatch(text, /etcd/);
    assert.match(text, /^\[\+\]poststarthook\/bootstrap ok$/m);
  } finally {
    await memory.close();
  }
});
