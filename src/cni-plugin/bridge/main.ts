/** `pontoon-bridge`: the main CNI plugin binary. */
import { classifyError } from '../classify.js';
import { pluginMain } from '../skel/skel.js';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus } from './bridge.js';

pluginMain(
  { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc },
  'CNI pontoon-bridge plugin',
  classifyError,
);
