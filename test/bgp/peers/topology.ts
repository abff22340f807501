/** Two namespaces joined by a veth, with addresses: the smallest BGP interop topology. */
import { run } from '../../../src/lib/exec.js';

export interface Side {
  netns: string;
  /** interface name on this side (default eth0) */
  device?: string;
  /** `198.18.0.1/24`, `fd00:18::1/64` */
  addresses: string[];
}

/** Creates the veth (in `a`, its peer moved straight into `b`), sets addresses and brings both ends up. */
export function linkNamespaces(a: Side, b: Side): void {
  const aDevice = a.device ?? 'eth0';
  const bDevice = b.device ?? 'eth0';
  run('ip', ['-n', a.netns, 'link', 'add', aDevice, 'type', 'veth', 'peer', 'name', bDevice, 'netns', b.netns]);
  for (const [side, device] of [[a, aDevice], [b, bDevice]] as const) {
    for (const address of side.addresses) {
      // nodad: an IPv6 address must not sit in "tentative" while a session tries to bind it.
      run('ip', ['-n', side.netns, 'addr', 'add', address, 'dev', device, ...(address.includes(':') ? ['nodad'] : [])]);
    }
    run('ip', ['-n', side.netns, 'link', 'set', device, 'up']);
  }
}
