/**
 * BIRD 2 as an interop peer: writes bird.conf, runs `bird -f` inside a namespace, and reads
 * its state back through birdc (protocols, routes, counts).
 *
 * Quirks of BIRD 2.0.12 (Debian bird2) this follows:
 * - iBGP sessions are multihop by default, so a learned route's next hop is resolved
 *   recursively through an IGP table that holds no connected routes here: the route shows
 *   as `unreachable` and never reaches the kernel. Directly connected peers get `direct;`
 *   (and `gateway direct`), which is what our topologies are.
 * - With `connect delay time 1` BIRD connects ~1 s after start (the default is 5 s);
 *   `start delay time` is a deprecated alias. `passive on` makes it wait for us instead.
 * - eBGP channels need explicit import/export filters (RFC 8212); `import all; export all`.
 * - Changing a protocol's options with `birdc configure` restarts its session.
 * - Times print as `iso long` (two tokens) so `show protocols` columns parse reliably.
 * - The kernel protocol's netlink socket buffer is `netlink rx buffer` (bytes); without a
 *   large one, BIRD loses kernel notifications at 100k routes and rescans.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { poll } from '../../helpers/wait.js';
import { Daemon, requireBinary, runIn } from './daemon.js';

export type BirdFamily = 'ipv4' | 'ipv6';

export interface BirdPeer {
  /** protocol name in bird.conf (letters, digits, underscores) */
  name: string;
  address: string;
  asn: number;
  /** source address of the session (BIRD's `local`); default: the config's `listen` */
  localAddress?: string;
  port?: number;
  rrClient?: boolean;
  passive?: boolean;
  gracefulRestart?: boolean;
  holdTime?: number;
  /** channels; default: the family of `address` */
  families?: BirdFamily[];
  /** set our address as next hop on routes we send (default: BIRD's default, only for eBGP) */
  nextHopSelf?: boolean;
  /** a multihop session with this TTL instead of a directly connected one */
  multihop?: number;
}

export interface BirdConfig {
  routerId: string;
  asn: number;
  /** bind the BGP listening socket to this address (`local` + `strict bind`) */
  listen?: string;
  peers: BirdPeer[];
  /** prefixes to originate (static blackhole routes exported to the peers) */
  announce?: string[];
  /** export routes learned over BGP into this namespace's kernel (proto bird) */
  kernelExport?: boolean;
  /** kernel table for kernelExport; default main */
  kernelTable?: number;
  /** create the IPv6 tables and protocols (implied by an IPv6 peer or announcement) */
  ipv6?: boolean;
  rrClusterId?: string;
}

export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  /** up, start, down... */
  state: string;
  since: string;
  /** Established, Active, Passive, Connect, Idle, or an error */
  info: string;
}

