/**
 * Which IPIP data path a node gets. With the kernel's `ipip` module the BGP backend would do
 * what Calico does — the fallback device `tunl0`, routes `<block> via <node> dev tunl0
 * onlink` — and the kernel encapsulates. Without it (this machine: no ipip, gre or dummy
 * modules), `IpipTunnel` provides the same wire format in userspace.
 *
 * The probe asks rtnetlink for an `ipip` link in a scratch namespace: that is the test the
 * kernel itself answers (EOPNOTSUPP, "Unknown device type", when no module provides the
 * kind), it works where `modprobe` cannot be run, and nothing of the probe is left in the
 * node's namespace. Note the side effect where the module exists but is not loaded: the
 * request loads it, and the module then creates a (down) `tunl0` in every namespace — the
 * same as `ip link add ... type ipip` would.
 */
import { randomBytes } from 'node:crypto';
import { describeError, hasErrno } from '../../lib/errors.js';
import { createNetns, deleteNetns, netnsPath, openRtnl } from '../../lib/netns.js';

export interface IpipProbe {
  available: boolean;
  /** Why not, as the kernel said it (errno code), when unavailable. */
  reason?: string;
}

const PROBE_LINK = 'pprobe-ipip0';

/**
 * Tries to create an ipip link: in `netns` when given (then deletes it again), otherwise in a
 * scratch namespace created and deleted for the probe.
 */
export function probeKernelIpip(netns?: string): IpipProbe {
  const scratch = netns === undefined ? `pontoon-ipip-probe-${process.pid.toString(36)}-${randomBytes(3).toString('hex')}` : undefined;
  const path = scratch === undefined ? netnsPath(netns ?? '') : createNetns(scratch);
  try {
    const rtnl = openRtnl(path);
    try {
      rtnl.createLink({ name: PROBE_LINK, kind: 'ipip' });
      const link = rtnl.linkByName(PROBE_LINK);
      if (link) rtnl.deleteLink(link.index);
      return { available: true };
    } catch (err) {
      if (hasErrno(err, 'EOPNOTSUPP', 'ENOTSUP', 'EAFNOSUPPORT', 'EINVAL', 'ENOENT')) {
        return { available: false, reason: (err as { code?: string }).code ?? describeError(err) };
      }
      throw err;
    } finally {
      rtnl.close();
    }
  } finally {
    if (scratch !== undefined) deleteNetns(scratch);
  }
}

/** True when the kernel can make ipip links (and the BGP backend should use tunl0). */
export function kernelIpipAvailable(netns?: string): boolean {
  return probeKernelIpip(netns).available;
}
