/**
 * Typed rtnetlink operations: links, addresses, routes, neighbours and FDB entries.
 * Callers get plain objects and NetlinkError with the kernel's errno; "ensure" semantics
 * (EEXIST is fine, ENODEV on delete is fine) live one level up, in the code that knows
 * what it wants the kernel to look like.
 */
import { formatIp, formatIpNet, formatMac, ipFromBytes, ipToBytes, parseMac, type Ip, type IpFamily, type IpNet } from '../ip.js';
import {
  type Attr,
  type AttrMap,
  cstring,
  decodeAttrs,
  encodeAttrs,
  NetlinkDecodeError,
  type NetlinkMessage,
  NetlinkWriter,
  NLM_F_ACK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
  readCString,
  readU32,
  u32,
  u8,
} from './codec.js';
import { errnoName } from '../errors.js';
import { NetlinkSocket } from './socket.js';

// linux/rtnetlink.h message types
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const RTM_GETNEIGH = 30;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

// linux/if.h
export const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;

// linux/if_link.h
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_PROTINFO = 12;
const IFLA_TXQLEN = 13;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_NET_NS_FD = 28;
const IFLA_LINK_NETNSID = 37;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_MODE = 4; // hairpin

// linux/if_addr.h
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_PERMANENT = 0x80;

// linux/rtnetlink.h routes
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_METRICS = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
export const RT_SCOPE_NOWHERE = 255;
export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
export const RTN_BLACKHOLE = 6;
export const RTN_UNREACHABLE = 7;
export const RTN_PROHIBIT = 8;
export const RTNH_F_ONLINK = 4;

// linux/neighbour.h
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDA_MASTER = 9;
export const NUD_REACHABLE = 0x02;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;
export const NTF_MASTER = 0x04;

export function familyOf(ip: Ip): number {
  return ip.family === 4 ? AF_INET : AF_INET6;
}

function ipFamilyOf(af: number): IpFamily {
  return af === AF_INET ? 4 : 6;
}

function ifinfomsg(index = 0, flags = 0, change = 0, family = AF_UNSPEC): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt8(family, 0);
  head.writeInt32LE(index, 4);
  head.writeUInt32LE(flags >>> 0, 8);
  head.writeUInt32LE(change >>> 0, 12);
  return head;
}

export interface Link {
  index: number;
  name: string;
  flags: number;
  up: boolean;
  mtu: number;
  mac?: string;
  masterIndex?: number;
  /** `bridge`, `veth`, `vxlan`, `tun`... absent for plain devices such as `lo`. */
  kind?: string;
  /** IFLA_LINK: for a veth, the peer's index (in the peer's namespace). */
  parentIndex?: number;
  /** Set when the link's parent/peer lives in another namespace. */
  peerNetnsId?: number;
  alias?: string;
  /** Raw IFLA_INFO_DATA for kind-specific decoders (vxlan, ...). */
  infoData?: Buffer;
}

export interface VethPeer {
  name: string;
  mtu?: number;
  mac?: string;
  /** Open fd of the namespace the peer is created in. */
  netnsFd?: number;
}

export interface NewLink {
  name: string;
  kind: string;
  mtu?: number;
  mac?: string;
  masterIndex?: number;
  txQueueLength?: number;
  /** Create the link directly inside the namespace behind this fd. */
  netnsFd?: number;
  peer?: VethPeer;
  /** Kind-specific IFLA_INFO_DATA attributes (vxlan VNI, port, ...). */
  infoData?: Attr[];
  up?: boolean;
}

export interface Address {
  index: number;
  address: IpNet;
  flags: number;
  scope: number;
}

export interface Route {
  /** Absent for the default route. */
  dst?: IpNet;
  family: IpFamily;
  gateway?: Ip;
  oif?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  priority?: number;
  prefsrc?: Ip;
  mtu?: number;
  advmss?: number;
  onlink?: boolean;
}

export interface Neighbour {
  /** AF_INET/AF_INET6 for ARP/NDP entries, AF_BRIDGE for FDB entries. */
  family: number;
  index: number;
  ip?: Ip;
  mac?: string;
  state: number;
  flags: number;
  masterIndex?: number;
}

