/** `pontoon-flannel`: flannel's CNI plugin contract over subnet.env, delegating to a bridge. */
import { classifyError } from '../classify.js';
import { pluginMain } from '../skel/skel.js';
import { flannelAdd, flannelCheck, flannelDel, flannelGc, flannelStatus } from './flannel.js';

pluginMain(
  { add: flannelAdd, del: flannelDel, check: flannelCheck, status: flannelStatus, gc: flannelGc },
  'CNI pontoon-flannel plugin',
  classifyError,
);
