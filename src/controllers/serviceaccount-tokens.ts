/**
 * Upstream's legacy token controller (serviceaccount-token): a Secret of type
 * `kubernetes.io/service-account-token` naming a ServiceAccount in the annotation
 * `kubernetes.io/service-account.name` is filled with `token` (a JWT that never expires,
 * issuer `kubernetes/serviceaccount`, signed with --service-account-private-key-file),
 * `ca.crt` (--root-ca-file) and `namespace`, and gets the account's uid annotation. A
 * token Secret whose account is gone (or was recreated: another uid) is deleted, which
 * also revokes the token, since the apiserver only accepts a legacy token its Secret
 * still holds.
 *
 * Before deleting, the account is looked up live: the Secret and its account are often
 * created together, and the informer may not have the account yet.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import {
  legacyClaims,
  SECRET_TYPE_SERVICE_ACCOUNT_TOKEN,
  SERVICE_ACCOUNT_NAME_ANNOTATION,
  SERVICE_ACCOUNT_UID_ANNOTATION,
  type Secret,
  type ServiceAccount,
} from '../api/serviceaccount.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import { signJws, type SigningKey } from '../lib/jws.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler } from '../client/workqueue.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

export class ServiceAccountTokenController implements Controller {
  readonly name = 'serviceaccount-token';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly secrets: Informer<Secret>;
  private readonly accounts: Informer<ServiceAccount>;
  private readonly reconciler: Reconciler;

  constructor(
    context: ControllerContext,
    private readonly signingKey: SigningKey,
    private readonly caPem: string | undefined,
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.secrets = context.informers.informer<Secret>(RESOURCE.secrets);
    this.accounts = context.informers.informer<ServiceAccount>(RESOURCE.serviceaccounts);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    const enqueue = (secret: Secret): void => {
      if (secret.type === SECRET_TYPE_SERVICE_ACCOUNT_TOKEN) this.reconciler.enqueue(objectKey(secret.metadata));
    };
    this.secrets.on('add', enqueue);
    this.secrets.on('update', (_old, secret) => enqueue(secret));
    const accountChanged = (account: ServiceAccount): void => {
      for (const secret of this.secrets.list()) {
        if (secret.metadata.namespace === account.metadata.namespace && secret.metadata.annotations?.[SERVICE_ACCOUNT_NAME_ANNOTATION] === account.metadata.name) {
          enqueue(secret);
        }
      }
    };
    this.accounts.on('add', accountChanged);
    this.accounts.on('delete', accountChanged);
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(key: string): Promise<void> {
    const secret = this.secrets.get(key);
    if (!secret || secret.type !== SECRET_TYPE_SERVICE_ACCOUNT_TOKEN || secret.metadata.deletionTimestamp) return;
    const namespace = secret.metadata.namespace ?? '';
    const accountName = secret.metadata.annotations?.[SERVICE_ACCOUNT_NAME_ANNOTATION] ?? '';
    const wantedUid = secret.metadata.annotations?.[SERVICE_ACCOUNT_UID_ANNOTATION];
    const account =
      this.accounts.get(`${namespace}/${accountName}`) ?? (await this.api.get<ServiceAccount>(RESOURCE.serviceaccounts, accountName, namespace));
    if (!account || (wantedUid && account.metadata.uid !== wantedUid)) {
      await this.api.delete(RESOURCE.secrets, secret.metadata.name ?? '', namespace, { preconditions: { uid: secret.metadata.uid } });
      this.log.info({ secret: key, serviceAccount: accountName }, 'deleted a token Secret whose ServiceAccount is gone');
      return;
    }
    const uid = account.metadata.uid ?? '';
    const data = { ...(secret.data ?? {}) };
    let changed = false;
    if (!data['token']) {
      const claims = legacyClaims({ namespace, name: accountName, uid }, secret.metadata.name ?? '');
      data['token'] = b64(signJws({ ...claims }, this.signingKey));
      changed = true;
    }
    if (this.caPem !== undefined && data['ca.crt'] !== b64(this.caPem)) {
      data['ca.crt'] = b64(this.caPem);
      changed = true;
    }
    if (data['namespace'] !== b64(namespace)) {
      data['namespace'] = b64(namespace);
      changed = true;
    }
    if (!changed && wantedUid === uid) return;
    const annotations = { ...(secret.metadata.annotations ?? {}), [SERVICE_ACCOUNT_UID_ANNOTATION]: uid };
    try {
      await this.api.update<Secret>(RESOURCE.secrets, { ...secret, metadata: { ...secret.metadata, annotations }, data });
      this.log.info({ secret: key, serviceAccount: accountName }, 'filled a service-account token Secret');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