function linkAttrs(spec: { name?: string; mtu?: number; mac?: string; netnsFd?: number }): Attr[] {
  const attrs: Attr[] = [];
  if (spec.name !== undefined) attrs.push({ type: IFLA_IFNAME, value: cstring(spec.name) });
  if (spec.mtu !== undefined) attrs.push({ type: IFLA_MTU, value: u32(spec.mtu) });
  if (spec.mac !== undefined) attrs.push({ type: IFLA_ADDRESS, value: parseMac(spec.mac) });
  if (spec.netnsFd !== undefined) attrs.push({ type: IFLA_NET_NS_FD, value: u32(spec.netnsFd) });
  return attrs;
}

/*
 * The kernel never sends a short ifinfomsg/ifaddrmsg/rtmsg/ndmsg, but a decoder must not trust
 * that: each checks its fixed header's length and each address attribute's before reading,
 * and fails with NetlinkDecodeError rather than a RangeError from deep inside Buffer.
 */
function requireHeader(payload: Buffer, bytes: number, what: string): void {
  if (payload.length < bytes) throw new NetlinkDecodeError(`${what} is ${payload.length} bytes, shorter than its ${bytes}-byte header`);
}

function addressAttr(bytes: Buffer | undefined, what: string): Ip | undefined {
  if (bytes === undefined) return undefined;
  if (bytes.length !== 4 && bytes.length !== 16) throw new NetlinkDecodeError(`${what} attribute is ${bytes.length} bytes, not an IPv4 or IPv6 address`);
  return ipFromBytes(bytes);
}

function decodeLink(message: NetlinkMessage): Link {
  const { payload } = message;
  requireHeader(payload, 16, 'link message');
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const attrs = decodeAttrs(payload, 16);
  const link: Link = {
    index,
    name: readCString(attrs.get(IFLA_IFNAME)) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
    mtu: readU32(attrs.get(IFLA_MTU)) ?? 0,
  };
  const mac = attrs.get(IFLA_ADDRESS);
  if (mac && mac.length === 6) link.mac = formatMac(mac);
  const master = readU32(attrs.get(IFLA_MASTER));
  if (master !== undefined) link.masterIndex = master;
  const parent = readU32(attrs.get(IFLA_LINK));
  if (parent !== undefined && parent !== index) link.parentIndex = parent;
  const netnsId = attrs.get(IFLA_LINK_NETNSID);
  if (netnsId && netnsId.length >= 4) link.peerNetnsId = netnsId.readInt32LE(0);
  const alias = readCString(attrs.get(IFLA_IFALIAS));
  if (alias) link.alias = alias;
  const info = attrs.get(IFLA_LINKINFO);
  if (info) {
    const infoAttrs = decodeAttrs(info);
    const kind = readCString(infoAttrs.get(IFLA_INFO_KIND));
    if (kind) link.kind = kind;
    const data = infoAttrs.get(IFLA_INFO_DATA);
    if (data) link.infoData = data;
  }
  return link;
}

function decodeAddress(message: NetlinkMessage): Address | undefined {
  const { payload } = message;
  requireHeader(payload, 8, 'address message');
  const family = payload.readUInt8(0);
  if (family !== AF_INET && family !== AF_INET6) return undefined;
  const attrs = decodeAttrs(payload, 8);
  // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
  const ip = addressAttr(attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS), 'IFA_ADDRESS');
  if (!ip) return undefined;
  return {
    index: payload.readUInt32LE(4),
    address: { ...ip, prefixLength: payload.readUInt8(1) },
    flags: readU32(attrs.get(IFA_FLAGS)) ?? payload.readUInt8(2),
    scope: payload.readUInt8(3),
  };
}

