/**
 * The userspace IPIP tunnel between two simulated nodes, each with a pod behind a veth:
 *
 *   [pod1 10.244.1.2]--vpod--[n1 198.18.0.11 pipip0]--fab0--[n2 198.18.0.12 pipip0]--vpod--[pod2 10.244.2.2]
 *                                                        |
 *                                               [n3 198.18.0.13, .14]  a "kernel node": no tunnel
 *                                                                      process, packets hand-built
 *
 * Pods ping and move TCP data both ways; a capture on n1's eth0 is decoded by tshark (only
 * protocol 4 between the node addresses, inner headers and checksums intact); n3 plays a
 * Linux node with tunl0 by hand-building the packets the kernel's ipip sends; an unknown outer
 * source is dropped; a withdrawn block is answered with ICMP host unreachable.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kernelIpipAvailable, IpipTunnel } from '../../src/bgp/ipip/index.js';
import { makeFabric, plug } from '../../src/cli/cluster/topology.js';
import { parseIp, parseIpNet } from '../../src/lib/ip.js';
import { tcpSocketIn, withNetns } from '../../src/lib/netns.js';
import * as libc from '../../src/lib/sys/libc.js';
import { writeSysctl } from '../../src/lib/sysctl.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const lab = new Lab('ipip');
const N1 = '198.18.0.11';
const N2 = '198.18.0.12';
const N3 = '198.18.0.13';
const STRANGER = '198.18.0.14';
const POD1 = '10.244.1.2';
const POD2 = '10.244.2.2';
const N3_POD = '10.244.3.5';
const ECHO_PORT = 7777;

interface Topology {
  fabric: string;
  n1: string;
  n2: string;
  n3: string;
  pod1: string;
  pod2: string;
  t1: IpipTunnel;
  t2: IpipTunnel;
}

let topo: Topology;
const children = new Set<ChildProcess>();

function sh(netns: string, line: string): string {
  return lab.exec(netns, 'sh', ['-c', line]);
}

function addPod(node: string, pod: string, block: number): void {
  sh(node, `ip link add vpod mtu 1480 type veth peer name eth0 mtu 1480 netns ${pod}`);
  sh(node, `ip addr add 10.244.${block}.1/24 dev vpod && ip link set vpod up`);
  sh(pod, `ip addr add 10.244.${block}.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.244.${block}.1`);
}

function ping(netns: string, ip: string, count = 1): { ok: boolean; output: string } {
  const result = spawnSync('ip', ['netns', 'exec', netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', ip], { encoding: 'utf8' });
  return { ok: result.status === 0, output: result.stdout + result.stderr };
}

before(async () => {
  const fabric = lab.netns('fab');
  makeFabric(fabric, 1);
  const [n1, n2, n3] = ['n1', 'n2', 'n3'].map((name) => lab.netns(name)) as [string, string, string];
  const [pod1, pod2] = ['pod1', 'pod2'].map((name) => lab.netns(name)) as [string, string];
  plug(fabric, 0, 'n1', n1, 'eth0', parseIpNet(`${N1}/24`));
  plug(fabric, 0, 'n2', n2, 'eth0', parseIpNet(`${N2}/24`));
  plug(fabric, 0, 'n3', n3, 'eth0', parseIpNet(`${N3}/24`));
  sh(n3, `ip addr add ${STRANGER}/24 dev eth0`);
  for (const netns of [n1, n2]) withNetns(lab.path(netns), () => writeSysctl('net.ipv4.ip_forward', '1'));
  addPod(n1, pod1, 1);
  addPod(n2, pod2, 2);
  const t1 = new IpipTunnel({ netns: n1, underlayAddress: parseIp(N1), block: parseIpNet('10.244.1.0/24') });
  const t2 = new IpipTunnel({ netns: n2, underlayAddress: parseIp(N2), block: parseIpNet('10.244.2.0/24') });
  topo = { fabric, n1, n2, n3, pod1, pod2, t1, t2 };
  await t1.start();
  await t2.start();
  // What the BGP speaker would do: learn the blocks, point them at the tunnel device.
  t1.setPeers(new Map([[parseIpNet('10.244.2.0/24'), parseIp(N2)]]));
  t2.setPeers([
    { block: parseIpNet('10.244.1.0/24'), underlay: parseIp(N1) },
    { block: parseIpNet('10.244.3.0/24'), underlay: parseIp(N3) },
  ]);
  sh(n1, 'ip route add 10.244.2.0/24 dev pipip0 && ip route add 10.244.3.0/24 dev pipip0');
  sh(n2, 'ip route add 10.244.1.0/24 dev pipip0 && ip route add 10.244.3.0/24 dev pipip0');
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await topo?.t1.stop();
  await topo?.t2.stop();
  lab.cleanup();
});

/** An echo server in `netns` (a child node process): resolves once it listens. */
async function echoServer(netns: string): Promise<ChildProcess> {
  const script = `require('net').createServer((s) => s.pipe(s)).listen(${ECHO_PORT}, () => console.log('listening'))`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  await poll(`echo server in ${netns}`, () => out.includes('listening'), { timeoutMs: 10_000 });
  return child;
}

