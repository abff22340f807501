/**
 * Upstream's serviceaccount controller: every active namespace has a `default`
 * ServiceAccount — made when the namespace appears (and for namespaces that existed before
 * the controller started), and made again when someone deletes it. Pods that name no
 * account run as `default`, and the apiserver's ServiceAccount admission refuses pods
 * whose account is missing, so this account must not lag a namespace for long.
 */
import { RESOURCE } from '../api/resources.js';
import { DEFAULT_SERVICE_ACCOUNT, type ServiceAccount } from '../api/serviceaccount.js';
import type { Namespace } from '../api/types.js';
import { ApiError, isAlreadyExists, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler } from '../client/workqueue.js';

/** A namespace content may be created in: present and not terminating. */
export function namespaceActive(namespace: Namespace | undefined): namespace is Namespace {
  return !!namespace && !namespace.metadata.deletionTimestamp && namespace.status?.phase !== 'Terminating';
}

/** A create refused because the namespace is going away (403) or gone (404): nothing to do. */
export function namespaceClosed(err: unknown): boolean {
  return err instanceof ApiError && (err.code === 403 || err.code === 404);
}

export class ServiceAccountController implements Controller {
  readonly name = 'serviceaccount';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly namespaces: Informer<Namespace>;
  private readonly accounts: Informer<ServiceAccount>;
  private readonly reconciler: Reconciler;

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.namespaces = context.informers.informer<Namespace>(RESOURCE.namespaces);
    this.accounts = context.informers.informer<ServiceAccount>(RESOURCE.serviceaccounts);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    const enqueue = (namespace: Namespace): void => this.reconciler.enqueue(namespace.metadata.name ?? '');
    this.namespaces.on('add', enqueue);
    this.namespaces.on('update', (_old, namespace) => enqueue(namespace));
    this.accounts.on('delete', (account) => {
      if (account.metadata.name === DEFAULT_SERVICE_ACCOUNT) this.reconciler.enqueue(account.metadata.namespace ?? '');
    });
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(namespaceName: string): Promise<void> {
    if (!namespaceActive(this.namespaces.get(namespaceName))) return;
    if (this.accounts.get(`${namespaceName}/${DEFAULT_SERVICE_ACCOUNT}`)) return;
    try {
      await this.api.create<ServiceAccount>(RESOURCE.serviceaccounts, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: DEFAULT_SERVICE_ACCOUNT, namespace: namespaceName },
      });
      this.log.info({ namespace: namespaceName }, 'created the default ServiceAccount');
    } catch (err) {
      if (isAlreadyExists(err) || namespaceClosed(err)) return;
      throw err;
    }
  }
}
