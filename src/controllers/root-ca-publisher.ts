/**
 * Upstream's root-ca-cert-publisher: ConfigMap `kube-root-ca.crt` (key `ca.crt`: the CA the
 * apiserver's certificate chains to) in every active namespace, put back when deleted or
 * edited. Projected service-account volumes read it, so in-cluster clients can verify the
 * apiserver at https://kubernetes.default.svc.
 */
import { RESOURCE } from '../api/resources.js';
import { ROOT_CA_CONFIG_MAP } from '../api/serviceaccount.js';
import type { ConfigMap, Namespace } from '../api/types.js';
import { isAlreadyExists, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler } from '../client/workqueue.js';
import { namespaceActive, namespaceClosed } from './serviceaccounts.js';

/** Upstream marks the ConfigMap so readers know where it comes from. */
const DESCRIPTION_ANNOTATION = 'kubernetes.io/description';
const DESCRIPTION =
  'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. ' +
  'No other usage is guaranteed across distributions of Kubernetes clusters.';

export class RootCaPublisher implements Controller {
  readonly name = 'root-ca-cert-publisher';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly namespaces: Informer<Namespace>;
  private readonly configMaps: Informer<ConfigMap>;
  private readonly reconciler: Reconciler;

  constructor(
    context: ControllerContext,
    private readonly caPem: string,
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.namespaces = context.informers.informer<Namespace>(RESOURCE.namespaces);
    this.configMaps = context.informers.informer<ConfigMap>(RESOURCE.configmaps);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    this.namespaces.on('add', (namespace) => this.reconciler.enqueue(namespace.metadata.name ?? ''));
    const ours = (configMap: ConfigMap): void => {
      if (configMap.metadata.name === ROOT_CA_CONFIG_MAP) this.reconciler.enqueue(configMap.metadata.namespace ?? '');
    };
    this.configMaps.on('update', (_old, configMap) => ours(configMap));
    this.configMaps.on('delete', ours);
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(namespaceName: string): Promise<void> {
    if (!namespaceActive(this.namespaces.get(namespaceName))) return;
    const current = this.configMaps.get(`${namespaceName}/${ROOT_CA_CONFIG_MAP}`);
    const data = { 'ca.crt': this.caPem };
    if (!current) {
      try {
        await this.api.create<ConfigMap>(RESOURCE.configmaps, {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: ROOT_CA_CONFIG_MAP, namespace: namespaceName, annotations: { [DESCRIPTION_ANNOTATION]: DESCRIPTION } },
          data,
        });
        this.log.debug({ namespace: namespaceName }, `published ${ROOT_CA_CONFIG_MAP}`);
      } catch (err) {
        if (isAlreadyExists(err) || namespaceClosed(err)) return;
        throw err;
      }
      return;
    }
    const currentData = current.data ?? {};
    if (Object.keys(currentData).length === 1 && currentData['ca.crt'] === this.caPem && !current.binaryData) return;
    const { binaryData: _dropped, ...rest } = current;
    // The cached resourceVersion makes this a compare-and-swap: a newer edit gets a 409 and a retry.
    await this.api.update<ConfigMap>(RESOURCE.configmaps, { ...rest, data });
    this.log.info({ namespace: namespaceName }, `restored ${ROOT_CA_CONFIG_MAP}`);
  }
}
