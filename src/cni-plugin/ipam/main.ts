/** `pontoon-ipam`: host-local compatible IPAM as a CNI binary. */
import { classifyError } from '../classify.js';
import { pluginMain } from '../skel/skel.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from './hostlocal.js';

declare const PONTOON_VERSION: string | undefined;
const version = typeof PONTOON_VERSION === 'string' ? PONTOON_VERSION : 'dev';

pluginMain(
  { add: ipamAdd, del: ipamDel, check: ipamCheck, status: ipamStatus, gc: ipamGc },
  `CNI pontoon-ipam plugin ${version} (host-local compatible)`,
  classifyError,
);