function decodeRoute(message: NetlinkMessage): Route {
  const { payload } = message;
  requireHeader(payload, 12, 'route message');
  const family = ipFamilyOf(payload.readUInt8(0));
  const dstLength = payload.readUInt8(1);
  const attrs = decodeAttrs(payload, 12);
  const route: Route = {
    family,
    table: readU32(attrs.get(RTA_TABLE)) ?? payload.readUInt8(4),
    protocol: payload.readUInt8(5),
    scope: payload.readUInt8(6),
    type: payload.readUInt8(7),
  };
  const dst = addressAttr(attrs.get(RTA_DST), 'RTA_DST');
  if (dst) route.dst = { ...dst, prefixLength: dstLength };
  const gateway = addressAttr(attrs.get(RTA_GATEWAY), 'RTA_GATEWAY');
  if (gateway) route.gateway = gateway;
  const oif = readU32(attrs.get(RTA_OIF));
  if (oif !== undefined) route.oif = oif;
  const priority = readU32(attrs.get(RTA_PRIORITY));
  if (priority !== undefined) route.priority = priority;
  const prefsrc = addressAttr(attrs.get(RTA_PREFSRC), 'RTA_PREFSRC');
  if (prefsrc) route.prefsrc = prefsrc;
  const metrics = attrs.get(RTA_METRICS);
  if (metrics) {
    const metricAttrs = decodeAttrs(metrics);
    const mtu = readU32(metricAttrs.get(RTAX_MTU));
    if (mtu !== undefined) route.mtu = mtu;
    const advmss = readU32(metricAttrs.get(RTAX_ADVMSS));
    if (advmss !== undefined) route.advmss = advmss;
  }
  if ((payload.readUInt32LE(8) & RTNH_F_ONLINK) !== 0) route.onlink = true;
  return route;
}

function readAddress(payload: Buffer, offset: number, length: number, what: string): Ip {
  if (length === 4) return { family: 4, value: BigInt(payload.readUInt32BE(offset)) };
  if (length === 16) return { family: 6, value: (payload.readBigUInt64BE(offset) << 64n) | payload.readBigUInt64BE(offset + 8) };
  throw new NetlinkDecodeError(`${what} attribute is ${length} bytes, not an IPv4 or IPv6 address`);
}

/**
 * decodeRoute's result without its per-message attribute Map and per-byte bigint
 * arithmetic: the attributes are read in one pass. For dumps of 100k routes, where
 * decodeRoute's allocations cost more than the kernel's dump.
 */
function decodeRouteQuickly(payload: Buffer): Route {
  requireHeader(payload, 12, 'route message');
  const family = ipFamilyOf(payload.readUInt8(0));
  const route: Route = { family, table: payload.readUInt8(4), protocol: payload.readUInt8(5), scope: payload.readUInt8(6), type: payload.readUInt8(7) };
  let offset = 12;
  while (offset + 4 <= payload.length) {
    const length = payload.readUInt16LE(offset);
    const type = payload.readUInt16LE(offset + 2) & 0x3fff;
    if (length < 4 || offset + length > payload.length) throw new NetlinkDecodeError(`attribute ${type} at offset ${offset} has bad length ${length}`);
    const value = offset + 4;
    const valueLength = length - 4;
    switch (type) {
      case RTA_DST:
        route.dst = { ...readAddress(payload, value, valueLength, 'RTA_DST'), prefixLength: payload.readUInt8(1) };
        break;
      case RTA_GATEWAY:
        route.gateway = readAddress(payload, value, valueLength, 'RTA_GATEWAY');
        break;
      case RTA_PREFSRC:
        route.prefsrc = readAddress(payload, value, valueLength, 'RTA_PREFSRC');
        break;
      case RTA_OIF:
        if (valueLength >= 4) route.oif = payload.readUInt32LE(value);
        break;
      case RTA_PRIORITY:
        if (valueLength >= 4) route.priority = payload.readUInt32LE(value);
        break;
      case RTA_TABLE:
        if (valueLength >= 4) route.table = payload.readUInt32LE(value);
        break;
      case RTA_METRICS: {
        const metrics = decodeAttrs(payload, value, value + valueLength);
        const mtu = readU32(metrics.get(RTAX_MTU));
        if (mtu !== undefined) route.mtu = mtu;
        const advmss = readU32(metrics.get(RTAX_ADVMSS));
        if (advmss !== undefined) route.advmss = advmss;
        break;
      }
    }
    offset += (length + 3) & ~3;
  }
  if ((payload.readUInt32LE(8) & RTNH_F_ONLINK) !== 0) route.onlink = true;
  return route;
}

