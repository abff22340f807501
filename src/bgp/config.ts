/**
 * `pontoon bgp --config FILE`: the standalone speaker's YAML, checked field by field so a
 * mistake is reported as the field that holds it (`peers[1].asn: must be an integer in
 * 1..4294967295`), never as a crash later.
 *
 *   localAsn: 64512
 *   routerId: 198.18.0.11          # a BGP identifier, written like an IPv4 address
 *   listenAddress: 198.18.0.11     # "" or absent: do not listen (active-only speaker)
 *   listenPort: 179
 *   clusterId: 198.18.0.11         # set: this speaker is a route reflector
 *   holdTime: 90                   # seconds; 0 (no keepalives) or ≥ 3
 *   controlSocket: /run/pontoon/bgp.sock
 *   metricsAddress: 127.0.0.1:9179 # "" disables
 *   gracefulRestart: { enabled: true, restartTime: 120 }
 *   kernelSync: true               # install best routes into the kernel (our proto number)
 *   nextHops: { ipv4: 198.18.0.11, ipv6: fd00:198:18::11 }   # NEXT_HOP we advertise per family
 *                                  # (default: listenAddress for its family)
 *   announce: [10.244.1.0/24, fd00:10:244:1::/64]
 *   peers:
 *     - { address: 198.18.0.12, asn: 64512, routeReflectorClient: false, passive: false, port: 179 }
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { PontoonError } from '../lib/errors.js';
import { formatIp, type Ip, type IpNet, networkOf, tryParseIp } from '../lib/ip.js';

export class BgpConfigError extends PontoonError {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`invalid BGP configuration: ${field}: ${problem}`);
  }
}

export interface PeerConfig {
  readonly address: Ip;
  readonly asn: number;
  readonly port: number;
  readonly routeReflectorClient: boolean;
  readonly passive: boolean;
  /** overrides the speaker's holdTime for this peer */
  readonly holdTimeSeconds?: number;
  /** a description shown by `pontoon bgp status` (mesh, rr, tor, or anything) */
  readonly description?: string;
}

export interface BgpConfig {
  readonly localAsn: number;
  readonly routerId: number;
  readonly listenAddress?: Ip;
  readonly listenPort: number;
  readonly clusterId?: number;
  readonly holdTimeSeconds: number;
  readonly controlSocket: string;
  readonly metricsAddress?: { host: string; port: number };
  readonly gracefulRestart: { readonly enabled: boolean; readonly restartTimeSeconds: number };
  readonly kernelSync: boolean;
  /** our NEXT_HOP per family, for routes we originate and (to eBGP peers) pass on */
  readonly nextHops: { readonly ipv4?: Ip; readonly ipv6?: Ip };
  readonly announce: readonly IpNet[];
  readonly peers: readonly PeerConfig[];
}

export const DEFAULT_CONTROL_SOCKET = '/run/pontoon/bgp.sock';
export const DEFAULT_HOLD_TIME_SECONDS = 90;
export const DEFAULT_RESTART_TIME_SECONDS = 120;

type Raw = Record<string, unknown>;

