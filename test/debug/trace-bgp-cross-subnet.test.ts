/**
 * `pontoon trace` in a bgp lab with IPIP cross-subnet over two racks and one route reflector per
 * rack: plain routing inside a rack, IPIP only between racks.
 */
import { traceBackendSuite } from '../helpers/trace-backends.js';

traceBackendSuite({
  title: 'bgp, IPIP cross-subnet, 2 racks',
  backend: 'bgp',
  proxy: 'nftables',
  nodes: 3,
  racks: 2,
  ipip: 'cross-subnet',
  routeReflectors: 1,
  encap: (a, b, rackOf) => (a === b || rackOf(a) === rackOf(b) ? undefined : /^IPIP on /),
});
