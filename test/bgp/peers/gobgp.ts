/**
 * GoBGP as an interop peer: writes a TOML config, runs `gobgpd` inside a namespace with its
 * gRPC API on a port of its own (127.0.0.1 inside that namespace), and drives it with the
 * `gobgp` CLI (run in the same namespace).
 *
 * Quirks of GoBGP 3.10 (Debian gobgpd) this follows:
 * - As the active side it waits up to a few seconds before its first connect (measured
 *   5–9 s with connect-retry 1); `passive-mode` and letting the other side connect is faster.
 * - Graceful restart needs `graceful-restart.config.enabled` on the neighbor and
 *   `mp-graceful-restart` on each of its afi-safis.
 * - Locally originated routes without a next hop show "0.0.0.0"/"::" in `global rib`;
 *   GoBGP puts its session address in when sending.
 * - `gobgp global rib add` is one process and one gRPC call per prefix (~10–20 ms each);
 *   for many prefixes write an MRT TABLE_DUMP_V2 file (mrt.ts) and `gobgp mrt inject global`,
 *   which drops the tail of its stream (see `inject`).
 * - `--pprof-disable`: otherwise every instance binds localhost:6060.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { poll } from '../../helpers/wait.js';
import { Daemon, requireBinary, runIn } from './daemon.js';

export type GobgpFamily = 'ipv4' | 'ipv6';

export interface GobgpPeer {
  address: string;
  asn: number;
  /** our AS towards this peer, when not the global one */
  localAsn?: number;
  localAddress?: string;
  port?: number;
  rrClient?: boolean;
  passive?: boolean;
  gracefulRestart?: boolean;
  holdTime?: number;
  /** default: the family of `address` */
  families?: GobgpFamily[];
}

export interface GobgpConfig {
  routerId: string;
  asn: number;
  /** BGP port to listen on (default 179); -1 to not listen */
  listenPort?: number;
  listenAddresses?: string[];
  peers: GobgpPeer[];
  rrClusterId?: string;
}

export type SessionState = 'unknown' | 'idle' | 'connect' | 'active' | 'opensent' | 'openconfirm' | 'established';
const SESSION_STATES: readonly SessionState[] = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'];

export interface GobgpNeighbor {
  address: string;
  asn: number;
  state: SessionState;
  /** prefixes received and accepted, summed over its families */
  received: number;
  accepted: number;
}

export interface GobgpRoute {
  prefix: string;
  best: boolean;
  /** the neighbor it came from; absent for locally originated routes */
  neighbor?: string;
  nextHop?: string;
  asPath: number[];
  origin?: 'IGP' | 'EGP' | 'Incomplete';
  localPref?: number;
  med?: number;
  /** `65000:1` */
  communities: string[];
  originatorId?: string;
  clusterList?: string[];
}

export interface Announcement {
  nextHop?: string;
  communities?: string[];
  med?: number;
  localPref?: number;
  origin?: 'igp' | 'egp' | 'incomplete';
}

function familyOf(address: string): GobgpFamily {
  return address.includes(':') ? 'ipv6' : 'ipv4';
}

const quote = (text: string): string => JSON.stringify(text);

/** The TOML config for `config` (pure). */
export function gobgpConfig(config: GobgpConfig): string {
  const lines: string[] = ['[global.config]', `  as = ${config.asn}`, `  router-id = ${quote(config.routerId)}`];
  if (config.listenPort !== undefined) lines.push(`  port = ${config.listenPort}`);
  if (config.listenAddresses) lines.push(`  local-address-list = [${config.listenAddresses.map(quote).join(', ')}]`);
  for (const peer of config.peers) {
    const holdTime = peer.holdTime ?? 90;
    lines.push('', '[[neighbors]]', '  [neighbors.config]', `    neighbor-address = ${quote(peer.address)}`, `    peer-as = ${peer.asn}`);
    if (peer.localAsn !== undefined) lines.push(`    local-as = ${peer.localAsn}`);
    const transport: string[] = [];
    if (peer.passive) transport.push('    passive-mode = true');
    if (peer.localAddress) transport.push(`    local-address = ${quote(peer.localAddress)}`);
    if (peer.port !== undefined) transport.push(`    remote-port = ${peer.port}`);
    if (transport.length > 0) lines.push('  [neighbors.transport.config]', ...transport);
    lines.push('  [neighbors.timers.config]', '    connect-retry = 1', `    hold-time = ${holdTime}`, `    keepalive-interval = ${Math.max(1, Math.floor(holdTime / 3))}`, '    idle-hold-time-after-reset = 1');
    if (peer.gracefulRestart) lines.push('  [neighbors.graceful-restart.config]', '    enabled = true', '    restart-time = 120');
    if (peer.rrClient) {
      lines.push('  [neighbors.route-reflector.config]', '    route-reflector-client = true');
      if (config.rrClusterId) lines.push(`    route-reflector-cluster-id = ${quote(config.rrClusterId)}`);
    }
    for (const family of peer.families ?? [familyOf(peer.address)]) {
      lines.push('  [[neighbors.afi-safis]]', '    [neighbors.afi-safis.config]', `      afi-safi-name = "${family}-unicast"`);
      if (peer.gracefulRestart) lines.push('    [neighbors.afi-safis.mp-graceful-restart.config]', '      enabled = true');
    }
  }
  return `${lines.join('\n')}\n`;
}

