/** IFLA_INFO_DATA for `vxlan` links: encode for creation, decode to compare with what we want. */
import { ipFromBytes, ipToBytes, type Ip } from '../ip.js';
import { type Attr, decodeAttrs, readU32, readU8, u16be, u32, u8 } from './codec.js';

// linux/if_link.h IFLA_VXLAN_*
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_TTL = 5;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_LOCAL6 = 17;
const IFLA_VXLAN_UDP_CSUM = 18;

export interface VxlanSpec {
  vni: number;
  /** UDP destination port (8472 is flannel's default, 4789 the IANA one). */
  port: number;
  /** Source address for the outer header. */
  local?: Ip;
  /** Index of the underlay interface. */
  underlayIndex?: number;
  learning: boolean;
}

export function vxlanInfoData(spec: VxlanSpec): Attr[] {
  const attrs: Attr[] = [
    { type: IFLA_VXLAN_ID, value: u32(spec.vni) },
    { type: IFLA_VXLAN_PORT, value: u16be(spec.port) },
    { type: IFLA_VXLAN_LEARNING, value: u8(spec.learning ? 1 : 0) },
    { type: IFLA_VXLAN_TTL, value: u8(0) },
  ];
  if (spec.local) attrs.push({ type: spec.local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, value: ipToBytes(spec.local) });
  if (spec.local?.family === 6) attrs.push({ type: IFLA_VXLAN_UDP_CSUM, value: u8(1) });
  if (spec.underlayIndex !== undefined) attrs.push({ type: IFLA_VXLAN_LINK, value: u32(spec.underlayIndex) });
  return attrs;
}

export function decodeVxlanInfo(data: Buffer): VxlanSpec {
  const attrs = decodeAttrs(data);
  const port = attrs.get(IFLA_VXLAN_PORT);
  const local = attrs.get(IFLA_VXLAN_LOCAL) ?? attrs.get(IFLA_VXLAN_LOCAL6);
  const spec: VxlanSpec = {
    vni: readU32(attrs.get(IFLA_VXLAN_ID)) ?? 0,
    port: port && port.length >= 2 ? port.readUInt16BE(0) : 0,
    learning: (readU8(attrs.get(IFLA_VXLAN_LEARNING)) ?? 1) !== 0,
  };
  if (local) spec.local = ipFromBytes(local);
  const underlay = readU32(attrs.get(IFLA_VXLAN_LINK));
  if (underlay !== undefined) spec.underlayIndex = underlay;
  return spec;
}
