/**
 * kill -9 of the BGP agent (and the proxy beside it) in a bgp lab: the peer keeps the killed
 * speaker's routes through its restart (graceful restart, RFC 4724 receiver), the restarted
 * speaker removes none of its own installed routes, traffic between the nodes loses nothing
 * (test/helpers/faults.ts says what must hold).
 */
import { killNineSuite } from '../helpers/faults.js';

killNineSuite({ backend: 'bgp', components: ['bgp', 'proxy'] });
