/**
 * RFC 5492 capabilities, carried in OPEN optional parameter type 2: Code (1), Length (1),
 * Value. The ones we interpret:
 *   1  Multiprotocol Extensions (RFC 4760 §8): AFI (2), Reserved (1), SAFI (1)
 *   2  Route Refresh (RFC 2918 §2), empty
 *   64 Graceful Restart (RFC 4724 §3): Restart Flags (4 bits, R = 0x8) and Restart Time
 *      (12 bits, seconds), then per family AFI (2), SAFI (1), Flags (1, F = 0x80)
 *   65 Support for 4-octet AS numbers (RFC 6793 §3): the AS (4)
 *   70 Enhanced Route Refresh (RFC 7313 §3.1), empty
 * Anything else is kept as `unknown` with its value, so the FSM can log or echo it.
 *
 * Decisions: a known capability with the wrong length is a malformed optional parameter,
 * OPEN Message Error / Unspecific (RFC 4271 §6.2), with the capability as data. A
 * multiprotocol capability for a family we do not model stays `unknown` (lossless); a
 * Graceful Restart entry for such a family is dropped (reported in `problems`), as is the
 * RFC 8538 N bit, which the model has no field for. Whether a capability is acceptable
 * (Unsupported Capability, subcode 7) is the FSM's policy, not the codec's.
 */
import { afiSafiOf, type Capability, ERROR_CODE, type Family, familyOf } from '../types.js';
import { BgpEncodeError, BgpMessageError } from './errors.js';
import { checkUint, copyBytes, Reader, type Writer } from './wire.js';

/** IANA "Capability Codes" */
export const CAPABILITY_CODE = {
  MULTIPROTOCOL: 1,
  ROUTE_REFRESH: 2,
  GRACEFUL_RESTART: 64,
  FOUR_OCTET_AS: 65,
  ENHANCED_ROUTE_REFRESH: 70,
} as const;

/** RFC 4724 §3 */
export const GRACEFUL_RESTART_FLAG = { RESTART_STATE: 0x8 } as const;
export const GRACEFUL_RESTART_AF_FLAG = { FORWARDING_STATE: 0x80 } as const;
const RESTART_TIME_MASK = 0x0fff;

/** RFC 4271 §6.2: a recognised optional parameter that is malformed. */
const OPEN_UNSPECIFIC = 0;

function malformedCapability(raw: Uint8Array, why: string): BgpMessageError {
  return new BgpMessageError(ERROR_CODE.OPEN_MESSAGE, OPEN_UNSPECIFIC, copyBytes(raw), `malformed capability: ${why}`);
}

