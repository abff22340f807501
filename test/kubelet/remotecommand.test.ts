/**
 * The remote command session against a scripted client: when the process opens, what it is
 * given, and what reaches it. A real kubectl runs in streaming.test.ts; this pins the order
 * of events kubectl's timing only sometimes produces.
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { createLogger } from '../../src/lib/log.js';
import { Channel, REMOTECOMMAND_V5, serveRemoteCommand, type StreamedProcess, type TerminalSize } from '../../src/kubelet/streaming/remotecommand.js';
import type { ExecResult } from '../../src/kubelet/streaming/exec.js';

class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  readonly protocol = REMOTECOMMAND_V5;
  readonly bufferedAmount = 0;
  readonly sent: Buffer[] = [];
  closedWith: number | undefined;
  send(data: Buffer, _options: unknown, callback?: () => void): void {
    this.sent.push(data);
    callback?.();
  }
  close(code: number): void {
    this.closedWith = code;
    this.readyState = 3;
    this.emit('close');
  }
  /** A client message on a channel. */
  client(channel: number, data: string | Buffer): void {
    this.emit('message', Buffer.concat([Buffer.from([channel]), Buffer.from(data)]), true);
  }
}

interface Opened {
  size: TerminalSize | undefined;
  stdin: PassThrough;
  resizes: TerminalSize[];
  killed: boolean;
  finish(result: ExecResult): void;
}

function opener(): { open: (size?: TerminalSize) => StreamedProcess; opened: Opened[] } {
  const opened: Opened[] = [];
  const open = (size?: TerminalSize): StreamedProcess => {
    let finish: (result: ExecResult) => void = () => undefined;
    const done = new Promise<ExecResult>((resolve) => (finish = resolve));
    const record: Opened = { size, stdin: new PassThrough(), resizes: [], killed: false, finish: (r) => finish(r) };
    opened.push(record);
    return {
      stdin: record.stdin,
      stdout: new PassThrough(),
      stderr: undefined,
      resize: (columns, rows) => record.resizes.push({ columns, rows }),
      kill: () => (record.killed = true),
      done,
    };
  };
  return { open, opened };
}

const log = createLogger('test', { level: 'silent' });
const asSocket = (fake: FakeSocket): WebSocket => fake as unknown as WebSocket;

describe('remote command session', () => {
  test('with a TTY the process opens at the client\'s first size; stdin sent before it is held, not lost', async () => {
    const ws = new FakeSocket();
    const { open, opened } = opener();
    serveRemoteCommand(asSocket(ws), open, log, { tty: true, stdout: true, stderr: false });
    assert.deepEqual(ws.sent[0], Buffer.from([Channel.stdout]), 'the client is told the streams are up at once');
    ws.client(Channel.stdin, 'early ');
    assert.equal(opened.length, 0, 'no process before the terminal has a size');
    ws.client(Channel.resize, JSON.stringify({ Width: 123, Height: 45 }));
    assert.equal(opened.length, 1);
    assert.deepEqual(opened[0]?.size, { columns: 123, rows: 45 });
    ws.client(Channel.stdin, 'late');
    ws.client(Channel.resize, JSON.stringify({ Width: 100, Height: 30 }));
    assert.equal(opened[0]?.stdin.read()?.toString(), 'early late');
    assert.deepEqual(opened[0]?.resizes, [{ columns: 100, rows: 30 }], 'later sizes are resizes');
    opened[0]?.finish({ exitCode: 7 });
    await new Promise((resolve) => setImmediate(resolve));
    const status = JSON.parse(ws.sent.at(-1)?.subarray(1).toString() ?? '{}') as { details?: { causes?: { message: string }[] } };
    assert.equal(status.details?.causes?.[0]?.message, '7');
    assert.equal(ws.closedWith, 1000);
  });

  test('a malformed first size does not open the process; a later good one does', () => {
    const ws = new FakeSocket();
    const { open, opened } = opener();
    serveRemoteCommand(asSocket(ws), open, log, { tty: true, stdout: true, stderr: false });
    ws.client(Channel.resize, '{"Width":"wide"}');
    assert.equal(opened.length, 0);
    ws.client(Channel.resize, JSON.stringify({ Width: 81, Height: 25 }));
    assert.deepEqual(opened[0]?.size, { columns: 81, rows: 25 });
  });

  test('a client gone before sending a size leaves no process behind', () => {
    const ws = new FakeSocket();
    const { open, opened } = opener();
    serveRemoteCommand(asSocket(ws), open, log, { tty: true, stdout: true, stderr: false });
    ws.close(1001);
    ws.client(Channel.resize, JSON.stringify({ Width: 80, Height: 24 }));
    assert.equal(opened.length, 0);
  });

  test('without a TTY the process opens at once and a client gone mid-run kills it', () => {
    const ws = new FakeSocket();
    const { open, opened } = opener();
    serveRemoteCommand(asSocket(ws), open, log, { tty: false, stdout: true, stderr: true });
    assert.equal(opened.length, 1);
    assert.equal(opened[0]?.size, undefined);
    ws.close(1001);
    assert.equal(opened[0]?.killed, true);
  });
});
