/** What both proxy modes need to know besides Services and endpoints. */
import type { IpFamily, IpNet } from '../lib/ip.js';

export interface ProxyConfig {
  /** The pod network per family: traffic from outside it to a cluster IP is masqueraded. */
  readonly clusterCidrs: ReadonlyMap<IpFamily, IpNet>;
  /** Masquerade all traffic to cluster IPs, not only from outside the pod network. */
  readonly masqueradeAll: boolean;
  /** The packet mark bit that asks for masquerade (kube-proxy's default is bit 14). */
  readonly masqueradeMark: number;
  /** Families to program. */
  readonly families: readonly IpFamily[];
}

export const DEFAULT_MASQUERADE_MARK = 0x4000;