const isObject = (value: unknown): value is Raw => typeof value === 'object' && value !== null && !Array.isArray(value);

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new BgpConfigError(field, `must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
  return value;
}

function bool(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new BgpConfigError(field, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function address(value: unknown, field: string): Ip {
  const ip = typeof value === 'string' ? tryParseIp(value) : undefined;
  if (!ip) throw new BgpConfigError(field, `must be an IPv4 or IPv6 address, got ${JSON.stringify(value)}`);
  return ip;
}

/** A BGP identifier: 32 bits written as dotted quad (RFC 4271 §4.2), or a plain integer. */
export function parseIdentifier(value: unknown, field: string): number {
  if (typeof value === 'number') return integer(value, field, 1, 0xffffffff);
  const ip = typeof value === 'string' ? tryParseIp(value) : undefined;
  if (!ip || ip.family !== 4 || ip.value === 0n) throw new BgpConfigError(field, `must be a non-zero dotted-quad identifier like 198.18.0.11, got ${JSON.stringify(value)}`);
  return Number(ip.value);
}

export function formatIdentifier(id: number): string {
  return formatIp({ family: 4, value: BigInt(id >>> 0) });
}

function prefix(value: unknown, field: string): IpNet {
  if (typeof value !== 'string' || !value.includes('/')) throw new BgpConfigError(field, `must be a CIDR like 10.244.1.0/24, got ${JSON.stringify(value)}`);
  const [addr = '', len = ''] = value.split('/');
  const ip = tryParseIp(addr);
  const prefixLength = Number(len);
  const max = ip?.family === 6 ? 128 : 32;
  if (!ip || !/^\d+$/.test(len) || prefixLength > max) throw new BgpConfigError(field, `must be a CIDR like 10.244.1.0/24, got ${JSON.stringify(value)}`);
  const net = networkOf({ ...ip, prefixLength });
  if (net.value !== ip.value) throw new BgpConfigError(field, `${value} has host bits set (did you mean ${formatIp(net)}/${prefixLength}?)`);
  return net;
}

/** RFC 4271 §4.2: a hold time is zero or at least three seconds (and fits 16 bits). */
export function isValidHoldTime(seconds: number): boolean {
  return Number.isInteger(seconds) && seconds >= 0 && seconds <= 65535 && seconds !== 1 && seconds !== 2;
}

function holdTime(value: unknown, field: string): number {
  const seconds = integer(value, field, 0, 65535);
  if (!isValidHoldTime(seconds)) throw new BgpConfigError(field, 'must be 0 or at least 3 seconds (RFC 4271 §4.2)');
  return seconds;
}

function hostPort(value: unknown, field: string): { host: string; port: number } | undefined {
  if (value === undefined || value === '') return undefined;
  const match = typeof value === 'string' ? /^(.*):(\d+)$/.exec(value) : null;
  if (!match) throw new BgpConfigError(field, `must be HOST:PORT like 127.0.0.1:9179, got ${JSON.stringify(value)}`);
  return { host: (match[1] ?? '').replace(/^\[|\]$/g, ''), port: integer(Number(match[2]), field, 1, 65535) };
}

const KNOWN_TOP = new Set(['localAsn', 'routerId', 'listenAddress', 'listenPort', 'clusterId', 'holdTime', 'controlSocket', 'metricsAddress', 'gracefulRestart', 'kernelSync', 'nextHops', 'announce', 'peers']);
const KNOWN_PEER = new Set(['address', 'asn', 'port', 'routeReflectorClient', 'passive', 'holdTime', 'description']);

function rejectUnknown(raw: Raw, known: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(raw)) if (!known.has(key)) throw new BgpConfigError(`${where}${key}`, `unknown field (known: ${[...known].join(', ')})`);
}

export function parseBgpConfig(raw: unknown): BgpConfig {
  if (!isObject(raw)) throw new BgpConfigError('(top level)', 'must be a mapping');
  rejectUnknown(raw, KNOWN_TOP, '');
  if (raw.localAsn === undefined) throw new BgpConfigError('localAsn', 'is required');
  if (raw.routerId === undefined) throw new BgpConfigError('routerId', 'is required');
  const localAsn = integer(raw.localAsn, 'localAsn', 1, 0xffffffff);
  const routerId = parseIdentifier(raw.routerId, 'routerId');
  const gr = raw.gracefulRestart === undefined ? {} : raw.gracefulRestart;
  if (!isObject(gr)) throw new BgpConfigError('gracefulRestart', 'must be a mapping like { enabled: true, restartTime: 120 }');
  rejectUnknown(gr, new Set(['enabled', 'restartTime']), 'gracefulRestart.');
  const peersRaw = raw.peers ?? [];
  if (!Array.isArray(peersRaw)) throw new BgpConfigError('peers', 'must be a list');
  const peers = peersRaw.map((p: unknown, i): PeerConfig => {
    const where = `peers[${i}]`;
    if (!isObject(p)) throw new BgpConfigError(where, 'must be a mapping with address and asn');
    rejectUnknown(p, KNOWN_PEER, `${where}.`);
    if (p.address === undefined) throw new BgpConfigError(`${where}.address`, 'is required');
    if (p.asn === undefined) throw new BgpConfigError(`${where}.asn`, 'is required');
    const hold = p.holdTime === undefined ? undefined : holdTime(p.holdTime, `${where}.holdTime`);
    if (p.description !== undefined && typeof p.description !== 'string') throw new BgpConfigError(`${where}.description`, 'must be a string');
    return {
      address: address(p.address, `${where}.address`),
      asn: integer(p.asn, `${where}.asn`, 1, 0xffffffff),
      port: p.port === undefined ? 179 : integer(p.port, `${where}.port`, 1, 65535),
      routeReflectorClient: bool(p.routeReflectorClient, `${where}.routeReflectorClient`, false),
      passive: bool(p.passive, `${where}.passive`, false),
      ...(hold !== undefined ? { holdTimeSeconds: hold } : {}),
      ...(typeof p.description === 'string' ? { description: p.description } : {}),
    };
  });
  const seen = new Set<string>();
  peers.forEach((peer, i) => {
    const key = formatIp(peer.address);
    if (seen.has(key)) throw new BgpConfigError(`peers[${i}].address`, `${key} is listed twice`);
    seen.add(key);
  });
  const clusterId = raw.clusterId === undefined ? undefined : parseIdentifier(raw.clusterId, 'clusterId');
  peers.forEach((peer, i) => {
    if (peer.routeReflectorClient && clusterId === undefined) throw new BgpConfigError(`peers[${i}].routeReflectorClient`, 'needs clusterId (only a route reflector has clients)');
    if (peer.routeReflectorClient && peer.asn !== localAsn) throw new BgpConfigError(`peers[${i}].routeReflectorClient`, 'route reflector clients are iBGP peers: asn must equal localAsn');
  });
  const announceRaw = raw.announce ?? [];
  if (!Array.isArray(announceRaw)) throw new BgpConfigError('announce', 'must be a list of CIDRs');
  const listen = raw.listenAddress === undefined || raw.listenAddress === '' ? undefined : address(raw.listenAddress, 'listenAddress');
  if (raw.controlSocket !== undefined && (typeof raw.controlSocket !== 'string' || raw.controlSocket === '')) throw new BgpConfigError('controlSocket', 'must be a path');
  const metrics = hostPort(raw.metricsAddress, 'metricsAddress');
  const hopsRaw = raw.nextHops ?? {};
  if (!isObject(hopsRaw)) throw new BgpConfigError('nextHops', 'must be a mapping like { ipv4: 198.18.0.11, ipv6: fd00::11 }');
  rejectUnknown(hopsRaw, new Set(['ipv4', 'ipv6']), 'nextHops.');
  const hop = (family: 4 | 6): Ip | undefined => {
    const key = family === 4 ? 'ipv4' : 'ipv6';
    if (hopsRaw[key] === undefined) return listen?.family === family ? listen : undefined;
    const ip = address(hopsRaw[key], `nextHops.${key}`);
    if (ip.family !== family) throw new BgpConfigError(`nextHops.${key}`, `must be an IPv${family} address`);
    return ip;
  };
  const ipv4Hop = hop(4);
  const ipv6Hop = hop(6);
  return {
    localAsn,
    routerId,
    ...(listen ? { listenAddress: listen } : {}),
    listenPort: raw.listenPort === undefined ? 179 : integer(raw.listenPort, 'listenPort', 1, 65535),
    ...(clusterId !== undefined ? { clusterId } : {}),
    holdTimeSeconds: raw.holdTime === undefined ? DEFAULT_HOLD_TIME_SECONDS : holdTime(raw.holdTime, 'holdTime'),
    controlSocket: typeof raw.controlSocket === 'string' ? raw.controlSocket : DEFAULT_CONTROL_SOCKET,
    ...(metrics ? { metricsAddress: metrics } : {}),
    gracefulRestart: {
      enabled: bool(gr.enabled, 'gracefulRestart.enabled', true),
      restartTimeSeconds: gr.restartTime === undefined ? DEFAULT_RESTART_TIME_SECONDS : integer(gr.restartTime, 'gracefulRestart.restartTime', 1, 4095),
    },
    kernelSync: bool(raw.kernelSync, 'kernelSync', true),
    nextHops: { ...(ipv4Hop ? { ipv4: ipv4Hop } : {}), ...(ipv6Hop ? { ipv6: ipv6Hop } : {}) },
    announce: announceRaw.map((value: unknown, i) => prefix(value, `announce[${i}]`)),
    peers,
  };
}

export function loadBgpConfig(path: string): BgpConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BgpConfigError('(file)', `cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new BgpConfigError('(file)', `${path} is not valid YAML: ${(err as Error).message}`);
  }
  return parseBgpConfig(raw);
}
