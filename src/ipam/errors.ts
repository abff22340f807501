import { PontoonError } from '../lib/errors.js';

/** The IPAM configuration is wrong; `field` names the setting to fix. */
export class IpamConfigError extends PontoonError {
  constructor(readonly field: string, message: string) {
    super(`invalid IPAM config: ${field}: ${message}`);
  }
}

/** Every address of a range set is taken. */
export class RangeExhaustedError extends PontoonError {}

/** A specific address was asked for and cannot be had. */
export class AddressUnavailableError extends PontoonError {}

/** The data directory could not be read or written. */
export class IpamStoreError extends PontoonError {}
