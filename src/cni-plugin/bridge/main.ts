/** `pontoon-bridge`: the main CNI plugin binary. */
import { pluginMain } from '../skel/skel.js';

// Handlers and error classes load only for commands that need them (see pluginMain).
pluginMain(async () => {
  const [{ bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus }, { classifyError }] = await Promise.all([import('./bridge.js'), import('../classify.js')]);
  return { handlers: { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc }, classify: classifyError };
}, 'CNI pontoon-bridge plugin');