/** Decodes the capabilities in one optional parameter's value. */
export function decodeCapabilities(value: Uint8Array, problems: string[]): Capability[] {
  const reader = new Reader(value, (what) => malformedCapability(value, `${what} runs past the parameter`));
  const capabilities: Capability[] = [];
  while (reader.remaining > 0) {
    const start = reader.offset;
    const code = reader.u8('capability code');
    const length = reader.u8('capability length');
    const body = reader.bytesView(length, `capability ${code} value`);
    const raw = value.subarray(start, reader.offset);
    const expectLength = (expected: number): void => {
      if (length !== expected) throw malformedCapability(raw, `capability ${code} has length ${length}, not ${expected}`);
    };
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    switch (code) {
      case CAPABILITY_CODE.MULTIPROTOCOL: {
        expectLength(4);
        const family = familyOf(view.getUint16(0), view.getUint8(3));
        capabilities.push(family ? { code: 'multiprotocol', family } : { code: 'unknown', type: code, value: copyBytes(body) });
        break;
      }
      case CAPABILITY_CODE.ROUTE_REFRESH:
        expectLength(0);
        capabilities.push({ code: 'route-refresh' });
        break;
      case CAPABILITY_CODE.ENHANCED_ROUTE_REFRESH:
        expectLength(0);
        capabilities.push({ code: 'enhanced-route-refresh' });
        break;
      case CAPABILITY_CODE.FOUR_OCTET_AS:
        expectLength(4);
        capabilities.push({ code: 'four-octet-asn', asn: view.getUint32(0) });
        break;
      case CAPABILITY_CODE.GRACEFUL_RESTART: {
        if (length < 2 || (length - 2) % 4 !== 0) throw malformedCapability(raw, `graceful restart length ${length} is not 2 + 4n`);
        const flagsAndTime = view.getUint16(0);
        if (flagsAndTime & 0x4000) problems.push('graceful restart N bit (RFC 8538) ignored');
        const families: { family: Family; forwardingPreserved: boolean }[] = [];
        for (let at = 2; at < length; at += 4) {
          const afi = view.getUint16(at);
          const safi = view.getUint8(at + 2);
          const family = familyOf(afi, safi);
          if (!family) {
            problems.push(`graceful restart entry for AFI ${afi} SAFI ${safi} ignored`);
            continue;
          }
          families.push({ family, forwardingPreserved: (view.getUint8(at + 3) & GRACEFUL_RESTART_AF_FLAG.FORWARDING_STATE) !== 0 });
        }
        capabilities.push({
          code: 'graceful-restart',
          restarting: ((flagsAndTime >> 12) & GRACEFUL_RESTART_FLAG.RESTART_STATE) !== 0,
          restartTimeSeconds: flagsAndTime & RESTART_TIME_MASK,
          families,
        });
        break;
      }
      default:
        capabilities.push({ code: 'unknown', type: code, value: copyBytes(body) });
    }
  }
  return capabilities;
}

/** One capability's Code, Length and Value. */
export function writeCapability(writer: Writer, capability: Capability): void {
  switch (capability.code) {
    case 'multiprotocol': {
      const { afi, safi } = afiSafiOf(capability.family);
      writer.u8(CAPABILITY_CODE.MULTIPROTOCOL);
      writer.u8(4);
      writer.u16(afi);
      writer.u8(0);
      writer.u8(safi);
      break;
    }
    case 'route-refresh':
      writer.u8(CAPABILITY_CODE.ROUTE_REFRESH);
      writer.u8(0);
      break;
    case 'enhanced-route-refresh':
      writer.u8(CAPABILITY_CODE.ENHANCED_ROUTE_REFRESH);
      writer.u8(0);
      break;
    case 'four-octet-asn':
      writer.u8(CAPABILITY_CODE.FOUR_OCTET_AS);
      writer.u8(4);
      writer.u32(checkUint(capability.asn, 32, 'four-octet AS capability'));
      break;
    case 'graceful-restart': {
      if (!Number.isInteger(capability.restartTimeSeconds) || capability.restartTimeSeconds < 0 || capability.restartTimeSeconds > RESTART_TIME_MASK) {
        throw new BgpEncodeError('graceful restart capability', `restart time ${capability.restartTimeSeconds} s is not 0..4095`);
      }
      const length = 2 + 4 * capability.families.length;
      if (length > 255) throw new BgpEncodeError('graceful restart capability', `${capability.families.length} families do not fit`);
      writer.u8(CAPABILITY_CODE.GRACEFUL_RESTART);
      writer.u8(length);
      writer.u16(((capability.restarting ? GRACEFUL_RESTART_FLAG.RESTART_STATE : 0) << 12) | capability.restartTimeSeconds);
      for (const { family, forwardingPreserved } of capability.families) {
        const { afi, safi } = afiSafiOf(family);
        writer.u16(afi);
        writer.u8(safi);
        writer.u8(forwardingPreserved ? GRACEFUL_RESTART_AF_FLAG.FORWARDING_STATE : 0);
      }
      break;
    }
    case 'unknown':
      if (capability.value.length > 255) throw new BgpEncodeError(`capability ${capability.type}`, `value of ${capability.value.length} bytes exceeds 255`);
      writer.u8(checkUint(capability.type, 8, 'capability code'));
      writer.u8(capability.value.length);
      writer.bytes(capability.value);
      break;
  }
}
