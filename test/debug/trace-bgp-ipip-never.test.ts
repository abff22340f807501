/** `pontoon trace` in a bgp lab with IPIP never and the iptables proxy: plain routing, no encap hop. */
import { traceBackendSuite } from '../helpers/trace-backends.js';

traceBackendSuite({ title: 'bgp, IPIP never', backend: 'bgp', proxy: 'iptables', nodes: 2, racks: 1, ipip: 'never', encap: () => undefined });
