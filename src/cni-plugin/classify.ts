/** How Pontoon's own errors map onto CNI error codes, shared by every Pontoon plugin. */
import { hasErrno } from '../lib/errors.js';
import { InvalidAddressError } from '../lib/ip.js';
import { LinkConflictError } from '../lib/link.js';
import { NetnsNotFoundError } from '../lib/netns.js';
import { AddressUnavailableError, IpamConfigError, IpamStoreError, RangeExhaustedError } from '../ipam/errors.js';
import { CniError, CniErrorCode } from '../cni/errors.js';

export function classifyError(err: unknown): CniError | undefined {
  const message = err instanceof Error ? err.message : String(err);
  const wrap = (code: number): CniError => new CniError(code, message, '', { cause: err });
  if (err instanceof IpamConfigError || err instanceof InvalidAddressError) return wrap(CniErrorCode.InvalidNetworkConfig);
  if (err instanceof LinkConflictError) return wrap(CniErrorCode.InvalidNetworkConfig);
  // Addresses come back when containers go: the runtime's retry may well succeed, whether the
  // range is full or the one address asked for is still held.
  if (err instanceof RangeExhaustedError || err instanceof AddressUnavailableError) return wrap(CniErrorCode.TryAgainLater);
  if (err instanceof NetnsNotFoundError) {
    return new CniError(CniErrorCode.InvalidEnvironment, `CNI_NETNS ${JSON.stringify(err.path)} does not exist: the runtime must create the namespace before ADD or CHECK`, '', { cause: err });
  }
  if (err instanceof IpamStoreError) return wrap(CniErrorCode.IoFailure);
  if (hasErrno(err, 'EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EIO', 'ENOTDIR', 'EISDIR')) return wrap(CniErrorCode.IoFailure);
  return undefined;
}
