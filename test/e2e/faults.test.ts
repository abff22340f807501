/** kill -9 of every daemon in a vxlan lab (test/helpers/faults.ts says what must hold). */
import { killNineSuite } from '../helpers/faults.js';

killNineSuite({ backend: 'vxlan', components: ['flanneld', 'proxy', 'kubelet', 'controller-manager', 'scheduler', 'apiserver'] });
