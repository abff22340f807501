/**
 * The pieces of bench/bgp.ts: our speaker as a daemon in a namespace (the same process users
 * run: `node dist/cli/pontoon.cjs bgp --config FILE`), the counters both receivers are read
 * by, and a BIRD instance of many lightweight iBGP clients that only count what they receive.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { controlRequest, type SpeakerStatus } from '../../src/bgp/control.js';
import { type BirdHandle, launchBird } from '../../test/bgp/peers/bird.js';
import { Daemon, requireBinary, runIn } from '../../test/bgp/peers/daemon.js';
import type { GobgpHandle } from '../../test/bgp/peers/gobgp.js';
import { poll } from '../../test/helpers/wait.js';

export const CLI = fileURLToPath(new URL('../../../dist/cli/pontoon.cjs', import.meta.url));

/** A process's user + system CPU time so far (/proc/PID/stat fields 14 and 15, clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** VmRSS and VmHWM of a process, in MiB. */
export function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

/**
 * Prefixes in the main FIB trie of the namespace `pid` lives in: /proc/PID/net/fib_triestat
 * ("Prefixes:" of the Main trie), a counter rather than a dump of every route; exact once a
 * baseline (the connected routes) is subtracted, as nothing else adds routes there.
 */
export function kernelPrefixes(pid: number): number {
  return mainPrefixes(readFileSync(`/proc/${pid}/net/fib_triestat`, 'utf8'));
}

/** The same, read inside a namespace by name (a baseline before the receiver runs). */
export function kernelPrefixesIn(netns: string): number {
  return mainPrefixes(runIn(netns, ['cat', '/proc/net/fib_triestat']));
}

function mainPrefixes(text: string): number {
  const main = text.slice(text.indexOf('Main:'));
  const match = /Prefixes:\s*(\d+)/.exec(main);
  if (!match) throw new Error('no "Prefixes:" in the Main section of fib_triestat');
  return Number(match[1]);
}

/** `gobgp mrt inject global` and a wait (longer than GobgpHandle.inject's, for 1M) until GoBGP holds them all. */
export async function injectMrt(gobgp: GobgpHandle, mrtFile: string, expected: number): Promise<void> {
  gobgp.gobgp('mrt', 'inject', 'global', mrtFile, '--no-ipv6');
  await poll(`GoBGP to hold ${expected} prefixes`, () => gobgp.routeCount('ipv4') >= expected, { timeoutMs: 120_000, intervalMs: 100, describe: () => `it holds ${gobgp.routeCount('ipv4')}` });
}

export interface SpeakerPeer {
  address: string;
  asn: number;
  passive?: boolean;
  routeReflectorClient?: boolean;
}

export interface SpeakerOptions {
  routerId: string;
  asn: number;
  peers: SpeakerPeer[];
  kernelSync: boolean;
  clusterId?: string;
  /** node's own flags, before the script (bench/lib/node-flags.ts) */
  nodeFlags?: string[];
}

/** Our speaker (`pontoon bgp`) running in a namespace, polled through its control socket. */
export class OurSpeaker {
  private constructor(
    readonly socket: string,
    readonly logFile: string,
    private readonly daemon: Daemon,
  ) {}

  static start(netns: string, options: SpeakerOptions, dir: string): OurSpeaker {
    const socket = join(dir, 'bgp.sock');
    const config = join(dir, 'bgp.yaml');
    writeFileSync(
      config,
      toYaml({
        localAsn: options.asn,
        routerId: options.routerId,
        listenAddress: options.routerId,
        controlSocket: socket,
        metricsAddress: '',
        kernelSync: options.kernelSync,
        nextHops: { ipv4: options.routerId },
        ...(options.clusterId ? { clusterId: options.clusterId } : {}),
        peers: options.peers,
      }),
    );
    runIn(netns, ['ip', 'link', 'set', 'lo', 'up']);
    const logFile = join(dir, 'bgp.log');
    return new OurSpeaker(socket, logFile, new Daemon(netns, [process.execPath, ...(options.nodeFlags ?? []), CLI, 'bgp', '--config', config], logFile));
  }

  get pid(): number {
    return this.daemon.pid;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  logTail(lines = 30): string {
    return this.daemon.logTail(lines);
  }

  async status(timeoutMs = 30_000): Promise<SpeakerStatus | undefined> {
    if (!this.daemon.running) throw new Error(`our speaker exited:\n${this.daemon.logTail()}`);
    return (await controlRequest(this.socket, 'status', timeoutMs).catch(() => undefined)) as SpeakerStatus | undefined;
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
  }
}

export interface ClientCounts {
  established: number;
  /** NLRIs each client's session received ("Import updates: received"), by protocol name */
  received: Map<string, number>;
}

/** Parses `show protocols all`: per BGP protocol, Established or not and its received import updates. */
export function parseClientCounts(text: string): ClientCounts {
  const counts: ClientCounts = { established: 0, received: new Map() };
  const blocks = text.split(/\n(?=\S)/);
  for (const block of blocks) {
    const head = /^(\S+)\s+BGP\s/.exec(block);
    if (!head?.[1]) continue;
    if (/BGP state:\s+Established/.test(block)) counts.established++;
    counts.received.set(head[1], Number(/Import updates:\s+(\d+)/.exec(block)?.[1] ?? 0));
  }
  return counts;
}

/**
 * One BIRD holding `addresses.length` iBGP sessions to the route reflector at `rr`, each from
 * its own address, with its own router id and to its own alias of the reflector (below), `import none; export none`: a client that
 * decodes what the reflector sends and counts it (the channel's received import updates) but
 * stores nothing, so the reflector, not the client, is what gets measured.
 */
export async function startClients(netns: string, rr: string, asn: number, addresses: string[], dir: string): Promise<BirdHandle> {
  requireBinary('bird', 'bird2');
  requireBinary('nft', 'nftables');
  // BIRD runs one protocol per neighbor address (its lock is the remote address and port), so
  // each client talks to an alias of the reflector, 10.99.<i/250>.<i%250+1>, which the
  // namespace's nat output hook rewrites to the reflector itself.
  const alias = (i: number): string => `10.99.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  runIn(netns, ['ip', 'route', 'add', '10.99.0.0/16', 'dev', 'eth0']);
  const nft = join(dir, 'alias.nft');
  writeFileSync(nft, `table ip bgpbench {\n  chain out { type nat hook output priority -100; ip daddr 10.99.0.0/16 tcp dport 179 dnat to ${rr}; }\n}\n`);
  runIn(netns, ['nft', '-f', nft]);
  const configFile = join(dir, 'bird.conf');
  const socket = join(dir, 'bird.ctl');
  const lines = [`router id ${addresses[0]};`, `log "${join(dir, 'bird.log')}" { warning, error, fatal };`, 'timeformat protocol iso long;', 'protocol device { scan time 10; }', 'ipv4 table master4;'];
  addresses.forEach((address, i) => {
    lines.push(
      `protocol bgp c${i} {`,
      `  router id ${address};`,
      `  local ${address} as ${asn};`,
      `  neighbor ${alias(i)} as ${asn};`,
      '  multihop 2;',
      '  connect delay time 1;',
      '  connect retry time 1;',
      '  error wait time 1, 10;',
      '  ipv4 { import none; export none; };',
      '}',
    );
  });
  writeFileSync(configFile, `${lines.join('\n')}\n`);
  return launchBird(netns, dir, configFile, socket);
}