interface JsonNeighbor {
  conf?: { neighbor_address?: string; peer_asn?: number };
  state?: { neighbor_address?: string; peer_asn?: number; session_state?: number | string };
  afi_safis?: { state?: { received?: number; accepted?: number } }[];
}

interface JsonAttribute {
  type: number;
  value?: unknown;
  nexthop?: string;
  metric?: number;
  communities?: number[];
  as_paths?: { type?: number; asns?: number[] }[];
}

interface JsonPath {
  nlri?: { prefix?: string };
  best?: boolean;
  'neighbor-ip'?: string;
  attrs?: JsonAttribute[];
}

function sessionState(value: number | string | undefined): SessionState {
  if (typeof value === 'number') return SESSION_STATES[value] ?? 'unknown';
  const name = String(value ?? '').toLowerCase().replace(/^session_state_/, '');
  return (SESSION_STATES as readonly string[]).includes(name) ? (name as SessionState) : 'unknown';
}

export function parseGobgpNeighbors(json: string): GobgpNeighbor[] {
  return (JSON.parse(json) as JsonNeighbor[]).map((n) => ({
    address: n.state?.neighbor_address ?? n.conf?.neighbor_address ?? '',
    asn: n.state?.peer_asn ?? n.conf?.peer_asn ?? 0,
    state: sessionState(n.state?.session_state),
    received: (n.afi_safis ?? []).reduce((sum, f) => sum + (f.state?.received ?? 0), 0),
    accepted: (n.afi_safis ?? []).reduce((sum, f) => sum + (f.state?.accepted ?? 0), 0),
  }));
}

const ORIGINS = ['IGP', 'EGP', 'Incomplete'] as const;

function formatCommunity(value: number): string {
  return `${Math.floor(value / 65536)}:${value % 65536}`;
}

/** Parses `gobgp global rib -a <family> -j` (every path of every prefix). */
export function parseGobgpRib(json: string): GobgpRoute[] {
  const table = JSON.parse(json) as Record<string, JsonPath[]>;
  const routes: GobgpRoute[] = [];
  for (const [prefix, paths] of Object.entries(table)) {
    for (const path of paths) {
      const route: GobgpRoute = { prefix: path.nlri?.prefix ?? prefix, best: path.best === true, asPath: [], communities: [] };
      if (path['neighbor-ip']) route.neighbor = path['neighbor-ip'];
      for (const attr of path.attrs ?? []) {
        switch (attr.type) {
          case 1: {
            const origin = ORIGINS[Number(attr.value)];
            if (origin) route.origin = origin;
            break;
          }
          case 2:
            route.asPath = (attr.as_paths ?? []).flatMap((segment) => segment.asns ?? []);
            break;
          case 3:
          case 14:
            if (attr.nexthop) route.nextHop = attr.nexthop;
            break;
          case 4:
            route.med = attr.metric ?? Number(attr.value);
            break;
          case 5:
            route.localPref = Number(attr.value);
            break;
          case 8:
            route.communities = (attr.communities ?? []).map(formatCommunity);
            break;
          case 9:
            route.originatorId = String(attr.value);
            break;
          case 10:
            route.clusterList = Array.isArray(attr.value) ? attr.value.map(String) : [String(attr.value)];
            break;
        }
      }
      routes.push(route);
    }
  }
  return routes;
}

let nextApiPort = 50_100 + (process.pid % 500) * 8;

export class GobgpHandle {
  constructor(
    readonly netns: string,
    readonly apiPort: number,
    readonly configFile: string,
    private readonly daemon: Daemon,
  ) {}

