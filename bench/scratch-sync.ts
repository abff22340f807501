import { parseIpNet, type Ip } from '../src/lib/ip.js';
import { Nftables } from '../src/lib/nftables/nftables.js';
import type { ProxyConfig } from '../src/proxy/config.js';
import { servicePortKey, type Endpoint, type ServiceEntry, type ServicePort } from '../src/proxy/model.js';
import { NftablesSink } from '../src/proxy/nftables/sink.js';
const CONFIG: ProxyConfig = { clusterCidrs: new Map([[4, parseIpNet('10.128.0.0/9')]]), masqueradeAll: false, masqueradeMark: 0x4000, families: [4] };
const ip = (base: number, o: number): Ip => ({ family: 4, value: BigInt(base + o) });
const N = Number(process.env.N ?? 10000);
const entries = new Map<string, ServiceEntry>();
for (let i = 0; i < N; i++) {
  const port: ServicePort = { name: `bench/s${i}:http`, namespace: 'bench', service: `s${i}`, portName: 'http', protocol: 'TCP', port: 80, clusterIPs: [ip(0x0a600001, i)], externalIPs: [], loadBalancerIPs: [], externalPolicyLocal: false, internalPolicyLocal: false };
  const eps: Endpoint[] = [0, 1].map((k) => ({ ip: ip(0x0a800001, i * 2 + k), port: 8080, ready: true, serving: true, terminating: false, local: false }));
  entries.set(`bench/s${i}`, { ports: [port], endpoints: new Map([[servicePortKey(port), eps]]) });
}
const nft = new Nftables();
const sink = new NftablesSink(CONFIG, nft);
const orig = nft.apply.bind(nft);
let applyMs = 0;
nft.apply = (t) => { const s = performance.now(); orig(t); applyMs = performance.now() - s; };
let t = performance.now(); sink.sync(entries, 'all'); console.log(`full ${(performance.now() - t).toFixed(0)} ms, apply ${applyMs.toFixed(0)} ms`);
for (let k = 0; k < 5; k++) {
  const port: ServicePort = { name: `bench/x${k}:http`, namespace: 'bench', service: `x${k}`, portName: 'http', protocol: 'TCP', port: 80, clusterIPs: [ip(0x0a700001, k)], externalIPs: [], loadBalancerIPs: [], externalPolicyLocal: false, internalPolicyLocal: false };
  entries.set(`bench/x${k}`, { ports: [port], endpoints: new Map([[servicePortKey(port), [{ ip: ip(0x0a900001, k), port: 8080, ready: true, serving: true, terminating: false, local: false }]]]) });
  t = performance.now(); sink.sync(entries, new Set([`bench/x${k}`])); console.log(`one ${(performance.now() - t).toFixed(1)} ms, apply ${applyMs.toFixed(1)} ms`);
}
// split apply: encode vs kernel
import { encodeBatch } from '../src/lib/nftables/wire.js';
import { TableBook } from '../src/lib/nftables/book.js';
import { NFT_TABLE, staticContribution } from '../src/proxy/nftables/rules.js';
import { EndpointBlockAllocator, serviceContribution } from '../src/proxy/nftables/sink.js';
{
  const nft2 = new Nftables();
  nft2.apply([{ family: 'ip', table: NFT_TABLE, operations: [{ op: 'add-table' }, { op: 'delete-table' }] }]);
  let t0 = performance.now();
  const book = new TableBook('ip', NFT_TABLE);
  const alloc = new EndpointBlockAllocator();
  const changes = new Map<string, any>([['', staticContribution(4, CONFIG)]]);
  for (const [k, e] of entries) { const { blocks, done } = alloc.forService(k); changes.set(k, serviceContribution(4, e, CONFIG, blocks)); done(); }
  const tContrib = performance.now() - t0; t0 = performance.now();
  const plan = book.plan(changes, true);
  const tPlan = performance.now() - t0; t0 = performance.now();
  const sock = (nft2 as any).socket;
  const first = sock.peekSeq();
  const batch = encodeBatch([plan.transaction], first);
  sock.nextSeq(batch.count + 2);
  const tEnc = performance.now() - t0; t0 = performance.now();
  const f = sock.sendBatch(batch.datagram, first, (first + batch.count) >>> 0);
  const tSend = performance.now() - t0;
  console.log(`split: contributions ${tContrib.toFixed(0)} plan ${tPlan.toFixed(0)} encode ${tEnc.toFixed(0)} send ${tSend.toFixed(0)} ms; ${batch.count} messages ${(batch.datagram.length/1e6).toFixed(1)} MB failures ${f.size}`);
}
