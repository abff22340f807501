/**
 * Upstream's tokencleaner: a bootstrap token Secret (kube-system, type
 * bootstrap.kubernetes.io/token) is deleted once its `expiration` has passed. Each Secret is
 * looked at again when it is due, so removal does not wait for a resync. (The authenticator
 * refuses an expired token by itself; this keeps kube-system from filling with dead ones.)
 */
import { RESOURCE } from '../api/resources.js';
import { BOOTSTRAP_TOKEN_NAMESPACE, bootstrapTokenExpiry, SECRET_TYPE_BOOTSTRAP_TOKEN } from '../api/bootstrap-token.js';
import type { Secret } from '../api/serviceaccount.js';
import type { KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

export class BootstrapTokenCleaner implements Controller {
  readonly name = 'tokencleaner';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly secrets: Informer<Secret>;
  private readonly reconciler: Reconciler;

  constructor(
    context: ControllerContext,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.secrets = context.informers.informer<Secret>(RESOURCE.secrets);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    const enqueue = (secret: Secret): void => {
      if (secret.metadata.namespace === BOOTSTRAP_TOKEN_NAMESPACE && secret.type === SECRET_TYPE_BOOTSTRAP_TOKEN) {
        this.reconciler.enqueue(`${BOOTSTRAP_TOKEN_NAMESPACE}/${secret.metadata.name ?? ''}`);
      }
    };
    this.secrets.on('add', enqueue);
    this.secrets.on('update', (_old, secret) => enqueue(secret));
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(key: string): Promise<SyncResult | void> {
    const secret = this.secrets.get(key);
    if (!secret || secret.metadata.deletionTimestamp || secret.type !== SECRET_TYPE_BOOTSTRAP_TOKEN) return;
    const expiry = bootstrapTokenExpiry(secret);
    // No expiration: kept forever; an unparsable one is left for a human (upstream does the same).
    if (expiry === undefined || expiry === 'invalid') return;
    const leftMs = expiry.getTime() - this.now().getTime();
    if (leftMs > 0) return { requeueAfterMs: leftMs };
    await this.api.delete(RESOURCE.secrets, secret.metadata.name ?? '', BOOTSTRAP_TOKEN_NAMESPACE, { preconditions: { uid: secret.metadata.uid ?? '' } });
    this.log.info({ secret: key, expiredAt: expiry.toISOString() }, 'deleted expired bootstrap token');
  }
}
