/** `pontoon proxy --dry-run`: the full-sync transaction for the cluster as it is now. */
import { RESOURCE } from '../api/resources.js';
import type { EndpointSlice, Service } from '../api/types.js';
import type { KubeApi } from '../client/api.js';
import { proxied, SERVICE_NAME_LABEL, serviceEntry, serviceKey, type ServiceEntry } from './model.js';
import { serviceSelector } from './proxier.js';
import type { RuleSink } from './sink.js';

export class DryRun {
  constructor(
    private readonly api: KubeApi,
    private readonly nodeName: string,
    private readonly proxyName: string | undefined,
  ) {}

  async render(sink: RuleSink): Promise<string> {
    const [services, slices] = await Promise.all([
      this.api.list<Service>(RESOURCE.services, undefined, { labelSelector: serviceSelector(this.proxyName) }),
      this.api.list<EndpointSlice>(RESOURCE.endpointslices, undefined, { labelSelector: SERVICE_NAME_LABEL }),
    ]);
    const entries = new Map<string, ServiceEntry>();
    for (const service of services.items) {
      if (!proxied(service, this.proxyName)) continue;
      const key = serviceKey(service.metadata.namespace ?? 'default', service.metadata.name ?? '');
      const own = slices.items.filter((s) => s.metadata.namespace === service.metadata.namespace && s.metadata.labels?.[SERVICE_NAME_LABEL] === service.metadata.name);
      const { entry } = serviceEntry(service, own, this.nodeName);
      if (entry) entries.set(key, entry);
    }
    return sink.render(entries);
  }
}
