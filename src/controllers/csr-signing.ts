/**
 * Upstream's csrsigning controller: approved requests for the signers this cluster CA serves
 * get a certificate in status.certificate, signed with --cluster-signing-cert-file/-key-file.
 * The signer decides usages and lifetime (at most --cluster-signing-duration, or the
 * request's expirationSeconds when shorter); a request it cannot sign (unreadable, SANs on a
 * client certificate, a subject the signer forbids) gets a Failed condition instead, so the
 * requester stops waiting.
 */
import { RESOURCE } from '../api/resources.js';
import {
  type CertificateSigningRequest,
  isApproved,
  isDenied,
  isFailed,
  SIGNER_KUBE_APISERVER_CLIENT,
  SIGNER_KUBE_APISERVER_CLIENT_KUBELET,
  SIGNER_KUBELET_SERVING,
} from '../api/certificates.js';
import { notKubeletServingRequest, subjectAltNameConfig } from './kubelet-serving-policy.js';
import type { KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import { issueCertificate, parseCsr, X509Error } from '../lib/x509.js';
import type { Controller, ControllerContext } from './controller.js';
import { Reconciler } from '../client/workqueue.js';
import { notNodeClientRequest } from './csr-approving.js';

/** Upstream's --cluster-signing-duration default: one year. */
export const DEFAULT_SIGNING_DURATION_SECONDS = 365 * 24 * 3600;

const SIGNERS = new Set([SIGNER_KUBE_APISERVER_CLIENT_KUBELET, SIGNER_KUBE_APISERVER_CLIENT, SIGNER_KUBELET_SERVING]);

export interface CsrSigningOptions {
  caCertPath: string;
  caKeyPath: string;
  durationSeconds?: number;
}

export class CsrSigningController implements Controller {
  readonly name = 'csrsigning';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly requests: Informer<CertificateSigningRequest>;
  private readonly reconciler: Reconciler;

  constructor(
    context: ControllerContext,
    private readonly options: CsrSigningOptions,
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
    if (!csr || !isApproved(csr) || isDenied(csr) || isFailed(csr) || csr.status?.certificate) return;
    if (!SIGNERS.has(csr.spec.signerName)) return;
    const requestPem = Buffer.from(csr.spec.request, 'base64').toString('utf8');
    let refusal: string | undefined;
    let certificate: string | undefined;
    try {
      const info = parseCsr(requestPem);
      const serving = csr.spec.signerName === SIGNER_KUBELET_SERVING;
      if (csr.spec.signerName === SIGNER_KUBE_APISERVER_CLIENT_KUBELET) refusal = notNodeClientRequest(csr, info);
      else if (serving) refusal = notKubeletServingRequest(csr, info);
      else if (info.subjectAltNames.length > 0) refusal = 'subject alternative names on a client certificate';
      if (!refusal) {
        const limit = this.options.durationSeconds ?? DEFAULT_SIGNING_DURATION_SECONDS;
        certificate = issueCertificate(requestPem, {
          caCertPath: this.options.caCertPath,
          caKeyPath: this.options.caKeyPath,
          durationSeconds: Math.min(limit, csr.spec.expirationSeconds ?? limit),
          extendedKeyUsages: serving ? ['serverAuth'] : ['clientAuth'],
          ...(serving ? { subjectAltNames: subjectAltNameConfig(info) } : {}),
        });
      }
    } catch (err) {
      if (!(err instanceof X509Error)) throw err;
      refusal = err.message;
    }
    const status: CertificateSigningRequest['status'] = certificate
      ? { ...csr.status, certificate: Buffer.from(certificate).toString('base64') }
      : {
          ...csr.status,
          conditions: [...(csr.status?.conditions ?? []), { type: 'Failed', status: 'True', reason: 'SignerValidationFailure', message: `the signer refuses the request: ${refusal ?? 'unknown'}` }],
        };
    await this.api.update(RESOURCE.certificatesigningrequests, { ...csr, status }, 'status');
    if (certificate) this.log.info({ csr: name, signer: csr.spec.signerName }, 'issued certificate');
    else this.log.warn({ csr: name, refusal }, 'refused to sign');
  }
}
