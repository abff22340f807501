/**
 * The BGP message codec: pure functions from frames to `BgpMessage` (types.ts) and back,
 * no sockets. `MessageFramer` cuts the TCP stream into frames; `decodeMessage` checks a
 * frame's header and hands it to the decoder for its type; `encodeMessage` is the inverse
 * and refuses to produce more than 4096 bytes (RFC 4271 §4.1).
 *
 * A `BgpMessageError` from any of them means "send this NOTIFICATION and reset". The milder
 * RFC 7606 outcomes come back on `DecodedMessage`: `treatAsWithdraw` (withdraw the
 * prefixes the message carries), `discarded` (attribute type codes dropped) and
 * `problems` (human-readable notes for the log), plus `ignore` for a ROUTE-REFRESH the FSM
 * must drop (RFC 7313 §5, RFC 2918 §4).
 */
import { type BgpMessage, type CodecContext, ERROR_CODE, HEADER_SUBCODE, MESSAGE_TYPE } from '../types.js';
import { BgpEncodeError, BgpMessageError } from './errors.js';
import { badLength, BGP_HEADER_LENGTH, BGP_MAX_MESSAGE_LENGTH, checkHeader, writeHeader } from './header.js';
import { decodeKeepalive } from './keepalive.js';
import { decodeNotification, encodeNotificationBody } from './notification.js';
import { decodeOpen, encodeOpenBody } from './open.js';
import { decodeRouteRefresh, encodeRouteRefreshBody } from './route-refresh.js';
import { decodeUpdate, encodeUpdateBody } from './update.js';

export { AS_PATH_SEGMENT, asPathCount, mergeAs4Path } from './as-path.js';
export { KNOWN_ATTRIBUTES, ORIGIN_CODE } from './attributes.js';
export { CAPABILITY_CODE, GRACEFUL_RESTART_AF_FLAG, GRACEFUL_RESTART_FLAG } from './capabilities.js';
export { BgpEncodeError, BgpMessageError } from './errors.js';
export { BGP_HEADER_LENGTH, BGP_MARKER_LENGTH, BGP_MAX_MESSAGE_LENGTH, MessageFramer } from './header.js';
export { encodedNlriLength } from './nlri.js';
export { NOTIFICATION_MIN_LENGTH } from './notification.js';
export { BGP_VERSION, OPEN_MIN_LENGTH, OPTIONAL_PARAMETER_TYPE } from './open.js';
export { ROUTE_REFRESH_LENGTH, ROUTE_REFRESH_SUBCODE, ROUTE_REFRESH_SUBTYPE } from './route-refresh.js';
export { endOfRib, isEndOfRib, UPDATE_MIN_LENGTH } from './update.js';

export interface DecodedMessage {
  message: BgpMessage;
  /** RFC 7606 treat-as-withdraw: withdraw every prefix in the message, install none */
  treatAsWithdraw?: boolean;
  /** attribute type codes discarded per RFC 7606 (and RFC 6793 §6) */
  discarded?: readonly number[];
  problems?: readonly string[];
  /** the RFCs say to ignore this message; the reason (ROUTE-REFRESH only) */
  ignore?: string;
}

/** Decodes one whole message, header included (as `MessageFramer` returns them). */
export function decodeMessage(frame: Uint8Array, ctx: CodecContext): DecodedMessage {
  if (frame.length < BGP_HEADER_LENGTH) throw badLength(frame.length, `frame of ${frame.length} bytes is shorter than a header`);
  const length = checkHeader(frame, 0);
  if (length !== frame.length) throw badLength(length, `header Length ${length} but the frame has ${frame.length} bytes`);
  const type = frame[18] ?? 0;
  const problems: string[] = [];
  const withProblems = (decoded: DecodedMessage): DecodedMessage => (problems.length > 0 ? { ...decoded, problems } : decoded);
  switch (type) {
    case MESSAGE_TYPE.OPEN:
      return withProblems({ message: decodeOpen(frame, problems) });
    case MESSAGE_TYPE.UPDATE: {
      const update = decodeUpdate(frame, ctx);
      return {
        message: update.message,
        ...(update.treatAsWithdraw && { treatAsWithdraw: true }),
        ...(update.discarded.length > 0 && { discarded: update.discarded }),
        ...(update.problems.length > 0 && { problems: update.problems }),
      };
    }
    case MESSAGE_TYPE.NOTIFICATION:
      return { message: decodeNotification(frame) };
    case MESSAGE_TYPE.KEEPALIVE:
      return { message: decodeKeepalive(frame) };
    case MESSAGE_TYPE.ROUTE_REFRESH: {
      const refresh = decodeRouteRefresh(frame);
      return refresh.ignore ? { message: refresh.message, ignore: refresh.ignore, problems: [refresh.ignore] } : { message: refresh.message };
    }
    default:
      throw new BgpMessageError(ERROR_CODE.MESSAGE_HEADER, HEADER_SUBCODE.BAD_MESSAGE_TYPE, Uint8Array.of(type), `message type ${type}`);
  }
}

const KEEPALIVE_BODY = new Uint8Array(0);

/** The whole message, header included. */
export function encodeMessage(message: BgpMessage, ctx: CodecContext): Uint8Array {
  let type: number;
  let body: Uint8Array;
  switch (message.type) {
    case 'open':
      type = MESSAGE_TYPE.OPEN;
      body = encodeOpenBody(message);
      break;
    case 'update':
      type = MESSAGE_TYPE.UPDATE;
      body = encodeUpdateBody(message, ctx);
      break;
    case 'notification':
      type = MESSAGE_TYPE.NOTIFICATION;
      body = encodeNotificationBody(message);
      break;
    case 'keepalive':
      type = MESSAGE_TYPE.KEEPALIVE;
      body = KEEPALIVE_BODY;
      break;
    case 'route-refresh':
      type = MESSAGE_TYPE.ROUTE_REFRESH;
      body = encodeRouteRefreshBody(message);
      break;
  }
  const length = BGP_HEADER_LENGTH + body.length;
  if (length > BGP_MAX_MESSAGE_LENGTH) throw new BgpEncodeError(message.type.toUpperCase(), `${length} bytes exceed the 4096-byte maximum (RFC 4271 §4.1)`);
  const frame = new Uint8Array(length);
  writeHeader(frame, length, type);
  frame.set(body, BGP_HEADER_LENGTH);
  return frame;
}