export interface BirdRoute {
  prefix: string;
  /** unicast, blackhole, unreachable... */
  type: string;
  protocol: string;
  best: boolean;
  preference: number;
  /** the immediate next hop (`via X on dev`), absent for blackhole/unreachable */
  gateway?: string;
  device?: string;
  /** BGP.next_hop (its first address) */
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

function familyOf(address: string): BirdFamily {
  return address.includes(':') ? 'ipv6' : 'ipv4';
}

/** bird.conf for `config` (pure, so a test can show it on failure). */
export function birdConfig(config: BirdConfig, logFile: string): string {
  const families = new Set<BirdFamily>(['ipv4']);
  if (config.ipv6) families.add('ipv6');
  for (const peer of config.peers) for (const family of peer.families ?? [familyOf(peer.address)]) families.add(family);
  for (const prefix of config.announce ?? []) families.add(familyOf(prefix));
  const lines: string[] = [
    `router id ${config.routerId};`,
    `log "${logFile}" all;`,
    'timeformat protocol iso long;',
    'timeformat route iso long;',
    'timeformat log iso long ms;',
    'protocol device { scan time 10; }',
  ];
  for (const family of families) {
    const suffix = family === 'ipv4' ? '4' : '6';
    lines.push(`${family} table master${suffix};`);
    const statics = (config.announce ?? []).filter((prefix) => familyOf(prefix) === family);
    if (statics.length > 0) lines.push(`protocol static static${suffix} { ${family}; ${statics.map((prefix) => `route ${prefix} blackhole;`).join(' ')} }`);
    if (config.kernelExport) {
      lines.push(
        `protocol kernel kernel${suffix} {`,
        `  ${family} { import none; export filter { if source = RTS_BGP then accept; reject; }; };`,
        ...(config.kernelTable === undefined ? [] : [`  kernel table ${config.kernelTable};`]),
        '  learn off;',
        '  netlink rx buffer 8388608;',
        '}',
      );
    }
  }
  for (const peer of config.peers) {
    const local = peer.localAddress ?? config.listen;
    const body: string[] = [
      `  local${local ? ` ${local}` : ''} as ${config.asn};`,
      `  neighbor ${peer.address}${peer.port === undefined ? '' : ` port ${peer.port}`} as ${peer.asn};`,
      peer.multihop === undefined ? '  direct;' : `  multihop ${peer.multihop};`,
      '  connect delay time 1;',
      '  connect retry time 1;',
      '  error wait time 1, 10;',
    ];
    if (config.listen) body.push('  strict bind on;');
    if (peer.holdTime !== undefined) body.push(`  hold time ${peer.holdTime};`);
    if (peer.gracefulRestart) body.push('  graceful restart on;');
    if (peer.passive) body.push('  passive on;');
    if (peer.rrClient) body.push('  rr client;');
    if (peer.rrClient && config.rrClusterId) body.push(`  rr cluster id ${config.rrClusterId};`);
    for (const family of peer.families ?? [familyOf(peer.address)]) {
      body.push(`  ${family} { import all; export all;${peer.nextHopSelf ? ' next hop self;' : ''}${peer.multihop === undefined ? ' gateway direct;' : ''} };`);
    }
    lines.push(`protocol bgp ${peer.name} {`, ...body, '}');
  }
  return `${lines.join('\n')}\n`;
}

/** Parses `birdc show protocols`. */
export function parseBirdProtocols(text: string): BirdProtocol[] {
  const protocols: BirdProtocol[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('BIRD ') || line.startsWith('Name ') || line.trim() === '') continue;
    // name proto table state YYYY-MM-DD hh:mm:ss info...
    const match = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\s*(.*)$/.exec(line);
    if (!match) continue;
    const [, name = '', proto = '', table = '', state = '', since = '', info = ''] = match;
    protocols.push({ name, proto, table, state, since, info: info.trim() });
  }
  return protocols;
}

