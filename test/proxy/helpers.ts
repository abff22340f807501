/** Shared by the proxy tests: the fixture Services as entries, and the golden config. */
import { parseIpNet } from '../../src/lib/ip.js';
import type { ProxyConfig } from '../../src/proxy/config.js';
import { proxied, serviceEntry, serviceKey, SERVICE_NAME_LABEL, type ServiceEntry } from '../../src/proxy/model.js';
import { NODE, SERVICES, SLICES } from '../fixtures/proxy/services.js';

export const GOLDEN_CONFIG: ProxyConfig = {
  clusterCidrs: new Map([
    [4, parseIpNet('10.244.0.0/16')],
    [6, parseIpNet('fd00:10:244::/56')],
  ]),
  masqueradeAll: false,
  masqueradeMark: 0x4000,
  families: [4, 6],
};

function build(): { entries: Map<string, ServiceEntry>; problems: string[] } {
  const entries = new Map<string, ServiceEntry>();
  const problems: string[] = [];
  for (const service of SERVICES) {
    if (!proxied(service, undefined)) continue;
    const slices = SLICES.filter((s) => s.metadata.labels?.[SERVICE_NAME_LABEL] === service.metadata.name);
    const { entry, serviceProblems, sliceProblems } = serviceEntry(service, slices, NODE);
    if (serviceProblems.length) problems.push(`Service demo/${service.metadata.name}: ${serviceProblems.join('; ')}`);
    for (const [slice, messages] of sliceProblems) problems.push(`EndpointSlice demo/${slice.metadata.name}: ${messages.join('; ')}`);
    if (entry) entries.set(serviceKey('demo', service.metadata.name ?? ''), entry);
  }
  return { entries, problems };
}

export const fixtureEntries = (): Map<string, ServiceEntry> => build().entries;
export const problemsOf = (): string[] => build().problems;