function decodeNeighbour(message: NetlinkMessage): Neighbour {
  const { payload } = message;
  requireHeader(payload, 12, 'neighbour message');
  const attrs: AttrMap = decodeAttrs(payload, 12);
  const neighbour: Neighbour = {
    family: payload.readUInt8(0),
    index: payload.readInt32LE(4),
    state: payload.readUInt16LE(8),
    flags: payload.readUInt8(10),
  };
  const dst = attrs.get(NDA_DST);
  if (dst && (dst.length === 4 || dst.length === 16)) neighbour.ip = ipFromBytes(dst);
  const mac = attrs.get(NDA_LLADDR);
  if (mac && mac.length === 6) neighbour.mac = formatMac(mac);
  const master = readU32(attrs.get(NDA_MASTER));
  if (master !== undefined) neighbour.masterIndex = master;
  return neighbour;
}

function ndmsg(family: number, index: number, state: number, flags: number): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt8(family, 0);
  head.writeInt32LE(index, 4);
  head.writeUInt16LE(state, 8);
  head.writeUInt8(flags, 10);
  return head;
}

/** One rtnetlink socket and the operations on the namespace it was opened in. */
export class Rtnl {
  constructor(private readonly socket: NetlinkSocket = new NetlinkSocket()) {}

  close(): void {
    this.socket.close();
  }

  // ---- links ----

  links(): Link[] {
    return this.socket.query(RTM_GETLINK, ifinfomsg(), [], true, 'list links').map(decodeLink);
  }

  /** The link with this name, or undefined when there is none. */
  linkByName(name: string): Link | undefined {
    try {
      const [reply] = this.socket.query(RTM_GETLINK, ifinfomsg(), [{ type: IFLA_IFNAME, value: cstring(name) }], false, `get link "${name}"`);
      return reply ? decodeLink(reply) : undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }

  linkByIndex(index: number): Link | undefined {
    try {
      const [reply] = this.socket.query(RTM_GETLINK, ifinfomsg(index), [], false, `get link ${index}`);
      return reply ? decodeLink(reply) : undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }

  /** Creates a link (RTM_NEWLINK with CREATE|EXCL: EEXIST if the name is taken). */
  createLink(spec: NewLink): void {
    const info: Attr[] = [{ type: IFLA_INFO_KIND, value: cstring(spec.kind) }];
    if (spec.peer) {
      const peerHead = ifinfomsg();
      const peerAttrs = linkAttrs(spec.peer);
      info.push({ type: IFLA_INFO_DATA, value: [{ type: VETH_INFO_PEER, value: Buffer.concat([peerHead, encodeAttrs(peerAttrs)]) }] });
    } else if (spec.infoData) {
      info.push({ type: IFLA_INFO_DATA, value: spec.infoData });
    }
    const attrs = linkAttrs(spec);
    if (spec.masterIndex !== undefined) attrs.push({ type: IFLA_MASTER, value: u32(spec.masterIndex) });
    if (spec.txQueueLength !== undefined) attrs.push({ type: IFLA_TXQLEN, value: u32(spec.txQueueLength) });
    attrs.push({ type: IFLA_LINKINFO, value: info });
    const flags = spec.up ? IFF_UP : 0;
    this.socket.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(0, flags, flags), attrs, `create ${spec.kind} link "${spec.name}"`);
  }

  deleteLink(index: number): void {
    this.socket.request(RTM_DELLINK, 0, ifinfomsg(index), [], `delete link ${index}`);
  }

  private setLink(index: number, flags: number, change: number, attrs: Attr[], what: string): void {
    this.socket.request(RTM_NEWLINK, 0, ifinfomsg(index, flags, change), attrs, what);
  }

  setUp(index: number, up = true): void {
    this.setLink(index, up ? IFF_UP : 0, IFF_UP, [], `set link ${index} ${up ? 'up' : 'down'}`);
  }

  setPromisc(index: number, on: boolean): void {
    this.setLink(index, on ? IFF_PROMISC : 0, IFF_PROMISC, [], `set link ${index} promisc ${on ? 'on' : 'off'}`);
  }

  setMtu(index: number, mtu: number): void {
    this.setLink(index, 0, 0, [{ type: IFLA_MTU, value: u32(mtu) }], `set link ${index} mtu ${mtu}`);
  }

  setMac(index: number, mac: string): void {
    this.setLink(index, 0, 0, [{ type: IFLA_ADDRESS, value: parseMac(mac) }], `set link ${index} address ${mac}`);
  }

  setMaster(index: number, masterIndex: number): void {
    this.setLink(index, 0, 0, [{ type: IFLA_MASTER, value: u32(masterIndex) }], `attach link ${index} to ${masterIndex}`);
  }

  setAlias(index: number, alias: string): void {
    this.setLink(index, 0, 0, [{ type: IFLA_IFALIAS, value: cstring(alias) }], `set link ${index} alias`);
  }



  /** Moves a link into the namespace behind `netnsFd`. */
  setNetns(index: number, netnsFd: number): void {
    this.setLink(index, 0, 0, [{ type: IFLA_NET_NS_FD, value: u32(netnsFd) }], `move link ${index} to another namespace`);
  }

  /** Hairpin mode on a bridge port: frames may leave through the port they came in on. */
  setHairpin(index: number, on: boolean): void {
    const protinfo: Attr = { type: IFLA_PROTINFO, nestedFlag: true, value: [{ type: IFLA_BRPORT_MODE, value: u8(on ? 1 : 0) }] };
    this.socket.request(RTM_SETLINK, 0, ifinfomsg(index, 0, 0, AF_BRIDGE), [protinfo], `set hairpin on link ${index}`);
  }

  // ---- addresses ----

  addresses(family?: IpFamily, index?: number): Address[] {
    const head = Buffer.alloc(8);
    head.writeUInt8(family === undefined ? AF_UNSPEC : family === 4 ? AF_INET : AF_INET6, 0);
    return this.socket
      .query(RTM_GETADDR, head, [], true, 'list addresses')
      .map(decodeAddress)
      .filter((address): address is Address => address !== undefined && (index === undefined || address.index === index));
  }

  addAddress(index: number, address: IpNet, options: { flags?: number; broadcast?: Ip; scope?: number } = {}): void {
    this.socket.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddrmsg(index, address, options.scope ?? 0), addressAttrs(address, options), `add address to link ${index}`);
  }

