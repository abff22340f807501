/**
 * Prints how long the RIB takes for the sizes the brief names; not a test (no assertions on
 * wall-clock time, which depends on the machine). Run: node build/test/bgp/rib-timing.js
 *
 * 1. ingest: 100k IPv4 prefixes in 200 UPDATEs of 500 NLRI, one attributes object per UPDATE
 * 2. export: those 100k to 50 route-reflector clients, each drained once (journal path: the
 *    clients were up before the routes arrived)
 * 3. export: the same to 50 clients added after the routes (full-table path)
 */
import { Rib } from '../../src/bgp/rib/rib.js';
import { announce, attrs, ip, peer, rid, seq, slash24s } from './rib-fixtures.js';

/** Wall and CPU time: on a shared machine the CPU time is the steadier number. */
function time<T>(label: string, fn: () => T): T {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const result = fn();
  const cpu = process.cpuUsage(cpuStart);
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  console.log(`${label}: ${wallMs.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`);
  return result;
}

const prefixes = slash24s(100_000);
const source = peer('198.51.100.1', { type: 'ebgp', asn: 65100 });
const updates = Array.from({ length: 200 }, (_, i) =>
  announce(prefixes.slice(i * 500, (i + 1) * 500), attrs({ asPath: seq(65100, 64512 + i), nextHop: ip('198.51.100.1'), med: i })),
);
const options = { localAddress: { 'ipv4-unicast': ip('10.0.0.1'), 'ipv6-unicast': undefined }, families: ['ipv4-unicast' as const] };
const clients = (first: number) => Array.from({ length: 50 }, (_, i) => peer(`192.0.2.${first + i}`, { type: 'ibgp', rrClient: true }));

for (const run of [1, 2, 3]) {
  console.log(`run ${run}`);
  {
    const rib = new Rib({ asn: 65000, routerId: rid('10.0.0.1'), clusterId: rid('10.0.0.1') });
    rib.addPeer(source, options);
    time('  ingest 100k prefixes / 200 UPDATEs, no other peers', () => {
      for (const update of updates) rib.receive(source.id, update);
    });
  }
  {
    const rib = new Rib({ asn: 65000, routerId: rid('10.0.0.1'), clusterId: rid('10.0.0.1') });
    rib.addPeer(source, options);
    const early = clients(1);
    for (const client of early) rib.addPeer(client, options);
    for (const client of early) rib.drain(client.id);
    time('  ingest 100k with 50 clients up (change log)', () => {
      for (const update of updates) rib.receive(source.id, update);
    });
    const sent = time('  drain 50 clients (deltas)', () => early.reduce((n, client) => n + rib.drain(client.id).length, 0));
    console.log(`    ${sent} UPDATEs in all`);
    const late = clients(100);
    for (const client of late) rib.addPeer(client, options);
    time('  drain 50 new clients (full table)', () => late.reduce((n, client) => n + rib.drain(client.id).length, 0));
    time('  withdraw all 100k (removePeer)', () => rib.removePeer(source.id));
    time('  drain 100 clients (withdrawals)', () => [...early, ...late].reduce((n, client) => n + rib.drain(client.id).length, 0));
  }
}
