/**
 * X.509 mechanism over the openssl CLI (as pki.ts; no crypto library needed): a key and
 * certificate request for a subject, reading a request's subject back (after checking its
 * self-signature), issuing a certificate from a CA for a request, and the SPKI pin of a
 * certificate (kubeadm's --discovery-token-ca-cert-hash). Knows nothing about Kubernetes.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PontoonError } from './errors.js';
import { CommandError, run } from './exec.js';

export class X509Error extends PontoonError {}

const OPENSSL = '/usr/bin/openssl';

export interface Subject {
  commonName: string;
  organizations: string[];
}

export interface CsrInfo {
  subject: Subject;
  /** Every subjectAltName entry (`DNS:x`, `IP Address:y`...); empty when none. */
  subjectAltNames: string[];
  /** PEM of the request's public key. */
  publicKeyPem: string;
}

/** `/O=a/O=b/CN=c` with openssl's escaping of `/` and `\`. */
function subjectArg(subject: Subject): string {
  const escape = (value: string): string => value.replace(/[\\/]/g, (c) => `\\${c}`);
  return `${subject.organizations.map((o) => `/O=${escape(o)}`).join('')}/CN=${escape(subject.commonName)}`;
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-x509-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh EC P-256 key and a certificate request for `subject` (SANs as openssl takes them: `IP:x`, `DNS:y`), both PEM. */
export function generateKeyAndCsr(subject: Subject, subjectAltNames: readonly string[] = []): { keyPem: string; csrPem: string } {
  return withTempDir((dir) => {
    const keyPath = join(dir, 'key.pem');
    const csrPem = run(OPENSSL, [
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-subj', subjectArg(subject),
      ...(subjectAltNames.length > 0 ? ['-addext', `subjectAltName=${subjectAltNames.join(',')}`] : []),
    ]);
    return { keyPem: run(OPENSSL, ['pkey', '-in', keyPath]), csrPem };
  });
}

/** The subject and SANs of a request whose self-signature verifies; X509Error otherwise. */
export function parseCsr(csrPem: string): CsrInfo {
  let text: string;
  let publicKeyPem: string;
  try {
    text = run(OPENSSL, ['req', '-noout', '-verify', '-text', '-nameopt', 'sep_multiline,utf8,-esc_msb,sname'], { input: csrPem });
    publicKeyPem = run(OPENSSL, ['req', '-noout', '-pubkey'], { input: csrPem });
  } catch (err) {
    if (err instanceof CommandError) throw new X509Error(`failed to read certificate request: ${err.stderr.trim().split('\n')[0] ?? ''}`, { cause: err });
    throw err;
  }
  const subject: Subject = { commonName: '', organizations: [] };
  // sep_multiline puts each RDN on its own line, indented under "Subject:".
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\s*Subject:\s*$/.test(l) || /^\s*Subject:/.test(l));
  for (const line of lines.slice(start + 1)) {
    const match = /^\s+(CN|O)=(.*)$/.exec(line);
    if (!match) {
      if (/^\s+[A-Za-z]+=/.test(line)) continue;
      break;
    }
    if (match[1] === 'CN') subject.commonName = match[2]!;
    else subject.organizations.push(match[2]!);
  }
  const sanIndex = lines.findIndex((l) => l.includes('X509v3 Subject Alternative Name'));
  const subjectAltNames = sanIndex >= 0 ? (lines[sanIndex + 1] ?? '').split(',').map((s) => s.trim()).filter(Boolean) : [];
  return { subject, subjectAltNames, publicKeyPem };
}

export interface IssueOptions {
  caCertPath: string;
  caKeyPath: string;
  durationSeconds: number;
  extendedKeyUsages: ('clientAuth' | 'serverAuth')[];
  /** SANs the caller checked (`IP:x`, `DNS:y`); none by default. */
  subjectAltNames?: readonly string[];
}

/**
 * A certificate for the request's subject and key, signed by the CA. Only the subject and
 * key are taken from the request: usages, lifetime and SANs are the signer's decision (it
 * passes the request's SANs it has checked).
 */
export function issueCertificate(csrPem: string, options: IssueOptions): string {
  return withTempDir((dir) => {
    const csrPath = join(dir, 'req.pem');
    const extPath = join(dir, 'ext.cnf');
    writeFileSync(csrPath, csrPem);
    writeFileSync(extPath, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${options.extendedKeyUsages.join(',')}`, ...(options.subjectAltNames?.length ? [`subjectAltName=${options.subjectAltNames.join(',')}`] : [])].join('\n') + '\n');
    // openssl 3.0 takes whole days; the lifetime is rounded up to one.
    const days = Math.max(1, Math.ceil(options.durationSeconds / 86_400));
    try {
      return run(OPENSSL, [
        'x509', '-req', '-in', csrPath, '-CA', options.caCertPath, '-CAkey', options.caKeyPath,
        '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(days), '-extfile', extPath, '-sha256',
      ]);
    } catch (err) {
      if (err instanceof CommandError) throw new X509Error(`failed to sign certificate: ${err.stderr.trim()}`, { cause: err });
      throw err;
    }
  });
}

/** `sha256:<hex>` of the certificate's SubjectPublicKeyInfo, as kubeadm pins CAs. */
export function publicKeyPin(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}
