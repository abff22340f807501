/** `pontoon-bridge`: the main CNI plugin binary. */
import { classifyError } from '../classify.js';
import { pluginMain } from '../skel/skel.js';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus } from './bridge.js';

declare const PONTOON_VERSION: string | undefined;
const version = typeof PONTOON_VERSION === 'string' ? PONTOON_VERSION : 'dev';

pluginMain(
  { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc },
  `CNI pontoon-bridge plugin ${version}`,
  classifyError,
);