  deleteAddress(index: number, address: IpNet): void {
    this.socket.request(RTM_DELADDR, 0, ifaddrmsg(index, address, 0), addressAttrs(address, {}), `delete address from link ${index}`);
  }

  // ---- routes ----

  routes(family?: IpFamily, table: number | 'all' = RT_TABLE_MAIN): Route[] {
    const head = Buffer.alloc(12);
    head.writeUInt8(family === undefined ? AF_UNSPEC : family === 4 ? AF_INET : AF_INET6, 0);
    return this.socket
      .query(RTM_GETROUTE, head, [], true, 'list routes')
      .map(decodeRoute)
      .filter((route) => table === 'all' || route.table === table);
  }

  /** Adds a route; `replace` turns it into create-or-replace (NLM_F_REPLACE). */
  addRoute(route: Route, options: { replace?: boolean; append?: boolean } = {}): void {
    const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : options.append ? NLM_F_APPEND : NLM_F_EXCL);
    this.socket.request(RTM_NEWROUTE, flags, rtmsg(route), routeAttrs(route), `add route ${describeRoute(route)}`);
  }

  deleteRoute(route: Route): void {
    this.socket.request(RTM_DELROUTE, 0, rtmsg(route), routeAttrs(route), `delete route ${describeRoute(route)}`);
  }

  /**
   * The routes one protocol (RTPROT_*) owns, in `table` ('all' for every table), of one
   * family or both. The filter reads the rtmsg header before decoding attributes, so a
   * table full of other daemons' routes costs little. (The kernel can filter dumps itself
   * only under NETLINK_GET_STRICT_CHK, which would change how every other request on this
   * socket is validated.)
   */
  routesOfProtocol(protocol: number, options: { family?: IpFamily; table?: number | 'all' } = {}): Route[] {
    const table = options.table ?? RT_TABLE_MAIN;
    const head = Buffer.alloc(12);
    head.writeUInt8(options.family === undefined ? AF_UNSPEC : options.family === 4 ? AF_INET : AF_INET6, 0);
    const routes: Route[] = [];
    for (const message of this.socket.query(RTM_GETROUTE, head, [], true, `list routes of protocol ${protocol}`)) {
      if (message.payload.length < 12 || message.payload.readUInt8(5) !== protocol) continue;
      const route = decodeRouteQuickly(message.payload);
      if (table === 'all' || route.table === table) routes.push(route);
    }
    return routes;
  }

  /**
   * Adds, replaces and deletes many routes with one sendmsg, made from a threadpool thread
   * (NetlinkSocket.sendBatchInBackground): rtnetlink runs the datagram's messages in order
   * inside that call, so the kernel inserts the routes while the event loop goes on, which
   * is what a speaker receiving a table transfer wants. Only the last message asks for an
   * ACK; the kernel answers every failed message with an error anyway. Unlike an nfnetlink
   * batch this is no transaction: each message stands alone, and the failures are returned
   * by op index. One call in flight per Rtnl. A rejection means some messages may have run
   * (ENOBUFS: replies were lost).
   *
   * Encoding writes straight into one buffer, with no per-route attribute objects: at 100k
   * routes the JavaScript side would otherwise cost as much as the kernel's.
   */
  async applyRoutesInBackground(ops: readonly RouteOp[]): Promise<RouteOpFailure[]> {
    if (ops.length === 0) return [];
    const writer = new NetlinkWriter(ops.length * 96);
    const encoder = new RouteEncoder();
    const firstSeq = this.socket.nextSeq(ops.length);
    ops.forEach((op, i) => encoder.write(writer, op, (firstSeq + i) >>> 0, i === ops.length - 1));
    const failed = await this.socket.sendBatchInBackground(writer.finish(), firstSeq, (firstSeq + ops.length - 1) >>> 0);
    const failures: RouteOpFailure[] = [];
    for (const [seq, { errno, text }] of failed) {
      const index = (seq - firstSeq) >>> 0;
      const op = ops[index];
      if (!op) continue;
      failures.push(text === undefined ? { index, op, errno, code: errnoName(errno) } : { index, op, errno, code: errnoName(errno), text });
    }
    return failures.sort((a, b) => a.index - b.index);
  }

  // ---- neighbours and FDB ----

  neighbours(family: number, index?: number): Neighbour[] {
    return this.socket
      .query(RTM_GETNEIGH, ndmsg(family, 0, 0, 0), [], true, 'list neighbours')
      .map(decodeNeighbour)
      .filter((neighbour) => neighbour.family === family && (index === undefined || neighbour.index === index));
  }

  /** Creates or replaces an ARP/NDP entry (or, with family AF_BRIDGE, an FDB entry). */
  setNeighbour(neighbour: Neighbour): void {
    const attrs: Attr[] = [];
    if (neighbour.ip) attrs.push({ type: NDA_DST, value: ipToBytes(neighbour.ip) });
    if (neighbour.mac) attrs.push({ type: NDA_LLADDR, value: parseMac(neighbour.mac) });
    const head = ndmsg(neighbour.family, neighbour.index, neighbour.state, neighbour.flags);
    this.socket.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, head, attrs, `set neighbour on link ${neighbour.index}`);
  }

  deleteNeighbour(neighbour: Neighbour): void {
    const attrs: Attr[] = [];
    if (neighbour.ip) attrs.push({ type: NDA_DST, value: ipToBytes(neighbour.ip) });
    if (neighbour.mac) attrs.push({ type: NDA_LLADDR, value: parseMac(neighbour.mac) });
    this.socket.request(RTM_DELNEIGH, 0, ndmsg(neighbour.family, neighbour.index, 0, neighbour.flags), attrs, `delete neighbour on link ${neighbour.index}`);
  }
}