/** Sends `bytes` random bytes from `fromNetns` through an echo server; returns both hashes. */
async function echoTransfer(fromNetns: string, toNetns: string, toIp: string, bytes: number): Promise<{ sent: string; received: string; length: number }> {
  const server = await echoServer(toNetns);
  try {
    const data = randomBytes(bytes);
    const socket = tcpSocketIn(fromNetns, false);
    const hash = createHash('sha256');
    let length = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`echo transfer to ${toIp} timed out after ${length} bytes`)), 60_000);
      socket.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      socket.on('end', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.connect(ECHO_PORT, toIp, () => socket.end(data));
    });
    socket.destroy();
    return { sent: createHash('sha256').update(data).digest('hex'), received: hash.digest('hex'), length };
  } finally {
    server.kill('SIGKILL');
    children.delete(server);
  }
}

describe('IPIP in userspace between two nodes', () => {
  test('the kernel probe agrees with iproute2, and this kernel has no ipip (so userspace runs)', () => {
    const scratch = lab.netns('probe');
    const iproute = spawnSync('ip', ['netns', 'exec', scratch, 'ip', 'link', 'add', 'p0', 'type', 'ipip'], { encoding: 'utf8' });
    assert.equal(kernelIpipAvailable(), iproute.status === 0, `ip link add type ipip: ${iproute.stderr.trim()}`);
    assert.equal(kernelIpipAvailable(scratch), iproute.status === 0);
  });

  test('the device has MTU underlay − 20, the block’s first address, and is up', () => {
    assert.equal(topo.t1.mtu, 1480);
    const link = JSON.parse(sh(topo.n1, 'ip -j addr show dev pipip0')) as { mtu: number; operstate: string; flags: string[]; addr_info: { local: string; prefixlen: number; family: string }[] }[];
    assert.equal(link[0]?.mtu, 1480);
    assert.ok(link[0]?.flags.includes('UP'));
    assert.deepEqual(link[0]?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['10.244.1.0/32']);
  });

  test('pods ping each other both ways', () => {
    const there = ping(topo.pod1, POD2, 3);
    assert.ok(there.ok, there.output);
    const back = ping(topo.pod2, POD1, 3);
    assert.ok(back.ok, back.output);
  });

  test('TCP: 8 MB echoed pod1 → pod2 → pod1 and pod2 → pod1 → pod2 arrive intact; TSO and GRO paths ran', async () => {
    const before1 = topo.t1.stats();
    const before2 = topo.t2.stats();
    for (const [from, to, ip] of [[topo.pod1, topo.pod2, POD2], [topo.pod2, topo.pod1, POD1]] as const) {
      const result = await echoTransfer(from, to, ip, 8 * 1024 * 1024);
      assert.equal(result.length, 8 * 1024 * 1024);
      assert.equal(result.received, result.sent, `sha256 of the echo from ${ip}`);
    }
    const after1 = topo.t1.stats();
    const after2 = topo.t2.stats();
    assert.ok(after1.superPackets > before1.superPackets, 'n1 cut TCP super-packets in userspace');
    assert.ok(after2.superPackets > before2.superPackets, 'n2 cut TCP super-packets in userspace');
    assert.ok(after2.coalescedRecords > before2.coalescedRecords, 'n2 coalesced segments into super-packets');
    assert.ok(after1.coalescedSegments - before1.coalescedSegments > 2 * (after1.coalescedRecords - before1.coalescedRecords), 'records hold several segments each');
    assert.equal(after1.droppedUnknownPeer + after2.droppedUnknownPeer, before1.droppedUnknownPeer + before2.droppedUnknownPeer);
  });

  test('on the underlay there is only IP protocol 4 between the node addresses, carrying intact pod packets', async () => {
    const file = join(lab.tempDir('ipip-pcap'), 'n1-eth0.pcap');
    const tcpdump = spawn('ip', ['netns', 'exec', topo.n1, 'tcpdump', '-i', 'eth0', '-n', '-U', '--immediate-mode', '-B', '32768', '-s', '0', '-w', file, 'ip'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(tcpdump);
    let stderr = '';
    tcpdump.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await poll('tcpdump to listen', () => stderr.includes('listening on'), { timeoutMs: 10_000 });
    assert.ok(ping(topo.pod1, POD2, 2).ok);
    const echoed = 1024 * 1024;
    const transfer = await echoTransfer(topo.pod1, topo.pod2, POD2, echoed);
    assert.equal(transfer.received, transfer.sent);
    // tcpdump drops what it has not read when it is stopped: send one last ping with a
    // pattern of our own and stop only once its reply is in the file — packets are written
    // in order, so everything before it is there too.
    const sentinel = randomBytes(16);
    await poll('the sentinel ping in the capture', () => {
      if (readFileSync(file).includes(sentinel)) return true;
      spawnSync('ip', ['netns', 'exec', topo.pod1, 'ping', '-c', '1', '-W', '1', '-p', sentinel.toString('hex'), POD2]);
      return readFileSync(file).includes(sentinel);
    }, { timeoutMs: 10_000, intervalMs: 50 });
    const exited = new Promise((resolve) => tcpdump.once('exit', resolve));
    tcpdump.kill('SIGINT');
    await exited;
    children.delete(tcpdump);

    const fields = ['ip.proto', 'ip.src', 'ip.dst', 'ip.ttl', 'ip.flags.df', 'ip.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status', 'tcp.len'];
    const decoded = spawnSync('tshark', ['-r', file, '-n', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|', '-E', 'aggregator=,', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
    assert.equal(decoded.status, 0, decoded.stderr);
    const rows = decoded.stdout.trim().split('\n').map((line) => line.split('|').map((cell) => cell.split(',')));
    let tcpBytes = 0;
    let icmp = 0;
    for (const [protos, sources, destinations, ttls, dfs, ipChecks, tcpChecks, icmpChecks, tcpLengths] of rows as string[][][]) {
      const line = `${protos} ${sources} > ${destinations}`;
      assert.equal(protos?.[0], '4', `outer protocol is IPIP: ${line}`);
      assert.deepEqual([sources?.[0], destinations?.[0]].sort(), [N1, N2], `outer addresses are the nodes: ${line}`);
      assert.deepEqual([sources?.[1], destinations?.[1]].sort(), [POD1, POD2], `inner addresses are the pods: ${line}`);
      assert.equal(ttls?.[0], ttls?.[1], `outer TTL inherits the inner one (tunl0 ttl inherit): ${line}`);
      assert.equal(dfs?.[0], dfs?.[1], `outer DF copies the inner one: ${line}`);
      assert.deepEqual(ipChecks, ['1', '1'], `outer and inner IP header checksums good: ${line}`);
      if (protos?.[1] === '6') {
        tcpBytes += Number(tcpLengths?.[0] ?? 0);
        assert.deepEqual(tcpChecks, ['1'], `inner TCP checksum good: ${line}`);
      } else if (protos?.[1] === '1') {
        icmp++;
        assert.deepEqual(icmpChecks, ['1'], `inner ICMP checksum good: ${line}`);
      }
    }
    // The echo crossed n1's eth0 twice (out and back); retransmissions only add. Counting
    // payload bytes, not packets, holds whether or not the receive side's GRO merged them.
    assert.ok(tcpBytes >= 2 * echoed, `${tcpBytes} inner TCP payload bytes in ${rows.length} packets (want ≥ ${2 * echoed}); tcpdump: ${stderr.trim()}`);
    assert.ok(icmp >= 6, `${icmp} ICMP packets seen (three pings and their replies)`);
  });
});

// ---- a hand-built "kernel" peer ----

function checksum(bytes: Buffer, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (bytes[i]! << 8) | (i + 1 < end ? bytes[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4Header(length: number, id: number, df: boolean, ttl: number, protocol: number, source: string, destination: string): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(length, 2);
  header.writeUInt16BE(id, 4);
  header.writeUInt16BE(df ? 0x4000 : 0, 6);
  header[8] = ttl;
  header[9] = protocol;
  header.writeUInt32BE(Number(parseIp(source).value), 12);
  header.writeUInt32BE(Number(parseIp(destination).value), 16);
  header.writeUInt16BE(checksum(header, 0, 20), 10);
  return header;
}

/**
 * What Linux's tunl0 emits for an ICMP echo request a pod behind it sends (ping sets DF):
 * outer header with TTL inherited from the (already decremented) inner packet, DF copied, TOS
 * 0, protocol 4 — byte for byte, checksum included.
 */
function kernelStylePacket(outerSource: string, echoId: number): Buffer {
  const icmp = Buffer.alloc(8 + 32, 0x61);
  icmp[0] = 8;
  icmp[1] = 0;
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(echoId, 4);
  icmp.writeUInt16BE(1, 6);
  icmp.writeUInt16BE(checksum(icmp, 0, icmp.length), 2);
  const innerTtl = 63;
  const inner = Buffer.concat([ipv4Header(20 + icmp.length, 0x1234, true, innerTtl, 1, N3_POD, POD2), icmp]);
  return Buffer.concat([ipv4Header(20 + inner.length, 0x5678, true, innerTtl, 4, outerSource, N2), inner]);
}

describe('wire interop with a kernel IPIP node (n3, packets built by hand)', () => {
  let sendFd = -1;
  let receiveFd = -1;

  before(() => {
    withNetns(lab.path(topo.n3), () => {
      sendFd = libc.socket(libc.AF_INET, libc.SOCK_RAW | libc.SOCK_CLOEXEC, libc.IPPROTO_RAW);
      receiveFd = libc.socket(libc.AF_INET, libc.SOCK_RAW | libc.SOCK_CLOEXEC | libc.SOCK_NONBLOCK, libc.IPPROTO_IPIP);
    });
  });

  after(() => {
    for (const fd of [sendFd, receiveFd]) if (fd >= 0) libc.close(fd);
  });

  function send(packet: Buffer): void {
    const sent = libc.packetIo().sendto(sendFd, packet, packet.length, libc.sockaddrIn(Number(parseIp(N2).value), 0));
    assert.equal(sent, packet.length);
  }

  /** Next IPIP packet n3 receives carrying an ICMP echo reply with this id, if one is queued. */
  function receiveReply(echoId: number): Buffer | undefined {
    const io = libc.packetIo();
    const buffer = Buffer.alloc(65536);
    for (;;) {
      const length = io.recv(receiveFd, buffer, buffer.length);
      if (length < 0) return undefined;
      const packet = buffer.subarray(0, length);
      const inner = (packet[0]! & 0x0f) * 4;
      const icmp = inner + (packet[inner]! & 0x0f) * 4;
      if (packet[inner + 9] === 1 && packet[icmp] === 0 && packet.readUInt16BE(icmp + 4) === echoId) return Buffer.from(packet);
    }
  }

  test('a kernel-style IPIP packet reaches the pod, and the reply comes back as kernel-style IPIP', async () => {
    const echoId = 0x4242;
    const reply = await poll('an IPIP echo reply at n3', () => {
      send(kernelStylePacket(N3, echoId));
      return receiveReply(echoId);
    }, { timeoutMs: 10_000, intervalMs: 200 });
    const outer = reply.subarray(0, 20);
    const inner = reply.subarray(20);
    assert.equal(outer[0], 0x45, 'outer: IPv4, no options');
    assert.equal(outer[9], 4, 'outer protocol 4');
    assert.equal(checksum(outer, 0, 20), 0, 'outer header checksum');
    assert.equal(outer.readUInt16BE(2), reply.length, 'outer total length');
    assert.deepEqual([outer.subarray(12, 16), outer.subarray(16, 20)].map((a) => a.join('.')), [N2, N3], 'outer n2 → n3');
    assert.equal(outer[8], inner[8], 'outer TTL inherited from the inner packet');
    assert.equal(outer.readUInt16BE(6) & 0x4000, inner.readUInt16BE(6) & 0x4000, 'outer DF copied from the inner packet');
    assert.deepEqual([inner.subarray(12, 16), inner.subarray(16, 20)].map((a) => a.join('.')), [POD2, N3_POD], 'inner pod2 → n3’s pod, unmodified');
    assert.equal(checksum(inner, 0, 20), 0, 'inner header checksum');
    assert.equal(checksum(inner, 20, inner.readUInt16BE(2)), 0, 'inner ICMP checksum');
    assert.equal(inner[8], 63, 'inner TTL: pod2 sent 64, n2 forwarded it once; the tunnel does not touch it');
  });

  test('an IPIP packet from an address that is no node is dropped', async () => {
    const echoId = 0x4343;
    const before = topo.t2.stats().droppedUnknownPeer;
    send(kernelStylePacket(STRANGER, echoId));
    await poll('n2 to drop the stranger’s packet', () => topo.t2.stats().droppedUnknownPeer > before, { timeoutMs: 10_000 });
    assert.equal(receiveReply(echoId), undefined, 'no reply to a dropped packet');
  });
});

describe('peer table updates', () => {
  test('a withdrawn block gets ICMP host unreachable and nothing on the wire; re-adding it restores traffic', async () => {
    const block = parseIpNet('10.244.2.0/24');
    const sentBefore = topo.t1.stats().sentPackets;
    assert.equal(topo.t1.removePeer(block), true);
    const result = ping(topo.pod1, POD2, 1);
    assert.equal(result.ok, false);
    assert.match(result.output, /From 10\.244\.1\.0 icmp_seq=1 Destination Host Unreachable/);
    // The loop bumps icmpUnreachableSent after its write(2) returns, so ping can see the
    // reply before the counter moves: wait for it rather than read it once.
    await poll('n1 to count the drop and the ICMP it sent', () => {
      const stats = topo.t1.stats();
      return stats.droppedNoPeer > 0 && stats.icmpUnreachableSent > 0;
    }, { timeoutMs: 10_000 });
    assert.equal(topo.t1.stats().sentPackets, sentBefore, 'nothing was sent to the withdrawn block’s node');
    topo.t1.setPeer(block, parseIp(N2));
    const back = ping(topo.pod1, POD2, 1);
    assert.ok(back.ok, back.output);
  });
});
