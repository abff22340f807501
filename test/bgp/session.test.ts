/**
 * BGP sessions over real loopback TCP: 127.0.0.1 and 127.0.0.2 are both on Linux's `lo`
 * without configuration, so each speaker has its own address and the listeners can tell
 * the peers apart. The "killed" speaker runs in a child process (this file, started with
 * PEER_ENV set) so SIGKILL drops its sockets the way a crash does. Every wait polls for a
 * condition; nothing sleeps and then asserts.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { after, describe, test } from 'node:test';
import { decodeMessage, MessageFramer } from '../../src/bgp/codec/index.js';
import type { DecodedUpdate, DownInfo, State } from '../../src/bgp/fsm.js';
import { BgpListener, BgpPeerSession } from '../../src/bgp/session.js';
import type { UpdateMessage } from '../../src/bgp/types.js';
import { type IpNet, parseIp } from '../../src/lib/ip.js';
import { createLogger } from '../../src/lib/log.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const PEER_ENV = 'PONTOON_TEST_BGP_PEER';
const silent = createLogger('bgp-test', { level: 'silent' });

interface SpeakerSpec {
  readonly netns?: string;
  readonly address: string;
  readonly asn: number;
  readonly routerId: number;
  readonly peerAddress: string;
  readonly peerAsn: number;
  readonly port: number;
}

const A: Omit<SpeakerSpec, 'port'> = { address: '127.0.0.1', asn: 65001, routerId: 0x01010101, peerAddress: '127.0.0.2', peerAsn: 65002 };
const B: Omit<SpeakerSpec, 'port'> = { address: '127.0.0.2', asn: 65002, routerId: 0x02020202, peerAddress: '127.0.0.1', peerAsn: 65001 };

interface Speaker {
  readonly listener: BgpListener;
  readonly session: BgpPeerSession;
  readonly states: State[];
  readonly downs: DownInfo[];
  readonly updates: DecodedUpdate[];
  established: number;
  close(): Promise<void>;
}

async function speaker(spec: SpeakerSpec): Promise<Speaker> {
  const listener = new BgpListener({ address: parseIp(spec.address), port: spec.port, log: silent, lingerMs: 500, ...(spec.netns ? { netns: spec.netns } : {}) });
  const record: Omit<Speaker, 'session' | 'close'> = { listener, states: [], downs: [], updates: [], established: 0 };
  const session = new BgpPeerSession({
    peerAddress: parseIp(spec.peerAddress),
    peerPort: spec.port,
    localAddress: parseIp(spec.address),
    localAsn: spec.asn,
    peerAsn: spec.peerAsn,
    routerId: spec.routerId,
    holdTimeSeconds: 3,
    retry: { initialMs: 100, maxMs: 800 },
    connectTimeoutMs: 2000,
    lingerMs: 500,
    log: silent,
    ...(spec.netns ? { netns: spec.netns } : {}),
    handlers: {
      stateChanged: (_from, to) => record.states.push(to),
      established: () => record.established++,
      down: (info) => record.downs.push(info),
      update: (update) => record.updates.push(update),
    },
  });
  listener.add(session);
  await listener.listen();
  session.start();
  return {
    ...record,
    session,
    get established() {
      return record.established;
    },
    close: async () => {
      await session.close();
      await listener.close();
    },
  };
}

/** The child side: one speaker, "ready" on stdout once listening, then runs until killed. */
async function runPeer(spec: SpeakerSpec): Promise<void> {
  await speaker(spec);
  process.stdout.write('ready\n');
}

function spawnPeer(spec: SpeakerSpec): Promise<ChildProcess> {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname], { env: { ...process.env, [PEER_ENV]: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`peer process exited with ${code} before it was ready`)));
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A free port on 127.0.0.1 that 127.0.0.2 is very likely to have free too. */
async function freePort(): Promise<number> {
  const probe = new BgpListener({ address: parseIp('127.0.0.1'), port: 0, log: silent });
  const { port } = await probe.listen();
  await probe.close();
  return port;
}

function updates(count: number): UpdateMessage[] {
  const base = Number(parseIp('10.0.0.0').value);
  return Array.from({ length: count }, (_, i): UpdateMessage => {
    const prefix: IpNet = { family: 4, value: BigInt(base + i * 256), prefixLength: 24 };
    return {
      type: 'update',
      withdrawn: [],
      nlri: [prefix],
      attributes: { origin: 'igp', asPath: [{ type: 'sequence', asns: [A.asn] }], nextHop: parseIp(A.address) },
    };
  });
}

const WAIT = { timeoutMs: 15_000, intervalMs: 20 };

