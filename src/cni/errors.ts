/**
 * CNI error codes (SPEC.md "Error codes") and the error type every handler throws.
 * `pluginMain` prints these as `{cniVersion, code, msg, details}` on stdout.
 */
import { PontoonError } from '../lib/errors.js';

export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  /** Not in the spec: what the reference libraries use for an unclassified failure. */
  Internal: 999,
} as const;

export type CniErrorCodeValue = (typeof CniErrorCode)[keyof typeof CniErrorCode];

export class CniError extends PontoonError {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}
