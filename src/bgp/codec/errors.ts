/**
 * The two ways a codec call fails.
 *
 * `BgpMessageError` is the peer's fault: RFC 4271 §6 (as revised by RFC 7606 for UPDATEs)
 * says the session must be reset, and the error carries exactly what the NOTIFICATION must
 * say — code, subcode and the Data field the RFC prescribes — so the FSM sends it as is
 * (GoBGP's `MessageError` does the same). Errors that RFC 7606 downgrades to
 * treat-as-withdraw or attribute discard are not thrown; they are reported on the decoded
 * message instead.
 *
 * `BgpEncodeError` is our own fault: a message that cannot be put on the wire (over 4096
 * bytes, a value out of range, a model the wire cannot express).
 */
import { PontoonError } from '../../lib/errors.js';

export class BgpMessageError extends PontoonError {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;

  constructor(code: number, subcode: number, data: Uint8Array, reason: string) {
    super(`failed to decode BGP message: ${reason} (NOTIFICATION ${code}/${subcode})`);
    this.code = code;
    this.subcode = subcode;
    this.data = data;
  }
}

export class BgpEncodeError extends PontoonError {
  constructor(what: string, reason: string) {
    super(`failed to encode BGP ${what}: ${reason}`);
  }
}

/** A 2-octet big-endian value as NOTIFICATION data (the bad Length, the supported version). */
export function u16Data(value: number): Uint8Array {
  return Uint8Array.of((value >> 8) & 0xff, value & 0xff);
}