if (process.env[PEER_ENV]) {
  await runPeer(JSON.parse(process.env[PEER_ENV]) as SpeakerSpec);
} else {
  describe('BGP sessions over loopback TCP', () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    test('two speakers reach Established, keep it with keepalives, and carry UPDATEs', async () => {
      const port = await freePort();
      const a = await speaker({ ...A, port });
      cleanups.push(a.close);
      const b = await speaker({ ...B, port });
      cleanups.push(b.close);
      await poll('both sessions Established', () => a.session.state === 'Established' && b.session.state === 'Established', WAIT);
      assert.equal(a.session.negotiated?.holdTimeSeconds, 3);
      assert.equal(a.session.negotiated?.peerRouterId, B.routerId);
      // Keepalives every second keep a 3 s hold time alive: wait for several to arrive.
      const before = b.session.stats().messagesIn;
      await poll('four more messages (keepalives) at B', () => b.session.stats().messagesIn >= before + 4, WAIT);
      assert.equal(a.session.state, 'Established');
      assert.equal(b.session.state, 'Established');
      assert.equal(a.established, 1);
      assert.equal(b.established, 1);
      assert.deepEqual(a.downs, []);

      const batch = updates(5000);
      assert.equal(a.session.sendUpdates(batch), true);
      await poll('5000 UPDATEs at B', () => b.updates.length >= 5000, WAIT);
      assert.equal(b.updates.length, 5000);
      assert.deepEqual(b.updates[4999]?.message.nlri, batch[4999]?.nlri);
      assert.equal(a.session.stats().updatesOut, 5000);
      assert.equal(b.session.stats().updatesIn, 5000);
      assert.ok(a.session.stats().establishedSince instanceof Date);
    });

    test('a killed peer takes the session down; it comes back Established when the peer returns', async () => {
      const port = await freePort();
      const a = await speaker({ ...A, port });
      cleanups.push(a.close);
      let child = await spawnPeer({ ...B, port });
      cleanups.push(() => kill(child));
      await poll('A Established with the child', () => a.session.state === 'Established', WAIT);

      await kill(child);
      await poll('A notices the peer is gone', () => a.downs.length === 1, WAIT);
      assert.notEqual(a.session.state, 'Established');
      assert.ok(a.states.includes('Idle'), `A went through Idle (states: ${a.states.join(' ')})`);
      assert.equal(a.downs[0]?.graceful, false, 'no GR negotiated');
      // A retries on its own; the peer's port is closed meanwhile, so attempts fail.
      await poll('A retrying', () => a.states.filter((s) => s === 'Connect').length >= 2, WAIT);

      child = await spawnPeer({ ...B, port });
      await poll('A Established again', () => a.session.state === 'Established' && a.established === 2, { ...WAIT, describe: () => `A states: ${a.states.join(' ')}; ${JSON.stringify(a.session.stats())}` });
      assert.equal(a.downs.length, 1);
    });

    test('inside a network namespace: sockets are created there and the session establishes', { skip: process.getuid?.() !== 0 && 'needs root for a network namespace' }, async () => {
      const lab = new Lab('bgp');
      cleanups.push(() => Promise.resolve(lab.cleanup()));
      const netns = lab.netns('s');
      // A port free out here, so a refused connection below can only mean "not out here".
      const port = await freePort();
      const a = await speaker({ ...A, port, netns });
      cleanups.push(a.close);
      const b = await speaker({ ...B, port, netns });
      cleanups.push(b.close);
      await poll('both sessions Established in the namespace', () => a.session.state === 'Established' && b.session.state === 'Established', WAIT);
      // The listener really is in the namespace: out here the port is closed.
      const outside = netConnect({ host: A.address, port });
      const refused = await new Promise<string>((resolve) => {
        outside.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? ''));
        outside.once('connect', () => resolve('connected'));
      });
      outside.destroy();
      assert.equal(refused, 'ECONNREFUSED');
    });

    test('a connection from an unconfigured address gets Cease/Connection Rejected and is closed', async () => {
      const port = await freePort();
      const a = await speaker({ ...A, port });
      cleanups.push(a.close);
      const socket = netConnect({ host: A.address, port, localAddress: '127.0.0.3' });
      const framer = new MessageFramer();
      const frames: Uint8Array[] = [];
      socket.on('data', (chunk: Buffer) => frames.push(...framer.push(chunk)));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('error', () => undefined);
      await closed;
      assert.equal(frames.length, 1);
      const frame = frames[0];
      assert.ok(frame);
      const message = decodeMessage(frame, { fourOctetAsn: false }).message;
      assert.equal(message.type, 'notification');
      assert.ok(message.type === 'notification');
      assert.deepEqual([message.code, message.subcode], [6, 5]);
      assert.notEqual(a.session.state, 'Established');
    });
  });
}