function ifaddrmsg(index: number, address: IpNet, scope: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt8(familyOf(address), 0);
  head.writeUInt8(address.prefixLength, 1);
  head.writeUInt8(scope, 3);
  head.writeUInt32LE(index, 4);
  return head;
}

function addressAttrs(address: IpNet, options: { flags?: number; broadcast?: Ip }): Attr[] {
  const bytes = ipToBytes(address);
  const attrs: Attr[] = [
    { type: IFA_LOCAL, value: bytes },
    { type: IFA_ADDRESS, value: bytes },
  ];
  if (options.broadcast) attrs.push({ type: IFA_BROADCAST, value: ipToBytes(options.broadcast) });
  if (options.flags) attrs.push({ type: IFA_FLAGS, value: u32(options.flags) });
  return attrs;
}

function rtmsg(route: Route): Buffer {
  const head = Buffer.alloc(12);
  const table = route.table ?? RT_TABLE_MAIN;
  head.writeUInt8(route.family === 4 ? AF_INET : AF_INET6, 0);
  head.writeUInt8(route.dst?.prefixLength ?? 0, 1);
  head.writeUInt8(table < 256 ? table : 0, 4);
  head.writeUInt8(route.protocol ?? RTPROT_BOOT, 5);
  head.writeUInt8(route.scope ?? (route.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK), 6);
  head.writeUInt8(route.type ?? RTN_UNICAST, 7);
  head.writeUInt32LE(route.onlink ? RTNH_F_ONLINK : 0, 8);
  return head;
}

