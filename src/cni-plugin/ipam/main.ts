/** `pontoon-ipam`: host-local compatible IPAM as a CNI binary. */
import { pluginMain } from '../skel/skel.js';

// Handlers and error classes load only for commands that need them (see pluginMain).
pluginMain(async () => {
  const [{ ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus }, { classifyError }] = await Promise.all([import('./hostlocal.js'), import('../classify.js')]);
  return { handlers: { add: ipamAdd, del: ipamDel, check: ipamCheck, status: ipamStatus, gc: ipamGc }, classify: classifyError };
}, 'CNI pontoon-ipam plugin');
