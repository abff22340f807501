/** `pontoon-flannel`: flannel's CNI plugin contract over subnet.env, delegating to a bridge. */
import { pluginMain } from '../skel/skel.js';

// Handlers and error classes load only for commands that need them (see pluginMain).
pluginMain(async () => {
  const [{ flannelAdd, flannelCheck, flannelDel, flannelGc, flannelStatus }, { classifyError }] = await Promise.all([import('./flannel.js'), import('../classify.js')]);
  return { handlers: { add: flannelAdd, del: flannelDel, check: flannelCheck, status: flannelStatus, gc: flannelGc }, classify: classifyError };
}, 'CNI pontoon-flannel plugin');
