/**
 * The route encoder's repeat path (an IPv4 route of the previous one's shape is written as
 * a patched copy of the previous message) against its full path as the oracle: every route
 * of a mixed batch, encoded alone, must give the bytes the batch holds for it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Ip, type IpNet, parseIp, parseIpNet } from '../../src/lib/ip.js';
import { decodeMessages, encodeMessage, NLM_F_ACK, NLMSG_ERROR } from '../../src/lib/netlink/codec.js';
import { type RouteOp, Rtnl, RTN_BLACKHOLE } from '../../src/lib/netlink/rtnl.js';
import { NetlinkSocket, type NetlinkTransport } from '../../src/lib/netlink/socket.js';
import { prng } from '../bgp/rib-fixtures.js';

/** Keeps every datagram sent and ACKs its last message, as the kernel does when all succeed. */
class RecordingKernel implements NetlinkTransport {
  readonly datagrams: Buffer[] = [];
  private pending: Buffer[] = [];

  send(datagram: Buffer): void {
    this.datagrams.push(Buffer.from(datagram));
    const last = decodeMessages(datagram).at(-1);
    assert.ok(last);
    this.pending.push(encodeMessage(NLMSG_ERROR, 0, last.seq, Buffer.alloc(20)));
  }

  recv(into: Buffer): number {
    const next = this.pending.shift();
    assert.ok(next, 'read past the last reply');
    next.copy(into);
    return next.length;
  }

  setsockopt(): void {}
  close(): void {}
}

/** Each message's bytes with its sequence number and ACK flag cleared (they differ by position). */
function normalized(datagrams: readonly Buffer[]): string[] {
  const out: string[] = [];
  for (const datagram of datagrams) {
    let offset = 0;
    while (offset < datagram.length) {
      const length = datagram.readUInt32LE(offset);
      const message = Buffer.from(datagram.subarray(offset, offset + length));
      message.writeUInt16LE(message.readUInt16LE(6) & ~NLM_F_ACK, 6);
      message.writeUInt32LE(0, 8);
      out.push(message.toString('hex'));
      offset += (length + 3) & ~3;
    }
  }
  return out;
}

async function encode(ops: readonly RouteOp[]): Promise<string[]> {
  const kernel = new RecordingKernel();
  const rtnl = new Rtnl(new NetlinkSocket(0, kernel));
  assert.deepEqual(await rtnl.applyRoutesInBackground(ops), []);
  return normalized(kernel.datagrams);
}

test('a mixed batch encodes every route exactly as the route alone does (seeded)', async () => {
  const random = prng(5);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const gateways: (Ip | undefined)[] = [parseIp('198.18.0.1'), parseIp('198.18.0.2'), undefined];
  const ops: RouteOp[] = [];
  for (let i = 0; i < 3000; i++) {
    const length = pick([8, 16, 24, 24, 24, 32, 0]);
    const value = BigInt(Math.floor(random() * 2 ** 32)) & (length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(32 - length));
    const dst: IpNet | undefined = length === 0 && random() < 0.5 ? undefined : { family: 4, value, prefixLength: length };
    // Runs of one shape (what a table transfer looks like), broken by other shapes.
    const shape = random() < 0.8 ? 0 : Math.floor(random() * 6);
    const gateway = shape === 1 ? pick(gateways) : gateways[0];
    const route: RouteOp['route'] = { family: 4, protocol: 88, table: shape === 2 ? 100 : 254, ...(dst ? { dst } : {}), ...(gateway ? { gateway } : {}) };
    if (shape === 3) route.type = RTN_BLACKHOLE;
    if (shape === 4) Object.assign(route, { oif: 2, onlink: true, priority: 20 });
    if (shape === 5) Object.assign(route, { mtu: 1480, prefsrc: parseIp('198.18.0.9') });
    ops.push({ op: random() < 0.9 ? 'add' : pick(['replace', 'delete'] as const), route });
  }
  // An IPv6 route between IPv4 ones of one shape must not be patched as IPv4, nor break the next.
  ops.splice(10, 0, { op: 'add', route: { family: 6, dst: parseIpNet('fd00:1::/64'), gateway: parseIp('fd00::1'), protocol: 88 } });

  const alone = (await Promise.all(ops.map((op) => encode([op])))).flat();
  assert.deepEqual(await encode(ops), alone, 'in one datagram');
});
