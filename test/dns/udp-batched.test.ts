/**
 * The batched UDP path (a worker thread answering from a mirror of the answer cache): many
 * clients at once get their own answers, changes reach the mirror, what the mirror must not
 * answer still gets the full handler's answer, counts reach /metrics with no further traffic,
 * and `--udp dgram` serves the same answers. Replies are decoded with dns-packet.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as dnsPacket from 'dns-packet';
import { RESOURCE } from '../../src/api/resources.js';
import type { Service } from '../../src/api/types.js';
import { poll } from '../helpers/wait.js';
import { CLI, DnsLab } from './harness.js';

const run = promisify(execFile);
const SERVICES = 12;
const ipOf = (i: number): string => `10.96.7.${10 + i}`;

/**
 * 16 sockets × every Service name, sent back to back with distinct ids (so they queue and
 * arrive in batches), then every reply read: returns "id name ip" lines and the unanswered.
 */
const BURST = `
const dgram = require('node:dgram');
const packet = require(process.argv[1]);
const [server, names] = [process.argv[2], process.argv[3].split(',')];
const replies = [];
let pending = 0;
const sockets = Array.from({ length: 16 }, () => dgram.createSocket('udp4'));
sockets.forEach((socket, s) => {
  socket.on('message', (m) => {
    const d = packet.decode(m);
    replies.push([d.id, d.questions[0].name, (d.answers[0] || {}).data, s].join(' '));
    if (--pending === 0) finish();
  });
  names.forEach((name, n) => {
    pending++;
    socket.send(packet.encode({ id: s * 1000 + n, type: 'query', questions: [{ name, type: 'A' }] }), 53, server);
  });
});
const timer = setTimeout(finish, 5000);
function finish() { clearTimeout(timer); console.log(JSON.stringify({ replies, missing: pending })); process.exit(0); }
`;

describe('pontoon dns: batched UDP', () => {
  const lab = new DnsLab();
  const names = Array.from({ length: SERVICES }, (_, i) => `b${i}.default.svc.cluster.local`);

  before(async () => {
    await lab.start();
    for (let i = 0; i < SERVICES; i++) await lab.createService({ metadata: { name: `b${i}`, namespace: 'default' }, spec: { clusterIP: ipOf(i), ports: [{ port: 80 }] } } as Service);
    await poll('the last Service to answer', async () => (await lab.dig([names.at(-1) ?? ''])).answers[0]?.data === ipOf(SERVICES - 1), { timeoutMs: 10_000, describe: () => lab.logTail });
  });
  after(() => lab.stop());

  it('sixteen clients bursting at once each get their own answers, under their own ids', async () => {
    const dnsPacketPath = createRequire(import.meta.url).resolve('dns-packet');
    const { stdout } = await run('ip', ['netns', 'exec', lab.netns, process.execPath, '-e', BURST, dnsPacketPath, '127.0.0.1', names.join(',')], { encoding: 'utf8' });
    const result = JSON.parse(stdout) as { replies: string[]; missing: number };
    assert.equal(result.missing, 0, 'every query answered');
    assert.equal(result.replies.length, 16 * SERVICES);
    for (const line of result.replies) {
      const [id = '', name = '', ip = '', socket = ''] = line.split(' ');
      const n = Number(id) % 1000;
      assert.equal(Math.floor(Number(id) / 1000), Number(socket), `reply ${line} reached the socket that asked`);
      assert.equal(name, names[n], `reply ${line} answers its own question`);
      assert.equal(ip, ipOf(n), `reply ${line} has its Service's address`);
    }
  });

  it('a deleted Service stops answering and a new one starts: the mirror follows changes', async () => {
    await lab.client.delete(RESOURCE.services, 'b0', 'default');
    await poll('b0 to be NXDOMAIN', async () => (await lab.dig([names[0] ?? ''])).status === 'NXDOMAIN', { timeoutMs: 10_000, describe: () => lab.logTail });
    await lab.createService({ metadata: { name: 'b0', namespace: 'default' }, spec: { clusterIP: '10.96.7.200', ports: [{ port: 80 }] } } as Service);
    await poll('b0 back with its new address', async () => (await lab.dig([names[0] ?? ''])).answers[0]?.data === '10.96.7.200', { timeoutMs: 10_000, describe: () => lab.logTail });
  });

  it('a name built on first use (NXDOMAIN) answers the same the first and the second time', async () => {
    const first = await lab.dig(['nope.default.svc.cluster.local']);
    const second = await lab.dig(['nope.default.svc.cluster.local']);
    assert.equal(first.status, 'NXDOMAIN');
    assert.deepEqual([second.status, second.authority.map((r) => r.type)], [first.status, first.authority.map((r) => r.type)]);
  });

  it('a held name asked in class CH is REFUSED, not answered from the mirror', async () => {
    const ask = dnsPacket.encode({ id: 77, type: 'query', questions: [{ name: names[1] ?? '', type: 'A', class: 'CH' }] });
    const [reply = ''] = await lab.probe('udp', [ask.toString('hex')]);
    const bytes = Buffer.from(reply, 'hex');
    assert.equal(dnsPacket.decode(bytes).id, 77);
    assert.equal((bytes[3] ?? 0) & 0x0f, 5, 'rcode REFUSED');
  });

  it('answers reach /metrics with no further traffic', async () => {
    const count = async (): Promise<number> => Number(/pontoon_dns_requests_total\{proto="udp",type="A"\} (\d+)/.exec((await lab.http(9153, '/metrics')).text)?.[1] ?? 0);
    const before_ = await count();
    for (let i = 0; i < 5; i++) assert.equal((await lab.dig([names[2] ?? ''])).answers[0]?.data, ipOf(2));
    await poll('five more udp A requests counted', async () => (await count()) >= before_ + 5, { timeoutMs: 5_000 });
  });
});

describe('pontoon dns --udp dgram', () => {
  const lab = new DnsLab();
  before(() => lab.start(['--udp', 'dgram']));
  after(() => lab.stop());

  it('serves the same answers through Node\'s socket', async () => {
    const answer = await lab.dig(['kubernetes.default.svc.cluster.local']);
    assert.equal(answer.status, 'NOERROR');
    assert.equal(answer.answers[0]?.type, 'A');
  });

  it('refuses an unknown --udp mode with a one-line error', async () => {
    const failed = await run(process.execPath, [CLI, 'dns', '--udp', 'fast'], { encoding: 'utf8' }).then(() => '', (err: { stderr?: string }) => err.stderr ?? '');
    assert.match(failed, /--udp must be batched or dgram, got "fast"/);
  });
});
