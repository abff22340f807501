/**
 * ROUTE-REFRESH (RFC 2918 §3, subtypes from RFC 7313 §3.2):
 *   AFI (2) | Message Subtype (1; "Reserved" in RFC 2918) | SAFI (1)
 * Subtype 0 is a normal request, 1 Beginning of Route Refresh, 2 End of Route Refresh.
 *
 * RFC 7313 §5: a BoRR or EoRR whose body is not 4 bytes is ROUTE-REFRESH Message Error /
 * Invalid Message Length with the whole message as data; for subtype 0 (or when the
 * subtype octet is not even there) a wrong length is the header's Bad Message Length. A
 * reserved subtype (3..254) MUST be ignored, and so must a request for a family that was
 * not negotiated (RFC 2918 §4); the codec cannot name a family outside the model, so both
 * come back with `ignore` set (the family then is a placeholder) for the FSM to drop.
 */
import { afiSafiOf, ERROR_CODE, familyOf, type RouteRefreshMessage } from '../types.js';
import { BgpMessageError } from './errors.js';
import { badLength, BGP_HEADER_LENGTH } from './header.js';
import { checkUint, copyBytes, Writer } from './wire.js';

export const ROUTE_REFRESH_LENGTH = 23;
/** RFC 7313 §3.2 */
export const ROUTE_REFRESH_SUBTYPE = { REQUEST: 0, BEGIN: 1, END: 2 } as const;
/** RFC 7313 §5, error code 7 */
export const ROUTE_REFRESH_SUBCODE = { INVALID_MESSAGE_LENGTH: 1 } as const;

export interface DecodedRouteRefresh {
  readonly message: RouteRefreshMessage;
  readonly ignore?: string;
}

export function decodeRouteRefresh(frame: Uint8Array): DecodedRouteRefresh {
  if (frame.length !== ROUTE_REFRESH_LENGTH) {
    const subtype = frame[BGP_HEADER_LENGTH + 2];
    if (subtype === ROUTE_REFRESH_SUBTYPE.BEGIN || subtype === ROUTE_REFRESH_SUBTYPE.END) {
      throw new BgpMessageError(ERROR_CODE.ROUTE_REFRESH_MESSAGE, ROUTE_REFRESH_SUBCODE.INVALID_MESSAGE_LENGTH, copyBytes(frame), `ROUTE-REFRESH subtype ${subtype} of ${frame.length} bytes`);
    }
    throw badLength(frame.length, `ROUTE-REFRESH of ${frame.length} bytes is not ${ROUTE_REFRESH_LENGTH}`);
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const afi = view.getUint16(BGP_HEADER_LENGTH);
  const subtype = view.getUint8(BGP_HEADER_LENGTH + 2);
  const safi = view.getUint8(BGP_HEADER_LENGTH + 3);
  const family = familyOf(afi, safi);
  const message: RouteRefreshMessage = { type: 'route-refresh', family: family ?? 'ipv4-unicast', subtype };
  if (!family) return { message, ignore: `ROUTE-REFRESH for AFI ${afi} SAFI ${safi}, which is not spoken` };
  if (subtype > ROUTE_REFRESH_SUBTYPE.END) return { message, ignore: `ROUTE-REFRESH subtype ${subtype} is reserved` };
  return { message };
}

export function encodeRouteRefreshBody(refresh: RouteRefreshMessage): Uint8Array {
  const { afi, safi } = afiSafiOf(refresh.family);
  const writer = new Writer(4);
  writer.u16(afi);
  writer.u8(checkUint(refresh.subtype, 8, 'ROUTE-REFRESH subtype'));
  writer.u8(safi);
  return writer.finish();
}