  get pid(): number {
    return this.daemon.pid;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  logTail(lines = 30): string {
    return this.daemon.logTail(lines);
  }

  /** Runs the gobgp CLI against this instance (inside its namespace). */
  gobgp(...args: string[]): string {
    return runIn(this.netns, ['gobgp', '-p', String(this.apiPort), ...args], 120_000);
  }

  neighbors(): GobgpNeighbor[] {
    return parseGobgpNeighbors(this.gobgp('neighbor', '-j'));
  }

  routes(family: GobgpFamily): GobgpRoute[] {
    return parseGobgpRib(this.gobgp('global', 'rib', '-a', family, '-j'));
  }

  /** Destinations in the global RIB (`global rib summary`): cheap at 100k, unlike `routes`. */
  routeCount(family: GobgpFamily): number {
    const match = /Destination:\s*(\d+)/.exec(this.gobgp('global', 'rib', '-a', family, 'summary'));
    if (!match) throw new Error('unexpected gobgp global rib summary output');
    return Number(match[1]);
  }

  announce(prefix: string, attributes: Announcement = {}): void {
    const args = ['global', 'rib', 'add', '-a', familyOf(prefix), prefix];
    if (attributes.nextHop) args.push('nexthop', attributes.nextHop);
    if (attributes.origin) args.push('origin', attributes.origin);
    if (attributes.med !== undefined) args.push('med', String(attributes.med));
    if (attributes.localPref !== undefined) args.push('local-pref', String(attributes.localPref));
    if (attributes.communities?.length) args.push('community', attributes.communities.join(','));
    this.gobgp(...args);
  }

  withdraw(prefix: string): void {
    this.gobgp('global', 'rib', 'del', '-a', familyOf(prefix), prefix);
  }

  /**
   * Loads every route of an MRT TABLE_DUMP_V2 file (mrt.ts) of one family into the global
   * RIB, and waits until the RIB holds `expected` prefixes of that family. `gobgp mrt
   * inject` drops the last few hundred paths of a 100k stream (measured: 99195, 99282,
   * 99590 of 100000, always the file's tail), hence mrtTableDump's repeated tail; this
   * throws, naming the count, if the RIB still comes up short.
   */
  async inject(mrtFile: string, family: GobgpFamily, expected: number, options: { nextHop?: string } = {}): Promise<void> {
    const args = ['mrt', 'inject', 'global', mrtFile, family === 'ipv4' ? '--no-ipv6' : '--no-ipv4'];
    if (options.nextHop) args.push('--nexthop', options.nextHop);
    this.gobgp(...args);
    await poll(`GoBGP to hold ${expected} ${family} prefixes`, () => this.routeCount(family) >= expected, {
      timeoutMs: 10_000,
      intervalMs: 20,
      describe: () => `it holds ${this.routeCount(family)}; is the file's tail repeated (mrtTableDump repeatTail)?`,
    });
  }

  async waitEstablished(address: string, timeoutMs = 30_000): Promise<GobgpNeighbor> {
    return poll(
      `GoBGP neighbor ${address} to be established`,
      () => {
        if (!this.daemon.running) throw new Error(`gobgpd exited:\n${this.daemon.logTail()}`);
        const neighbor = this.neighbors().find((n) => n.address === address);
        return neighbor?.state === 'established' ? neighbor : undefined;
      },
      { timeoutMs, intervalMs: 50, describe: () => `${this.gobgp('neighbor')}\n${this.daemon.logTail()}` },
    );
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
  }

  async kill9(): Promise<void> {
    await this.daemon.kill9();
  }
}

/** Writes `<dir>/gobgpd.toml`, starts gobgpd in `netns`, and waits until its API answers. */
export async function startGobgp(netns: string, config: GobgpConfig, dir: string): Promise<GobgpHandle> {
  requireBinary('gobgpd', 'gobgpd');
  requireBinary('gobgp', 'gobgpd');
  const configFile = join(dir, 'gobgpd.toml');
  writeFileSync(configFile, gobgpConfig(config));
  const apiPort = nextApiPort++;
  const daemon = new Daemon(netns, ['gobgpd', '-f', configFile, '-t', 'toml', '--api-hosts', `127.0.0.1:${apiPort}`, '--pprof-disable', '-p'], join(dir, 'gobgpd.log'));
  const handle = new GobgpHandle(netns, apiPort, configFile, daemon);
  await poll(
    'the gobgpd API to answer',
    () => {
      if (!daemon.running) throw new Error(`gobgpd exited:\n${daemon.logTail()}`);
      try {
        handle.gobgp('global');
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  return handle;
}
