/** `pontoon-ipam`: host-local compatible IPAM as a CNI binary. */
import { classifyError } from '../classify.js';
import { pluginMain } from '../skel/skel.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from './hostlocal.js';

pluginMain(
  { add: ipamAdd, del: ipamDel, check: ipamCheck, status: ipamStatus, gc: ipamGc },
  'CNI pontoon-ipam plugin',
  classifyError,
);
