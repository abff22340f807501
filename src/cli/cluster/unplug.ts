/** Removes a node's veth from the fabric (its peer goes with it); a missing one is fine. */
import { hasErrno } from '../../lib/errors.js';
import { openRtnl } from '../../lib/netns.js';
import { netnsFile } from './topology.js';

export function unplug(fabric: string, fabricSide: string): void {
  const rtnl = openRtnl(netnsFile(fabric));
  try {
    const link = rtnl.linkByName(fabricSide);
    if (!link) return;
    try {
      rtnl.deleteLink(link.index);
    } catch (err) {
      if (!hasErrno(err, 'ENODEV', 'ENOENT')) throw err;
    }
  } finally {
    rtnl.close();
  }
}
