/**
 * The protocol edges of `pontoon dns`: malformed and unsupported messages get the rcode
 * their RFC names (or are dropped where no answer is possible) and the server keeps
 * serving; TCP carries several pipelined queries per connection; names outside the cluster
 * domain are forwarded to a real dnsmasq upstream over UDP and TCP.
 * Queries are encoded and replies decoded with dns-packet, independently of the server's
 * own scanner.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import type { Service } from '../../src/api/types.js';
import { poll } from '../helpers/wait.js';
import { DnsLab } from './harness.js';

const RCODE_OF = (reply: Buffer): number => (reply[3] ?? 0) & 0x0f;
const query = (name: string, type: dnsPacket.RecordType = 'A', id = 4242, extra: Partial<dnsPacket.Packet> = {}): Buffer =>
  dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }], ...extra });
const hex = (b: Buffer): string => b.toString('hex');
const decode = (h: string): dnsPacket.DecodedPacket => dnsPacket.decode(Buffer.from(h, 'hex'));

describe('pontoon dns protocol', () => {
  const lab = new DnsLab();

  before(async () => {
    // dnsmasq as the upstream, on another loopback address of the same namespace.
    const upstreamArgs = ['--no-daemon', '-C', '/dev/null', '--no-resolv', '--no-hosts', '--listen-address=127.0.0.2', '--bind-interfaces', '--port=5353', '--address=/example.test/192.0.2.10', '--pid-file='];
    await lab.start(['--upstream', '127.0.0.2:5353']);
    lab.spawnExtra('dnsmasq', upstreamArgs);
    await poll('dnsmasq up', async () => (await lab.dig(['-p', '5353', 'a.example.test'], '127.0.0.2')).answers.length === 1, { timeoutMs: 10_000, describe: () => lab.logTail });
  });
  after(() => lab.stop());

  it('drops what it cannot answer: a short header, a response', async () => {
    const response = query('web.default.svc.cluster.local');
    response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
    assert.deepEqual(await lab.probe('udp', ['0001020304', hex(response)]), ['timeout', 'timeout']);
  });

  it('answers FORMERR for qdcount 0 and 2 and a name cut short, keeping the id', async () => {
    const zero = Buffer.from(query('kubernetes.default.svc.cluster.local').subarray(0, 12));
    zero.writeUInt16BE(0, 4);
    const two = dnsPacket.encode({ id: 7, type: 'query', questions: [{ name: 'a.cluster.local', type: 'A' }, { name: 'b.cluster.local', type: 'A' }] });
    const cut = query('kubernetes.default.svc.cluster.local', 'A', 9).subarray(0, 20);
    const replies = await lab.probe('udp', [hex(zero), hex(two), hex(cut)]);
    assert.deepEqual(replies.map((r) => (r === 'timeout' ? r : RCODE_OF(Buffer.from(r, 'hex')))), [1, 1, 1]);
    assert.deepEqual(replies.map((r) => decode(r).id), [4242, 7, 9]);
  });

  it('answers REFUSED for other opcodes and classes, NOTIMP for AXFR, BADVERS for EDNS version 1', async () => {
    const update = query('cluster.local', 'SOA');
    update.writeUInt16BE((update.readUInt16BE(2) & ~0x7800) | (5 << 11), 2);
    const chaos = dnsPacket.encode({ id: 5, type: 'query', questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] });
    const axfr = query('cluster.local', 'AXFR');
    const badvers = query('kubernetes.default.svc.cluster.local', 'A', 6, { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 1, flags: 0, flag_do: false, options: [] }] });
    const replies = (await lab.probe('udp', [hex(update), hex(chaos), hex(axfr), hex(badvers)])).map((r) => Buffer.from(r, 'hex'));
    assert.deepEqual(replies.slice(0, 3).map(RCODE_OF), [5, 5, 4]);
    const opt = decode(hex(replies[3] ?? Buffer.alloc(0))).additionals?.find((r) => r.type === 'OPT');
    assert.ok(opt && 'extendedRcode' in opt);
    // dns-packet reports the OPT's upper rcode bits; BADVERS is 16 = 1 << 4.
    assert.equal(opt.extendedRcode, 1);
  });

  it('survives random bytes: every reply is a FORMERR with the sender id, and service goes on', async () => {
    const messages = Array.from({ length: 40 }, (_, i) => {
      const bytes = randomBytes(12 + (i % 30));
      bytes[2] = (bytes[2] ?? 0) & 0x07; // a query (QR 0), opcode QUERY: reach the parser
      return bytes;
    });
    const replies = await lab.probe('udp', messages.map(hex));
    for (const [i, reply] of replies.entries()) {
      if (reply === 'timeout') continue;
      const id = messages[i]?.readUInt16BE(0);
      assert.equal(decode(reply).id, id);
      assert.ok([1, 3, 0, 2, 5, 4].includes(RCODE_OF(Buffer.from(reply, 'hex'))));
    }
    assert.equal((await lab.dig(['kubernetes.default.svc.cluster.local'])).status, 'NOERROR');
  });

  it('answers several pipelined queries on one TCP connection', async () => {
    const names = ['kubernetes.default.svc.cluster.local', 'nope.default.svc.cluster.local', 'a.example.test'];
    const replies = await lab.probe('tcp', names.map((n, i) => hex(query(n, 'A', 100 + i))));
    const decoded = replies.map(decode);
    assert.deepEqual(decoded.map((d) => d.id).sort(), [100, 101, 102]);
    const byId = new Map(decoded.map((d) => [d.id, d]));
    assert.equal(byId.get(100)?.answers?.length, 1);
    assert.equal(RCODE_OF(Buffer.from(replies[decoded.findIndex((d) => d.id === 101)] ?? '', 'hex')), 3);
    assert.deepEqual(byId.get(102)?.answers?.map((a) => ('data' in a ? a.data : undefined)), ['192.0.2.10']);
  });

  it('forwards names outside the cluster domain to the upstream, over UDP and TCP', async () => {
    const udp = await lab.dig(['www.example.test']);
    assert.equal(udp.status, 'NOERROR');
    assert.deepEqual(udp.answers.map((r) => r.data), ['192.0.2.10']);
    assert.ok(udp.flags.includes('ra'));
    const tcp = await lab.dig(['+tcp', 'mail.example.test']);
    assert.deepEqual(tcp.answers.map((r) => r.data), ['192.0.2.10']);
    const metrics = await lab.http(9153, '/metrics');
    assert.match(metrics.text, /pontoon_dns_forward_requests_total\{to="127\.0\.0\.2:5353",outcome="answered"\} [1-9]/);
  });

  it('resolves an ExternalName target outside the cluster through the upstream, after the CNAME', async () => {
    await lab.createService({ metadata: { name: 'ext', namespace: 'default' }, spec: { type: 'ExternalName', externalName: 'db.example.test' } } as Service);
    const name = 'ext.default.svc.cluster.local';
    await poll('ExternalName served', async () => (await lab.dig([name])).answers.length > 0, { timeoutMs: 10_000 });
    const answer = await lab.dig([name, 'A']);
    assert.deepEqual(answer.answers.map((r) => [r.type, r.data]), [['CNAME', 'db.example.test.'], ['A', '192.0.2.10']]);
    assert.match(await lab.nslookup(name), /192\.0\.2\.10/);
  });
});
