/**
 * The apiserver's limits against misbehaving clients: a body over 3 MiB is refused with 413
 * while it is still arriving and the connection is closed; a watcher that stops reading is
 * dropped (with a log line) once its backlog passes the bound while a reading watcher gets
 * every event; slow headers, slow bodies and idle keep-alive connections time out, and a
 * watch outlives the request timeout.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from './server-harness.js';

const CONFIGMAPS = '/api/v1/namespaces/default/configmaps';

/** Resolves when `check` holds; fails naming `what` after `capMs` (a bound on a condition, not a timing assertion). */
async function waitFor(what: string, check: () => boolean, capMs = 20_000): Promise<void> {
  const deadline = Date.now() + capMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what}: not seen within ${capMs} ms`);
    await sleep(50);
  }
}

interface RawConnection {
  socket: Socket;
  received(): string;
  closed(): boolean;
}

function rawConnection(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let isClosed = false;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => (isClosed = true));
    socket.once('connect', () => resolve({ socket, received: () => text, closed: () => isClosed }));
    socket.once('error', reject);
  });
}

describe('apiserver limits', () => {
  let api: TestApi;
  let port: number;
  const logLines: Array<{ msg: string; [key: string]: unknown }> = [];

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as { msg: string });
        done();
      },
    });
    api = await startTestApi(new MemoryStore(), {
      log: pino({ level: 'warn' }, sink),
      watchBacklogBytes: 256 * 1024,
      headersTimeoutMs: 1000,
      requestTimeoutMs: 2000,
      keepAliveTimeoutMs: 500,
    });
    port = api.server.port!;
  });
  after(async () => {
    await api?.close();
  });

  test('a chunked body past 3 MiB gets 413 RequestEntityTooLarge before it ends, and the connection is closed', async () => {
    const conn = await rawConnection(port);
    conn.socket.write(`POST ${CONFIGMAPS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    let sentBytes = 0;
    // The client never finishes its body: it keeps sending until the server hangs up.
    while (!conn.closed()) {
      if (!conn.socket.writable) break;
      conn.socket.write(`${chunk.length.toString(16)}\r\n`);
      conn.socket.write(chunk);
      conn.socket.write('\r\n');
      sentBytes += chunk.length;
      if (sentBytes > 64 * 1024 * 1024) assert.fail('the server kept reading 64 MiB of an over-limit body');
      await sleep(sentBytes < 4 * 1024 * 1024 ? 0 : 20);
    }
    await waitFor('the connection closed', () => conn.closed());
    const answer = conn.received();
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /"reason":"RequestEntityTooLarge"/);
  });

  test('a 4 MiB body with Content-Length is refused with 413 as a Status', async () => {
    const answer = await api.call<{ kind: string; reason: string; code: number }>('POST', CONFIGMAPS, { metadata: { name: 'big' }, data: { a: 'x'.repeat(4 * 1024 * 1024) } });
    assert.equal(answer.status, 413);
    assert.equal(answer.body.kind, 'Status');
    assert.equal(answer.body.reason, 'RequestEntityTooLarge');
  });

  test('a watcher that stops reading is dropped; one that reads gets every event', async () => {
    const list = await api.call<{ metadata: { resourceVersion: string } }>('GET', CONFIGMAPS);
    const rv = list.body.metadata.resourceVersion;
    const watchRequest = `GET ${CONFIGMAPS}?watch=true&resourceVersion=${rv} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const slow = await rawConnection(port);
    slow.socket.write(watchRequest);
    await waitFor('the slow watch started', () => slow.received().includes('\r\n\r\n'));
    slow.socket.pause();

    const fast = await rawConnection(port);
    fast.socket.write(watchRequest);
    await waitFor('the fast watch started', () => fast.received().includes('\r\n\r\n'));

    // Far more than the bound plus what loopback socket buffers can hold.
    const count = 80;
    const value = 'v'.repeat(250 * 1024);
    for (let i = 0; i < count; i++) {
      const created = await api.call('POST', CONFIGMAPS, { metadata: { name: `cm-${i}` }, data: { value } });
      assert.equal(created.status, 201, created.text);
    }
    // One event per line; the object's first "name" is metadata.name.
    const addedNames = (text: string): Set<string> => new Set([...text.matchAll(/"type":"ADDED","object":.*?"name":"(cm-\d+)"/g)].map((m) => m[1]!));
    await waitFor('the fast watcher saw every event', () => addedNames(fast.received()).size === count);
    await waitFor('the slow watcher was dropped', () => logLines.some((l) => /dropping a watcher that stopped reading/.test(l.msg)));
    const dropped = logLines.find((l) => /dropping a watcher/.test(l.msg))!;
    assert.equal(dropped['limitBytes'], 256 * 1024);
    slow.socket.resume();
    await waitFor('the slow watcher stream ended', () => slow.closed());
    assert.ok(addedNames(slow.received()).size < count, 'the dropped watcher did not get everything');
    // The server still serves watches afterwards.
    assert.equal(fast.closed(), false);
    fast.socket.destroy();
  });

  test('slow headers, slow bodies and idle keep-alive connections time out; a watch outlives the request timeout', async () => {
    const watch = await rawConnection(port);
    watch.socket.write(`GET ${CONFIGMAPS}?watch=true&resourceVersion=0&fieldSelector=metadata.name%3Dlate HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor('the watch started', () => watch.received().includes('\r\n\r\n'));

    // Slowloris: a header line now and then, never the end of the headers.
    const loris = await rawConnection(port);
    loris.socket.write('GET /version HTTP/1.1\r\nHost: x\r\n');
    let n = 0;
    while (!loris.closed() && n++ < 400) {
      loris.socket.write(`X-Slow-${n}: y\r\n`);
      await sleep(100);
    }
    assert.ok(loris.closed(), 'the server never closed a connection whose headers never ended');

    // A body that trickles in.
    const trickle = await rawConnection(port);
    trickle.socket.write(`POST ${CONFIGMAPS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
    n = 0;
    while (!trickle.closed() && n++ < 400) {
      trickle.socket.write(' ');
      await sleep(100);
    }
    assert.ok(trickle.closed(), 'the server never closed a connection whose body never arrived');

    // An idle keep-alive connection after a complete request.
    const idle = await rawConnection(port);
    idle.socket.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the version answer', () => idle.received().includes('"major"'));
    await waitFor('the idle keep-alive connection closed', () => idle.closed());

    // The watch opened before all that is still streaming.
    assert.equal(watch.closed(), false);
    assert.equal((await api.call('POST', CONFIGMAPS, { metadata: { name: 'late' }, data: { a: 'b' } })).status, 201);
    await waitFor('the watch saw the late object', () => /"type":"ADDED".*"name":"late"/.test(watch.received()));
    watch.socket.destroy();
  });
});
