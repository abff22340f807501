/** `pontoon trace` in a bgp lab with IPIP always and the nftables proxy: IPIP between any two nodes. */
import { traceBackendSuite } from '../helpers/trace-backends.js';

traceBackendSuite({ title: 'bgp, IPIP always', backend: 'bgp', proxy: 'nftables', nodes: 2, racks: 1, ipip: 'always', encap: (a, b) => (a === b ? undefined : /^IPIP on /) });
