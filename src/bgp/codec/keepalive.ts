/**
 * RFC 4271 §4.4 KEEPALIVE: the header alone. Any other length is Bad Message Length (§6.1).
 */
import type { KeepaliveMessage } from '../types.js';
import { badLength, BGP_HEADER_LENGTH } from './header.js';

export function decodeKeepalive(frame: Uint8Array): KeepaliveMessage {
  if (frame.length !== BGP_HEADER_LENGTH) throw badLength(frame.length, `KEEPALIVE of ${frame.length} bytes is not ${BGP_HEADER_LENGTH}`);
  return { type: 'keepalive' };
}
