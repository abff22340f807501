/**
 * `pontoon trace --probe` in the lab: sends one real packet like the traced one and captures
 * (tcpdump, one per interface the computed path crosses, all started before the packet) where
 * it was actually seen, then compares that with the computed path. The destination is
 * captured too when the computed path dies before it, so "computed: dies, really: arrives"
 * is caught as well as the converse.
 *
 * The packet leaves from a fixed source port so the captures can tell it from other traffic
 * even after DNAT changes its destination; encapsulated hops are matched by their outer
 * protocol (VXLAN/flannel-udp port, IPIP), which other traffic between the same nodes can
 * also match — a probe "seen" there is only as specific as that.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterState } from './cluster/state.js';
import type { TraceResult } from '../debug/trace/packet.js';
import type { TraceOutcome } from './trace-outcome.js';

export type ProbeReport =
  | { supported: false; why: string }
  | { supported: true; seen: { node: string; iface: string; seen: boolean; expected: boolean }[]; endpoint?: string; mismatch: boolean; mismatchDetail: string };

interface Capture {
  netns: string;
  label: string;
  iface: string;
  /** Capture filters, one per way a candidate endpoint crosses this interface. */
  filters: string[];
  expected: boolean;
  child?: ChildProcess;
  seen: boolean;
}

function outerFilter(step: string | undefined): string {
  if (step === 'ipip') return 'ip proto 4';
  if (step === 'udp') return 'udp port 8285';
  return 'udp port 8472 or udp port 4789';
}

