/**
 * RFC 4271 §4.5 NOTIFICATION: Error Code (1) | Error Subcode (1) | Data (the rest).
 * The shortest is 21 bytes; anything shorter is a header Bad Message Length (§6.1). Codes
 * and subcodes are not checked against the registry: a peer's NOTIFICATION is reported as
 * sent (the FSM must not answer a NOTIFICATION with one, §6.4).
 */
import type { NotificationMessage } from '../types.js';
import { badLength, BGP_HEADER_LENGTH } from './header.js';
import { checkUint, copyBytes, Writer } from './wire.js';

export const NOTIFICATION_MIN_LENGTH = 21;

export function decodeNotification(frame: Uint8Array): NotificationMessage {
  if (frame.length < NOTIFICATION_MIN_LENGTH) throw badLength(frame.length, `NOTIFICATION of ${frame.length} bytes is shorter than ${NOTIFICATION_MIN_LENGTH}`);
  return {
    type: 'notification',
    code: frame[BGP_HEADER_LENGTH] ?? 0,
    subcode: frame[BGP_HEADER_LENGTH + 1] ?? 0,
    data: copyBytes(frame.subarray(NOTIFICATION_MIN_LENGTH)),
  };
}

export function encodeNotificationBody(notification: NotificationMessage): Uint8Array {
  const writer = new Writer(2 + notification.data.length);
  writer.u8(checkUint(notification.code, 8, 'NOTIFICATION code'));
  writer.u8(checkUint(notification.subcode, 8, 'NOTIFICATION subcode'));
  writer.bytes(notification.data);
  return writer.finish();
}
