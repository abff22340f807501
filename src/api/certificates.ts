/**
 * certificates.k8s.io/v1 CertificateSigningRequest as it travels on the wire, the signer
 * names and condition types upstream defines, and PEM helpers shared by the apiserver's
 * validation, the approving and signing controllers and `pontoon join`.
 */
import type { KubeObject } from './meta.js';

/** Client certificates for kubelets talking to the apiserver (what a joining node asks for). */
export const SIGNER_KUBE_APISERVER_CLIENT_KUBELET = 'kubernetes.io/kube-apiserver-client-kubelet';
export const SIGNER_KUBE_APISERVER_CLIENT = 'kubernetes.io/kube-apiserver-client';
export const SIGNER_KUBELET_SERVING = 'kubernetes.io/kubelet-serving';
export const SIGNER_LEGACY_UNKNOWN = 'kubernetes.io/legacy-unknown';

export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

export const KNOWN_USAGES = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment',
  'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing',
  'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing',
  'microsoft sgc', 'netscape sgc',
] as const;

export type CsrConditionType = 'Approved' | 'Denied' | 'Failed' | string;

export interface CsrCondition {
  type: CsrConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

export interface CertificateSigningRequest extends KubeObject {
  spec: {
    /** base64 of a PEM "CERTIFICATE REQUEST" block. */
    request: string;
    signerName: string;
    expirationSeconds?: number;
    usages?: string[];
    /** Set by the apiserver from the requesting user on create; a client's values are overwritten. */
    username?: string;
    uid?: string;
    groups?: string[];
    extra?: Record<string, string[]>;
  };
  status?: {
    conditions?: CsrCondition[];
    /** base64 of the issued PEM certificate chain. */
    certificate?: string;
  };
}

export function csrCondition(csr: Pick<CertificateSigningRequest, 'status'>, type: CsrConditionType): CsrCondition | undefined {
  return csr.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

export const isApproved = (csr: Pick<CertificateSigningRequest, 'status'>): boolean => csrCondition(csr, 'Approved') !== undefined;
export const isDenied = (csr: Pick<CertificateSigningRequest, 'status'>): boolean => csrCondition(csr, 'Denied') !== undefined;
export const isFailed = (csr: Pick<CertificateSigningRequest, 'status'>): boolean => csrCondition(csr, 'Failed') !== undefined;

/** The PEM blocks of one type in a text, each as DER; undefined when the text is not PEM at all. */
export function pemBlocks(text: string, label: string): Buffer[] | undefined {
  const blocks: Buffer[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----/g;
  let found = false;
  for (const match of text.matchAll(re)) {
    found = true;
    if (match[1] === label) blocks.push(Buffer.from(match[2]!.replace(/\s+/g, ''), 'base64'));
  }
  return found ? blocks : undefined;
}

export function toPem(der: Buffer, label: string): string {
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}
