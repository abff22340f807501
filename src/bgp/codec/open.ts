/**
 * RFC 4271 §4.2 OPEN:
 *   Version (1) | My Autonomous System (2) | Hold Time (2) | BGP Identifier (4) |
 *   Opt Parm Len (1) | Optional Parameters (Type 1, Length 1, Value)
 * Only parameter type 2, Capabilities (RFC 5492), is defined today; any other type is
 * Unsupported Optional Parameter (§6.2). Capabilities may be spread over several type-2
 * parameters; they are collected in order. RFC 9072 extended parameter lengths are not
 * spoken (we never advertise them, so a peer must not use them).
 *
 * Which checks live here: the ones that need nothing but the message. Version ≠ 4 is
 * Unsupported Version with the version we support (4) as a 2-octet data field; Hold Time 1
 * or 2 is Unacceptable Hold Time (§6.2 "MUST reject"); BGP Identifier 0 is Bad BGP
 * Identifier (RFC 6286 §2.2: a non-zero 4-octet number). Checks that need the session —
 * the expected peer AS, an identifier equal to ours, a hold time below local policy,
 * required capabilities — are the FSM's.
 *
 * ASNs (RFC 6793 §4.1): the model's `asn` is the real AS. It comes from the 4-octet AS
 * capability when present (the 2-octet field then holds AS_TRANS if the AS does not fit),
 * otherwise from My Autonomous System. Encoding writes AS_TRANS in the 2-octet field for an
 * AS above 65535, which needs the 4-octet capability in the message.
 */
import { AS_TRANS, type Capability, ERROR_CODE, OPEN_SUBCODE, type OpenMessage } from '../types.js';
import { decodeCapabilities, writeCapability } from './capabilities.js';
import { BgpEncodeError, BgpMessageError, u16Data } from './errors.js';
import { badLength, BGP_HEADER_LENGTH } from './header.js';
import { checkUint, Reader, Writer } from './wire.js';

export const BGP_VERSION = 4;
/** Header plus the fixed fields: the shortest OPEN (§4.2). */
export const OPEN_MIN_LENGTH = 29;
/** RFC 5492 §4 */
export const OPTIONAL_PARAMETER_TYPE = { CAPABILITIES: 2 } as const;
const OPEN_UNSPECIFIC = 0;

function malformedOpen(why: string): BgpMessageError {
  return new BgpMessageError(ERROR_CODE.OPEN_MESSAGE, OPEN_UNSPECIFIC, new Uint8Array(0), `malformed OPEN: ${why}`);
}

/** `frame` is the whole message, header included and already checked. */
export function decodeOpen(frame: Uint8Array, problems: string[]): OpenMessage {
  if (frame.length < OPEN_MIN_LENGTH) throw badLength(frame.length, `OPEN of ${frame.length} bytes is shorter than ${OPEN_MIN_LENGTH}`);
  const reader = new Reader(frame, (what) => malformedOpen(`${what} runs past the message`), BGP_HEADER_LENGTH);
  const version = reader.u8('version');
  if (version !== BGP_VERSION) {
    throw new BgpMessageError(ERROR_CODE.OPEN_MESSAGE, OPEN_SUBCODE.UNSUPPORTED_VERSION, u16Data(BGP_VERSION), `version ${version} is not 4`);
  }
  const myAs = reader.u16('My Autonomous System');
  const holdTimeSeconds = reader.u16('Hold Time');
  if (holdTimeSeconds === 1 || holdTimeSeconds === 2) {
    throw new BgpMessageError(ERROR_CODE.OPEN_MESSAGE, OPEN_SUBCODE.UNACCEPTABLE_HOLD_TIME, new Uint8Array(0), `hold time ${holdTimeSeconds} s`);
  }
  const routerId = reader.u32('BGP Identifier');
  if (routerId === 0) throw new BgpMessageError(ERROR_CODE.OPEN_MESSAGE, OPEN_SUBCODE.BAD_BGP_IDENTIFIER, new Uint8Array(0), 'BGP Identifier is 0');
  const parametersLength = reader.u8('Opt Parm Len');
  if (parametersLength !== reader.remaining) {
    throw malformedOpen(`Opt Parm Len ${parametersLength} but ${reader.remaining} bytes follow`);
  }
  const capabilities: Capability[] = [];
  while (reader.remaining > 0) {
    const type = reader.u8('parameter type');
    const length = reader.u8('parameter length');
    const value = reader.bytesView(length, `parameter ${type}`);
    if (type !== OPTIONAL_PARAMETER_TYPE.CAPABILITIES) {
      throw new BgpMessageError(ERROR_CODE.OPEN_MESSAGE, OPEN_SUBCODE.UNSUPPORTED_OPTIONAL_PARAMETER, new Uint8Array(0), `optional parameter type ${type}`);
    }
    capabilities.push(...decodeCapabilities(value, problems));
  }
  const fourOctet = capabilities.find((c) => c.code === 'four-octet-asn');
  return { type: 'open', version, asn: fourOctet ? fourOctet.asn : myAs, holdTimeSeconds, routerId, capabilities };
}

/** The OPEN's body (everything after the header). */
export function encodeOpenBody(open: OpenMessage): Uint8Array {
  if (open.version !== BGP_VERSION) throw new BgpEncodeError('OPEN', `version ${open.version} is not 4`);
  checkUint(open.asn, 32, 'OPEN AS');
  const fourOctet = open.capabilities.find((c) => c.code === 'four-octet-asn');
  if (fourOctet && fourOctet.asn !== open.asn) throw new BgpEncodeError('OPEN', `asn ${open.asn} differs from the 4-octet AS capability's ${fourOctet.asn}`);
  if (!fourOctet && open.asn > 0xffff) throw new BgpEncodeError('OPEN', `AS ${open.asn} needs the 4-octet AS capability`);
  const writer = new Writer();
  writer.u8(BGP_VERSION);
  writer.u16(open.asn > 0xffff ? AS_TRANS : open.asn);
  writer.u16(checkUint(open.holdTimeSeconds, 16, 'OPEN hold time'));
  writer.u32(checkUint(open.routerId, 32, 'OPEN BGP Identifier'));
  // All capabilities go in one type-2 parameter: without RFC 9072 the whole Optional
  // Parameters field is at most 255 bytes, so splitting them could never win room.
  const capabilities = new Writer(64);
  for (const capability of open.capabilities) writeCapability(capabilities, capability);
  const value = capabilities.finish();
  if (value.length > 0) {
    if (2 + value.length > 255) throw new BgpEncodeError('OPEN', `capabilities of ${value.length} bytes exceed the 253 an OPEN can carry`);
    writer.u8(2 + value.length);
    writer.u8(OPTIONAL_PARAMETER_TYPE.CAPABILITIES);
    writer.u8(value.length);
    writer.bytes(value);
  } else {
    writer.u8(0);
  }
  return writer.finish();
}