function routeAttrs(route: Route): Attr[] {
  const attrs: Attr[] = [{ type: RTA_TABLE, value: u32(route.table ?? RT_TABLE_MAIN) }];
  if (route.dst) attrs.push({ type: RTA_DST, value: ipToBytes(route.dst) });
  if (route.gateway) attrs.push({ type: RTA_GATEWAY, value: ipToBytes(route.gateway) });
  if (route.oif !== undefined) attrs.push({ type: RTA_OIF, value: u32(route.oif) });
  if (route.priority !== undefined) attrs.push({ type: RTA_PRIORITY, value: u32(route.priority) });
  if (route.prefsrc) attrs.push({ type: RTA_PREFSRC, value: ipToBytes(route.prefsrc) });
  const metrics: Attr[] = [];
  if (route.mtu !== undefined) metrics.push({ type: RTAX_MTU, value: u32(route.mtu) });
  if (route.advmss !== undefined) metrics.push({ type: RTAX_ADVMSS, value: u32(route.advmss) });
  if (metrics.length > 0) attrs.push({ type: RTA_METRICS, value: metrics });
  return attrs;
}

/** One step of `Rtnl.applyRoutesInBackground`. */
export interface RouteOp {
  /** add: create, EEXIST if a route with the same key exists (any protocol); replace: create or replace; delete */
  op: 'add' | 'replace' | 'delete';
  route: Route;
}

export interface RouteOpFailure {
  /** Position of the op in the array given to applyRoutesInBackground. */
  index: number;
  op: RouteOp;
  errno: number;
  /** `EEXIST`, `ENODEV`, `ESRCH`... */
  code: string;
  /** The kernel's extended-ACK message, when it sent one. */
  text?: string;
}

/**
 * Writes route messages like rtmsg()/routeAttrs() do, field for field, into a
 * NetlinkWriter, through scratch buffers reused for every route.
 *
 * The routes of one sync mostly differ in their IPv4 destination alone (100k prefixes via
 * a handful of next hops). An IPv4 route of the previous one's shape — the same op and
 * every field but `dst` — is written as a copy of the previous message with the
 * destination, prefix length, sequence number and flags patched: a ~64-byte copy instead
 * of seven attribute writes, which halves the encoder's share of a table transfer.
 */
class RouteEncoder {
  private readonly head = Buffer.alloc(12);
  private readonly address6 = Buffer.alloc(16);
  /** The previous message, for the repeat path: where it is, and what it was written from. */
  private previous: { writer: NetlinkWriter; start: number; length: number; dstOffset: number; op: RouteOp['op']; route: Route } | undefined;
  /** Where the last RTA_DST value went (set by `address`). */
  private dstAt = -1;