export async function probePath(lab: ClusterState, outcome: TraceOutcome): Promise<ProbeReport> {
  const { result, src } = outcome;
  const first = result.hops.find((h) => h.at);
  const srcNetns = src.kind === 'pod' ? first?.at?.podNetns : lab.nodes.find((n) => n.name === src.node)?.netns;
  if (!srcNetns) return { supported: false, why: 'cannot tell which namespace sends the probe' };
  const proto = result.final.proto;
  if (proto === 'ipip') return { supported: false, why: 'cannot probe an IPIP packet' };
  const sport = 47000 + Math.floor(Math.random() * 1000);
  // ICMP: by destination (a node's source address is its route's, not necessarily its InternalIP).
  const inner = proto === 'icmp' ? `icmp[icmptype] = icmp-echo and dst host ${outcome.dst.ip}` : `${proto} and src port ${sport}`;
  const captures = new Map<string, Capture>();
  const keyOf = (netns: string, iface: string): string => `${netns}/${iface}`;
  const add = (netns: string, label: string, iface: string, filter: string): void => {
    const key = keyOf(netns, iface);
    const existing = captures.get(key);
    // Endpoints may cross one interface differently (a node's eth0 carries the plain packet
    // to a same-rack endpoint and an IPIP one to another rack): capture either.
    if (existing) {
      if (!existing.filters.includes(filter)) existing.filters.push(filter);
      return;
    }
    captures.set(key, { netns, label, iface, filters: [filter], expected: false, seen: false });
  };
  // A Service's packet goes to one endpoint the kernel picks at random: capture on every
  // candidate's path, then compare with the path of the endpoint that really got it.
  const variants = outcome.variants.length > 0 ? outcome.variants.map((v) => v.result) : [result];
  const keysOf = new Map<TraceResult, string[]>();
  for (const variant of variants) {
    const keys: string[] = [];
    // Each endpoint's own encapsulation: a Service's local endpoints have none, its remote
    // ones the backend's (the outer capture filter must be that one).
    const encap = variant.hops.find((h) => h.step === 'encap')?.detail.split(' ')[0]?.toLowerCase();
    for (const hop of variant.hops) {
      if (!hop.at) continue;
      const netns = hop.at.podNetns ?? lab.nodes.find((n) => n.name === hop.at?.node)?.netns;
      if (!netns) continue;
      add(netns, hop.at.podNetns ? hop.node : (hop.at.node ?? '?'), hop.at.iface, hop.at.outer ? outerFilter(encap === 'flannel' ? 'udp' : encap) : inner);
      keys.push(keyOf(netns, hop.at.iface));
    }
    keysOf.set(variant, keys);
  }
  if (!result.arrived && outcome.dstPodNetns) add(outcome.dstPodNetns, 'dst pod', 'eth0', inner);

  for (const capture of captures.values()) {
    const filter = capture.filters.length === 1 ? capture.filters[0]! : capture.filters.map((f) => `(${f})`).join(' or ');
    capture.child = spawn('ip', ['netns', 'exec', capture.netns, 'tcpdump', '-i', capture.iface, '-n', '-l', '-c', '1', '-p', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  try {
    await Promise.all([...captures.values()].map((c) => listening(c)));
    // "listening on" comes just before the capture is armed on every kernel we tried; margin.
    await sleep(300);
    await send(srcNetns, proto, outcome.dst.ip, outcome.dst.port ?? outcome.result.final.dport ?? 80, sport);
    await Promise.race([Promise.all([...captures.values()].map((c) => exited(c))), sleep(2000)]);
    await sleep(200);
  } finally {
    for (const capture of captures.values()) capture.child?.kill('SIGTERM');
  }
  // The variant that explains the captures best: fewest of its interfaces unseen plus
  // fewest sightings off it (a hairpin's path is a subset of a remote endpoint's, so the
  // last interface alone cannot tell them apart).
  const seenKeys = [...captures.entries()].filter(([, c]) => c.seen).map(([k]) => k);
  const cost = (v: TraceResult): number => {
    const keys = new Set(keysOf.get(v) ?? []);
    return [...keys].filter((k) => captures.get(k)?.seen !== true).length + seenKeys.filter((k) => !keys.has(k)).length;
  };
  const chosen = variants.reduce((best, v) => (cost(v) < cost(best) ? v : best), result);
  for (const key of keysOf.get(chosen) ?? []) {
    const capture = captures.get(key);
    if (capture) capture.expected = true;
  }
  const seen = [...captures.values()].map((c) => ({ node: c.label, iface: c.iface, seen: c.seen, expected: c.expected }));
  const missing = seen.filter((s) => s.expected && !s.seen).map((s) => `${s.node} ${s.iface} not seen`);
  const extra = seen.filter((s) => !s.expected && s.seen).map((s) => `${s.node} ${s.iface} seen off the computed path`);
  const endpoint = outcome.variants.find((v) => v.result === chosen)?.endpoint;
  return { supported: true, seen, ...(endpoint ? { endpoint } : {}), mismatch: missing.length + extra.length > 0, mismatchDetail: [...missing, ...extra].join('; ') };
}

function listening(capture: Capture): Promise<void> {
  return new Promise((resolve) => {
    const child = capture.child;
    if (!child) return resolve();
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().trim()) capture.seen = true;
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (/listening on/.test(text)) resolve();
    });
    child.on('exit', () => resolve());
    setTimeout(resolve, 5000).unref();
  });
}

function exited(capture: Capture): Promise<void> {
  return new Promise((resolve) => {
    if (!capture.child || capture.child.exitCode !== null) return resolve();
    capture.child.on('exit', () => resolve());
  });
}

/** Sends one packet from `netns`: a TCP SYN (connect), a UDP datagram or an ICMP echo. */
function send(netns: string, proto: string, dst: string, port: number, sport: number): Promise<void> {
  const script =
    proto === 'udp'
      ? `const s=require('dgram').createSocket('udp4');s.bind(${sport},()=>s.send('probe',${port},'${dst}',()=>s.close()))`
      : `const c=require('net').connect({host:'${dst}',port:${port},localPort:${sport}});c.on('connect',()=>c.destroy());c.on('error',()=>{});setTimeout(()=>c.destroy(),1500)`;
  const argv = proto === 'icmp' ? ['netns', 'exec', netns, 'ping', '-c', '1', '-W', '1', dst] : ['netns', 'exec', netns, process.execPath, '-e', script];
  return new Promise((resolve) => {
    const child = spawn('ip', argv, { stdio: 'ignore' });
    child.on('exit', () => resolve());
    child.on('error', () => resolve());
  });
}
