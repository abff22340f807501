/**
 * Wireshark's BGP dissector as an independent check of the encoder: one of every message
 * type we build goes into a classic libpcap file (LINKTYPE_RAW, hand-made IPv4 and TCP
 * headers with real checksums and sequence numbers after a three-way handshake), and
 * `tshark -V` must recognise each and report nothing malformed. Two connections: a 4-octet
 * AS session (every capability and attribute), and a 2-octet one for AS4_PATH and
 * AS4_AGGREGATOR (RFC 6793 §4.2.2), since Wireshark learns the AS size per conversation.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeMessage } from '../../src/bgp/codec/index.js';
import type { BgpMessage, CodecContext, PathAttributes } from '../../src/bgp/types.js';
import { parseIp, parseIpNet } from '../../src/lib/ip.js';

const LINKTYPE_RAW = 101;
const BGP_PORT = 179;

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

interface Segment {
  from: 'client' | 'server';
  flags: number;
  payload: Uint8Array;
}

const TCP_FLAG = { FIN: 0x01, SYN: 0x02, PSH: 0x08, ACK: 0x10 } as const;

/** IPv4 + TCP packets for one connection, sequence and acknowledgement numbers kept. */
function connection(clientPort: number, segments: readonly Segment[]): Buffer[] {
  const client = { address: Buffer.from([10, 0, 0, 1]), port: clientPort, seq: 1_000_000 };
  const server = { address: Buffer.from([10, 0, 0, 2]), port: BGP_PORT, seq: 5_000_000 };
  const packets: Buffer[] = [];
  const send = (fromClient: boolean, flags: number, payload: Uint8Array): void => {
    const [src, dst] = fromClient ? [client, server] : [server, client];
    const tcp = Buffer.alloc(20 + payload.length);
    tcp.writeUInt16BE(src.port, 0);
    tcp.writeUInt16BE(dst.port, 2);
    tcp.writeUInt32BE(src.seq >>> 0, 4);
    tcp.writeUInt32BE(flags & TCP_FLAG.ACK ? dst.seq >>> 0 : 0, 8);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp.writeUInt16BE(65535, 14);
    tcp.set(payload, 20);
    const pseudo = Buffer.concat([src.address, dst.address, Buffer.from([0, 6, tcp.length >> 8, tcp.length & 0xff]), tcp]);
    tcp.writeUInt16BE(checksum(pseudo), 16);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + tcp.length, 2);
    ip.writeUInt16BE(packets.length + 1, 4);
    ip.writeUInt16BE(0x4000, 6); // DF
    ip[8] = 64;
    ip[9] = 6;
    src.address.copy(ip, 12);
    dst.address.copy(ip, 16);
    ip.writeUInt16BE(checksum(ip), 10);
    packets.push(Buffer.concat([ip, tcp]));
    src.seq += payload.length + (flags & (TCP_FLAG.SYN | TCP_FLAG.FIN) ? 1 : 0);
  };
  send(true, TCP_FLAG.SYN, new Uint8Array(0));
  send(false, TCP_FLAG.SYN | TCP_FLAG.ACK, new Uint8Array(0));
  send(true, TCP_FLAG.ACK, new Uint8Array(0));
  for (const segment of segments) {
    send(segment.from === 'client', segment.flags, segment.payload);
    send(segment.from !== 'client', TCP_FLAG.ACK, new Uint8Array(0));
  }
  return packets;
}