  write(w: NetlinkWriter, { op, route }: RouteOp, seq: number, ack: boolean): void {
    const flags = (op === 'add' ? NLM_F_CREATE | NLM_F_EXCL : op === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : 0) | NLM_F_REQUEST | (ack ? NLM_F_ACK : 0);
    const previous = this.previous;
    if (previous !== undefined && previous.writer === w && previous.op === op && route.dst !== undefined && route.family === 4 && sameShape(route, previous.route)) {
      const start = w.repeat(previous.start, previous.length);
      w.patchU16LE(start + 6, flags);
      w.patchU32LE(start + 8, seq);
      w.patchU8(start + NLMSG_HDRLEN + 1, route.dst.prefixLength);
      w.patchU32BE(start + previous.dstOffset, Number(route.dst.value & 0xffffffffn));
      previous.start = start;
      return;
    }
    const table = route.table ?? RT_TABLE_MAIN;
    const type = route.type ?? RTN_UNICAST;
    const { head } = this;
    head.fill(0);
    head.writeUInt8(route.family === 4 ? AF_INET : AF_INET6, 0);
    head.writeUInt8(route.dst?.prefixLength ?? 0, 1);
    head.writeUInt8(table < 256 ? table : 0, 4);
    head.writeUInt8(route.protocol ?? RTPROT_BOOT, 5);
    // A blackhole has universe scope (the kernel refuses link scope for it), like a gateway route.
    // RT_SCOPE_NOWHERE on a delete matches any scope (what iproute2 sends).
    const scope = route.scope ?? (op === 'delete' ? RT_SCOPE_NOWHERE : route.gateway || type !== RTN_UNICAST ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
    head.writeUInt8(scope, 6);
    head.writeUInt8(type, 7);
    head.writeUInt32LE(route.onlink ? RTNH_F_ONLINK : 0, 8);
    const message = w.beginMessage(op === 'delete' ? RTM_DELROUTE : RTM_NEWROUTE, flags, seq, head);
    // Straight into the writer, no scratch copies: this runs once per route of a 100k-route sync.
    w.u32le(RTA_TABLE, table);
    this.dstAt = -1;
    if (route.dst) this.address(w, RTA_DST, route.dst);
    if (route.gateway) this.address(w, RTA_GATEWAY, route.gateway);
    if (route.oif !== undefined) w.u32le(RTA_OIF, route.oif);
    if (route.priority !== undefined) w.u32le(RTA_PRIORITY, route.priority);
    if (route.prefsrc) this.address(w, RTA_PREFSRC, route.prefsrc);
    if (route.mtu !== undefined || route.advmss !== undefined) {
      const metrics = w.beginNest(RTA_METRICS);
      if (route.mtu !== undefined) w.u32le(RTAX_MTU, route.mtu);
      if (route.advmss !== undefined) w.u32le(RTAX_ADVMSS, route.advmss);
      w.endNest(metrics);
    }
    w.endMessage(message);
    this.previous = route.family === 4 && this.dstAt >= 0 ? { writer: w, start: message, length: w.sizeSince(message), dstOffset: this.dstAt - message, op, route } : undefined;
  }

  private address(w: NetlinkWriter, type: number, ip: Ip): void {
    if (ip.family === 4) {
      if (type === RTA_DST) this.dstAt = w.length + 4;
      w.u32be(type, Number(ip.value & 0xffffffffn));
      return;
    }
    this.address6.writeBigUInt64BE(ip.value >> 64n, 0);
    this.address6.writeBigUInt64BE(ip.value & 0xffffffffffffffffn, 8);
    w.bytes(type, this.address6);
  }
}

/** Every field but `dst` the same (both IPv4): the messages differ in the destination alone. */
function sameShape(a: Route, b: Route): boolean {
  return (
    a.family === b.family &&
    a.table === b.table &&
    a.protocol === b.protocol &&
    a.scope === b.scope &&
    a.type === b.type &&
    a.priority === b.priority &&
    a.oif === b.oif &&
    a.mtu === b.mtu &&
    a.advmss === b.advmss &&
    a.onlink === b.onlink &&
    a.gateway?.family === b.gateway?.family &&
    a.gateway?.value === b.gateway?.value &&
    a.prefsrc?.family === b.prefsrc?.family &&
    a.prefsrc?.value === b.prefsrc?.value
  );
}

function describeRoute(route: Route): string {
  const target = route.dst ? formatIpNet(route.dst) : 'default';
  return route.gateway ? `${target} via ${formatIp(route.gateway)}` : target;
}


/** The message decoders, for the malformed-input tests. */
export const rtnlDecoders = { decodeLink, decodeAddress, decodeRoute, decodeRouteQuickly, decodeNeighbour };