/** Parses `birdc show route all` (both the best route of a prefix and its alternatives). */
export function parseBirdRoutes(text: string): BirdRoute[] {
  const routes: BirdRoute[] = [];
  let prefix = '';
  let current: BirdRoute | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('BIRD ') || line.startsWith('Table ') || line.trim() === '') continue;
    if (!line.startsWith('\t')) {
      // `10.2.0.0/24  unicast [gobgp4 2026-12-03 13:14:03 from 198.18.0.2] * (100) [i]`;
      // an alternative route of the same prefix starts with spaces instead of the prefix.
      const match = /^(\S+)?\s+(\w+)\s+\[(\S+)\s[^\]]*\]\s*(\*)?\s*\((\d+)/.exec(line);
      if (!match) continue;
      if (match[1]) prefix = match[1];
      current = { prefix, type: match[2] ?? '', protocol: match[3] ?? '', best: match[4] === '*', preference: Number(match[5]), asPath: [], communities: [] };
      routes.push(current);
      continue;
    }
    if (!current) continue;
    const text = line.trim();
    const via = /^via (\S+) on (\S+)/.exec(text);
    if (via) {
      current.gateway = via[1] ?? '';
      current.device = via[2] ?? '';
      continue;
    }
    const attribute = /^BGP\.(\w+): ?(.*)$/.exec(text);
    if (!attribute) continue;
    const [, name, value = ''] = attribute;
    switch (name) {
      case 'origin':
        if (value === 'IGP' || value === 'EGP' || value === 'Incomplete') current.origin = value;
        break;
      case 'as_path':
        current.asPath = (value.match(/\d+/g) ?? []).map(Number);
        break;
      case 'next_hop':
        current.nextHop = value.split(/\s+/)[0] ?? '';
        break;
      case 'local_pref':
        current.localPref = Number(value);
        break;
      case 'med':
        current.med = Number(value);
        break;
      case 'community':
        current.communities = [...value.matchAll(/\((\d+),(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
        break;
      case 'originator_id':
        current.originatorId = value;
        break;
      case 'cluster_list':
        current.clusterList = value.split(/\s+/).filter(Boolean);
        break;
    }
  }
  return routes;
}

export class BirdHandle {
  constructor(
    readonly netns: string,
    readonly socket: string,
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

  /** Runs a birdc command (birdc talks to the control socket; no namespace needed). */
  birdc(...args: string[]): string {
    return runIn(undefined, ['birdc', '-s', this.socket, ...args]);
  }

  protocols(): BirdProtocol[] {
    return parseBirdProtocols(this.birdc('show', 'protocols'));
  }

  routes(family: BirdFamily): BirdRoute[] {
    return parseBirdRoutes(this.birdc('show', 'route', 'all', 'table', family === 'ipv4' ? 'master4' : 'master6'));
  }

  /** Routes in the table (`show route count`): cheap at 100k, unlike `routes`. */
  routeCount(family: BirdFamily, protocol?: string): number {
    const args = ['show', 'route', 'table', family === 'ipv4' ? 'master4' : 'master6', ...(protocol ? ['protocol', protocol] : []), 'count'];
    const match = /(\d+) of (\d+) routes/.exec(this.birdc(...args));
    if (!match) throw new Error(`unexpected birdc ${args.join(' ')} output`);
    return Number(match[1]);
  }

  /**
   * The protocol's route counters (`show protocols all NAME`, summed over its channels):
   * counters BIRD keeps, so polling them does not walk a 100k table the way
   * `show route count` does, which would compete with the ingest being measured.
   */
  protocolRoutes(name: string): { imported: number; exported: number; preferred: number } {
    const totals = { imported: 0, exported: 0, preferred: 0 };
    for (const match of this.birdc('show', 'protocols', 'all', name).matchAll(/Routes:\s+(\d+) imported, (?:\d+ filtered, )?(\d+) exported, (\d+) preferred/g)) {
      totals.imported += Number(match[1]);
      totals.exported += Number(match[2]);
      totals.preferred += Number(match[3]);
    }
    return totals;
  }

  async waitEstablished(name: string, timeoutMs = 30_000): Promise<BirdProtocol> {
    return poll(
      `BIRD protocol ${name} to be Established`,
      () => {
        if (!this.daemon.running) throw new Error(`bird exited:\n${this.daemon.logTail()}`);
        const protocol = this.protocols().find((p) => p.name === name);
        return protocol && protocol.state === 'up' && protocol.info.startsWith('Established') ? protocol : undefined;
      },
      { timeoutMs, intervalMs: 50, describe: () => `${this.birdc('show', 'protocols', 'all', name)}\n${this.daemon.logTail()}` },
    );
  }

  /** `birdc down`, then SIGTERM/SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (!this.daemon.running) return;
    try {
      this.birdc('down');
    } catch {
      // already going away; stop() below makes sure
    }
    await this.daemon.stop();
  }

  async kill9(): Promise<void> {
    await this.daemon.kill9();
  }
}

/** Writes `<dir>/bird.conf`, starts BIRD in `netns`, and waits until birdc answers. */
export async function startBird(netns: string, config: BirdConfig, dir: string): Promise<BirdHandle> {
  requireBinary('bird', 'bird2');
  requireBinary('birdc', 'bird2');
  const configFile = join(dir, 'bird.conf');
  const socket = join(dir, 'bird.ctl');
  const logFile = join(dir, 'bird.log');
  writeFileSync(configFile, birdConfig(config, logFile));
  return launchBird(netns, dir, configFile, socket);
}

/**
 * Starts BIRD in `netns` from a config file already written (`startBird`'s, or a
 * hand-made one as the reflection benchmark's), and waits until birdc answers.
 */
export async function launchBird(netns: string, dir: string, configFile: string, socket: string): Promise<BirdHandle> {
  runIn(undefined, ['bird', '-p', '-c', configFile]); // parse only: a config error fails here, with BIRD's message
  const daemon = new Daemon(netns, ['bird', '-f', '-c', configFile, '-s', socket, '-P', join(dir, 'bird.pid')], join(dir, 'bird.out'));
  const handle = new BirdHandle(netns, socket, configFile, daemon);
  await poll(
    'birdc show status to answer',
    () => {
      if (!daemon.running) throw new Error(`bird exited:\n${daemon.logTail()}`);
      try {
        return /Daemon is up and running/.test(handle.birdc('show', 'status'));
      } catch {
        return false;
      }
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  return handle;
}