function pcap(packets: readonly Buffer[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(LINKTYPE_RAW, 20);
  const records = packets.map((packet, i) => {
    const record = Buffer.alloc(16);
    record.writeUInt32LE(1_700_000_000, 0);
    record.writeUInt32LE(i * 1000, 4);
    record.writeUInt32LE(packet.length, 8);
    record.writeUInt32LE(packet.length, 12);
    return Buffer.concat([record, packet]);
  });
  return Buffer.concat([header, ...records]);
}

const attributes: PathAttributes = {
  origin: 'igp',
  asPath: [
    { type: 'sequence', asns: [65001, 4200000000] },
    { type: 'set', asns: [65010, 65011] },
  ],
  nextHop: parseIp('10.0.0.1'),
  med: 50,
  localPref: 200,
  atomicAggregate: true,
  aggregator: { asn: 4200000000, address: parseIp('10.0.0.1') },
  communities: [0xfde90064, 0xffffff01],
  originatorId: 0x0a000009,
  clusterList: [0x0a0000fe],
  unknown: [{ flags: 0xc0, typeCode: 32, value: Uint8Array.from(Buffer.from('fa56ea00' + '00000001' + '00000002', 'hex')) }],
};

function session(fourOctetAsn: boolean, messages: readonly BgpMessage[]): Segment[] {
  const ctx: CodecContext = { fourOctetAsn };
  return messages.map((message) => ({ from: 'client', flags: TCP_FLAG.PSH | TCP_FLAG.ACK, payload: encodeMessage(message, ctx) }));
}

const fourOctetSession = session(true, [
  {
    type: 'open',
    version: 4,
    asn: 4200000000,
    holdTimeSeconds: 90,
    routerId: 0x0a000001,
    capabilities: [
      { code: 'multiprotocol', family: 'ipv4-unicast' },
      { code: 'multiprotocol', family: 'ipv6-unicast' },
      { code: 'route-refresh' },
      { code: 'enhanced-route-refresh' },
      { code: 'four-octet-asn', asn: 4200000000 },
      { code: 'graceful-restart', restarting: true, restartTimeSeconds: 120, families: [{ family: 'ipv4-unicast', forwardingPreserved: true }, { family: 'ipv6-unicast', forwardingPreserved: false }] },
    ],
  },
  { type: 'keepalive' },
  { type: 'update', withdrawn: [parseIpNet('10.99.0.0/16')], attributes, nlri: [parseIpNet('10.1.0.0/16'), parseIpNet('192.0.2.128/25')] },
  {
    type: 'update',
    withdrawn: [],
    attributes: { origin: 'igp', asPath: [{ type: 'sequence', asns: [4200000000] }], nextHop: parseIp('2001:db8::1'), linkLocalNextHop: parseIp('fe80::1'), med: 10 },
    nlri: [],
    mpReach: { family: 'ipv6-unicast', nlri: [parseIpNet('2001:db8:1::/48'), parseIpNet('2001:db8:2::1/128')] },
  },
  { type: 'update', withdrawn: [], nlri: [], mpUnreach: { family: 'ipv6-unicast', withdrawn: [parseIpNet('2001:db8:3::/48')] } },
  { type: 'update', withdrawn: [], nlri: [], mpUnreach: { family: 'ipv6-unicast', withdrawn: [] } },
  { type: 'route-refresh', family: 'ipv6-unicast', subtype: 0 },
  { type: 'route-refresh', family: 'ipv4-unicast', subtype: 1 },
  { type: 'notification', code: 6, subcode: 2, data: new Uint8Array(0) },
]);

const twoOctetSession = session(false, [
  { type: 'open', version: 4, asn: 65001, holdTimeSeconds: 180, routerId: 0x0a000001, capabilities: [{ code: 'multiprotocol', family: 'ipv4-unicast' }, { code: 'route-refresh' }] },
  { type: 'update', withdrawn: [], attributes, nlri: [parseIpNet('10.2.0.0/16')] },
  { type: 'keepalive' },
]);

function findTshark(): string {
  const which = spawnSync('sh', ['-c', 'command -v tshark'], { encoding: 'utf8' });
  const path = which.stdout.trim();
  if (which.status !== 0 || path === '') {
    assert.fail('tshark is not installed: run `DEBIAN_FRONTEND=noninteractive apt-get install -y tshark` (Debian package "tshark")');
  }
  return path;
}

test('tshark dissects every message we encode without a malformed packet', () => {
  const tshark = findTshark();
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-bgp-pcap-'));
  try {
    const file = join(dir, 'bgp.pcap');
    writeFileSync(file, pcap([...connection(40000, fourOctetSession), ...connection(40001, twoOctetSession)]));
    const result = spawnSync(tshark, ['-r', file, '-d', 'tcp.port==179,bgp', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-V'], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(result.status, 0, result.stderr);
    const out = result.stdout;
    for (const bad of ['Malformed', 'Expert Info (Error', '[Malformed Packet']) assert.ok(!out.includes(bad), `tshark reported "${bad}":\n${out}`);
    for (const expected of [
      'Type: OPEN Message',
      'Type: UPDATE Message',
      'Type: KEEPALIVE Message',
      'Type: NOTIFICATION Message',
      'Type: ROUTE-REFRESH Message',
      'Multiprotocol extensions capability',
      'Route refresh capability',
      'Enhanced route refresh capability',
      'Support for 4-octet AS number capability',
      'Graceful Restart capability',
      'Path Attribute - ORIGIN',
      'Path Attribute - AS_PATH',
      'Path Attribute - NEXT_HOP',
      'Path Attribute - MULTI_EXIT_DISC',
      'Path Attribute - LOCAL_PREF',
      'Path Attribute - ATOMIC_AGGREGATE',
      'Path Attribute - AGGREGATOR',
      'Path Attribute - COMMUNITIES',
      'Path Attribute - ORIGINATOR_ID',
      'Path Attribute - CLUSTER_LIST',
      'Path Attribute - MP_REACH_NLRI',
      'Path Attribute - MP_UNREACH_NLRI',
      'Path Attribute - AS4_PATH',
      'Path Attribute - AS4_AGGREGATOR',
      '2001:db8:1::/48',
      'fe80::1',
      '10.1.0.0/16',
    ]) {
      assert.ok(out.includes(expected), `tshark output lacks "${expected}":\n${out}`);
    }
    // Every BGP message we wrote came out as one.
    const messages = out.split('\n').filter((line) => /^\s+Type: [A-Z-]+ Message \(\d+\)/.test(line)).length;
    assert.equal(messages, fourOctetSession.length + twoOctetSession.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
