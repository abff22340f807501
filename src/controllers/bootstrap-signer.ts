/**
 * Upstream's bootstrapsigner: ConfigMap kube-public/cluster-info (a kubeconfig with the
 * apiserver address and CA, readable without credentials) carries one
 * `jws-kubeconfig-<token id>` per bootstrap token that may sign (usage-bootstrap-signing,
 * not expired): a detached HS256 JWS of the kubeconfig keyed by the token's secret. A node
 * joining with that token checks the signature, so a man in the middle cannot hand it
 * another CA. Signatures of tokens gone are removed. Who creates cluster-info: whoever
 * knows the address nodes should use (`pontoon token create`, as kubeadm init does).
 */
import { RESOURCE } from '../api/resources.js';
import {
  BOOTSTRAP_TOKEN_NAMESPACE,
  bootstrapTokenExpiry,
  CLUSTER_INFO_KUBECONFIG_KEY,
  CLUSTER_INFO_NAME,
  CLUSTER_INFO_NAMESPACE,
  CLUSTER_INFO_SIGNATURE_PREFIX,
  SECRET_TYPE_BOOTSTRAP_TOKEN,
  secretValue,
  TOKEN_ID_KEY,
  TOKEN_SECRET_KEY,
  USAGE_SIGNING_KEY,
} from '../api/bootstrap-token.js';
import type { Secret } from '../api/serviceaccount.js';
import type { ConfigMap } from '../api/types.js';
import type { KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import { detachedHs256 } from '../lib/jws-detached.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

const KEY = `${CLUSTER_INFO_NAMESPACE}/${CLUSTER_INFO_NAME}`;

export class BootstrapSigner implements Controller {
  readonly name = 'bootstrapsigner';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly secrets: Informer<Secret>;
  private readonly configMaps: Informer<ConfigMap>;
  private readonly reconciler: Reconciler;

  constructor(
    context: ControllerContext,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.secrets = context.informers.informer<Secret>(RESOURCE.secrets);
    this.configMaps = context.informers.informer<ConfigMap>(RESOURCE.configmaps);
    this.reconciler = new Reconciler({ name: this.name, sync: () => this.sync(), log: this.log });
    const onSecret = (secret: Secret): void => {
      if (secret.metadata.namespace === BOOTSTRAP_TOKEN_NAMESPACE && secret.type === SECRET_TYPE_BOOTSTRAP_TOKEN) this.reconciler.enqueue(KEY);
    };
    const onConfigMap = (configMap: ConfigMap): void => {
      if (configMap.metadata.namespace === CLUSTER_INFO_NAMESPACE && configMap.metadata.name === CLUSTER_INFO_NAME) this.reconciler.enqueue(KEY);
    };
    this.secrets.on('add', onSecret);
    this.secrets.on('update', (_old, secret) => onSecret(secret));
    this.secrets.on('delete', onSecret);
    this.configMaps.on('add', onConfigMap);
    this.configMaps.on('update', (_old, configMap) => onConfigMap(configMap));
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(): Promise<SyncResult | void> {
    const clusterInfo = this.configMaps.get(KEY);
    const content = clusterInfo?.data?.[CLUSTER_INFO_KUBECONFIG_KEY];
    if (!clusterInfo || content === undefined) return;
    const wanted: Record<string, string> = {};
    let nextExpiryMs: number | undefined;
    for (const secret of this.secrets.list()) {
      if (secret.metadata.namespace !== BOOTSTRAP_TOKEN_NAMESPACE || secret.type !== SECRET_TYPE_BOOTSTRAP_TOKEN || secret.metadata.deletionTimestamp) continue;
      if (secretValue(secret, USAGE_SIGNING_KEY) !== 'true') continue;
      const id = secretValue(secret, TOKEN_ID_KEY);
      const tokenSecret = secretValue(secret, TOKEN_SECRET_KEY);
      if (!id || !tokenSecret) continue;
      const expiry = bootstrapTokenExpiry(secret);
      if (expiry === 'invalid') continue;
      if (expiry) {
        const leftMs = expiry.getTime() - this.now().getTime();
        if (leftMs <= 0) continue;
        nextExpiryMs = Math.min(nextExpiryMs ?? leftMs, leftMs);
      }
      wanted[`${CLUSTER_INFO_SIGNATURE_PREFIX}${id}`] = detachedHs256(content, id, tokenSecret);
    }
    const data = Object.fromEntries(Object.entries(clusterInfo.data ?? {}).filter(([key]) => !key.startsWith(CLUSTER_INFO_SIGNATURE_PREFIX)));
    Object.assign(data, wanted);
    const result = nextExpiryMs !== undefined ? { requeueAfterMs: nextExpiryMs } : undefined;
    if (JSON.stringify(Object.entries(data).sort()) === JSON.stringify(Object.entries(clusterInfo.data ?? {}).sort())) return result;
    await this.api.update<ConfigMap>(RESOURCE.configmaps, { ...clusterInfo, data });
    this.log.info({ signatures: Object.keys(wanted).length }, 'signed cluster-info');
    return result;
  }
}
