/**
 * Upstream's csrapproving controller for node client certificates: a request for signer
 * kubernetes.io/kube-apiserver-client-kubelet is approved when it is exactly what a kubelet
 * asks for —
 *   - subject O=system:nodes (only) and CN=system:node:<name>, no SANs;
 *   - usages within {digital signature, key encipherment, client auth}, client auth included;
 * and it comes from someone allowed to ask: a bootstrap token (`system:bootstrappers`, a new
 * node joining) or the node itself renewing (username = CN, in system:nodes). Upstream asks
 * the authorizer (SubjectAccessReview on certificatesigningrequests/nodeclient and
 * /selfnodeclient); the group checks here are what the default RBAC bindings grant.
 * Everything else (another signer, another subject) is left for a human:
 * `kubectl certificate approve`.
 */
import { RESOURCE } from '../api/resources.js';
import {
  type CertificateSigningRequest,
  isApproved,
  isDenied,
  NODE_USER_PREFIX,
  NODES_GROUP,
  SIGNER_KUBE_APISERVER_CLIENT_KUBELET,
  SIGNER_KUBELET_SERVING,
} from '../api/certificates.js';
import type { IpNet } from '../lib/ip.js';
import { notApprovableKubeletServing } from './kubelet-serving-policy.js';
import { BOOTSTRAPPERS_GROUP } from '../api/bootstrap-token.js';
import type { KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import { parseCsr, X509Error, type CsrInfo } from '../lib/x509.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler } from '../client/workqueue.js';

const ALLOWED_USAGES = new Set(['digital signature', 'key encipherment', 'client auth']);

/** Why a request is not a node client request (undefined: it is one). */
export function notNodeClientRequest(csr: CertificateSigningRequest, info: CsrInfo): string | undefined {
  if (csr.spec.signerName !== SIGNER_KUBE_APISERVER_CLIENT_KUBELET) return `signer ${csr.spec.signerName}`;
  const { organizations, commonName } = info.subject;
  if (organizations.length !== 1 || organizations[0] !== NODES_GROUP) return `organizations ${JSON.stringify(organizations)}, want ["${NODES_GROUP}"]`;
  if (!commonName.startsWith(NODE_USER_PREFIX) || commonName.length === NODE_USER_PREFIX.length) return `common name "${commonName}", want ${NODE_USER_PREFIX}<node>`;
  if (info.subjectAltNames.length > 0) return 'subject alternative names';
  const usages = csr.spec.usages ?? [];
  if (!usages.includes('client auth') || usages.some((u) => !ALLOWED_USAGES.has(u))) return `usages ${JSON.stringify(usages)}`;
  return undefined;
}

/** Who may get a node client certificate approved without a human. */
export function mayRequestNodeClient(csr: CertificateSigningRequest, info: CsrInfo): 'nodeclient' | 'selfnodeclient' | undefined {
  const groups = csr.spec.groups ?? [];
  if (groups.includes(BOOTSTRAPPERS_GROUP)) return 'nodeclient';
  if (groups.includes(NODES_GROUP) && csr.spec.username === info.subject.commonName) return 'selfnodeclient';
  return undefined;
}

export class CsrApprovingController implements Controller {
  readonly name = 'csrapproving';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly requests: Informer<CertificateSigningRequest>;
  private readonly reconciler: Reconciler;

  constructor(
    context: ControllerContext,
    /** --kubelet-serving-approve-cidrs: kubelet serving requests for addresses in these are approved (kubelet-serving-policy.ts); none: never. */
    private readonly kubeletServingNets: readonly IpNet[] = [],
  ) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.requests = context.informers.informer<CertificateSigningRequest>(RESOURCE.certificatesigningrequests);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    this.requests.on('add', (csr) => this.reconciler.enqueue(csr.metadata.name ?? ''));
    this.requests.on('update', (_old, csr) => this.reconciler.enqueue(csr.metadata.name ?? ''));
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
  }

  private async sync(name: string): Promise<void> {
    const csr = this.requests.get(name);
    if (!csr || isApproved(csr) || isDenied(csr) || csr.status?.certificate) return;
    const serving = csr.spec.signerName === SIGNER_KUBELET_SERVING;
    if (csr.spec.signerName !== SIGNER_KUBE_APISERVER_CLIENT_KUBELET && !(serving && this.kubeletServingNets.length > 0)) return;
    let info: CsrInfo;
    try {
      info = parseCsr(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
    } catch (err) {
      // Unreadable: nothing to approve; a human can deny it.
      if (err instanceof X509Error) {
        this.log.info({ csr: name, err: err.message }, 'not approving an unreadable request');
        return;
      }
      throw err;
    }
    if (serving) {
      const refusal = notApprovableKubeletServing(csr, info, this.kubeletServingNets);
      if (refusal) {
        this.log.info({ csr: name, refusal }, 'kubelet serving request left for a human');
        return;
      }
      await this.approve(csr, 'Auto approving kubelet serving certificate: addresses within --kubelet-serving-approve-cidrs.');
      this.log.info({ csr: name, subject: info.subject.commonName, requester: csr.spec.username }, 'approved kubelet serving certificate request');
      return;
    }
    const mismatch = notNodeClientRequest(csr, info);
    if (mismatch) {
      this.log.debug({ csr: name, mismatch }, 'not a node client request: left for a human');
      return;
    }
    const how = mayRequestNodeClient(csr, info);
    if (!how) {
      this.log.info({ csr: name, user: csr.spec.username }, 'requester may not get node client certificates automatically');
      return;
    }
    await this.approve(csr, how === 'nodeclient' ? 'Auto approving kubelet client certificate after SubjectAccessReview.' : 'Auto approving self kubelet client certificate after SubjectAccessReview.');
    this.log.info({ csr: name, subject: info.subject.commonName, requester: csr.spec.username }, 'approved node client certificate request');
  }

  private async approve(csr: CertificateSigningRequest, message: string): Promise<void> {
    const approved: CertificateSigningRequest = {
      ...csr,
      status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), { type: 'Approved', status: 'True', reason: 'AutoApproved', message }] },
    };
    await this.api.update(RESOURCE.certificatesigningrequests, approved, 'approval');
  }
}
