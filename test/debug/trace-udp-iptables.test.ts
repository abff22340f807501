/** `pontoon trace` in a flannel udp lab with the iptables proxy: one encap hop between nodes. */
import { traceBackendSuite } from '../helpers/trace-backends.js';

traceBackendSuite({ title: 'udp + iptables', backend: 'udp', proxy: 'iptables', nodes: 2, racks: 1, encap: (a, b) => (a === b ? undefined : /^flannel udp via /) });
