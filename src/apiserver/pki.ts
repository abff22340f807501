/**
 * A private CA and one apiserver certificate, made with the openssl CLI so no crypto library
 * is needed. Generated once per directory and reused, so kubeconfigs written earlier keep
 * trusting the server; the server certificate alone is re-issued when the addresses it must
 * cover change. EC P-256 keys: generated in milliseconds, and every TLS client here takes them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lib/exec.js';

export interface PkiOptions {
  ips: string[];
  hosts: string[];
  /** Default /usr/bin/openssl. */
  openssl?: string;
}

export interface Pki {
  caCertPath: string;
  caKeyPath: string;
  certPath: string;
  keyPath: string;
  caPem: string;
}

const VALID_DAYS = '3650';

export function ensurePki(dir: string, options: PkiOptions): Pki {
  const openssl = options.openssl ?? '/usr/bin/openssl';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki: Pki = {
    caCertPath: join(dir, 'ca.crt'),
    caKeyPath: join(dir, 'ca.key'),
    certPath: join(dir, 'apiserver.crt'),
    keyPath: join(dir, 'apiserver.key'),
    caPem: '',
  };
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!existsSync(pki.caCertPath) || !existsSync(pki.caKeyPath)) {
    run(openssl, [
      'req', '-x509', ...ecKey, '-keyout', pki.caKeyPath, '-out', pki.caCertPath, '-days', VALID_DAYS,
      '-subj', '/CN=pontoon-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ]);
  }
  const sans = [...new Set(['127.0.0.1', ...options.ips])].map((ip) => `IP:${ip}`)
    .concat([...new Set(['localhost', ...options.hosts])].map((host) => `DNS:${host}`))
    .join(',');
  const sansPath = join(dir, 'apiserver.sans');
  const current = existsSync(sansPath) ? readFileSync(sansPath, 'utf8') : '';
  if (current !== sans || !existsSync(pki.certPath) || !existsSync(pki.keyPath)) {
    const csrPath = join(dir, 'apiserver.csr');
    const extPath = join(dir, 'apiserver.ext');
    writeFileSync(
      extPath,
      [
        `subjectAltName=${sans}`,
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
      ].join('\n') + '\n',
    );
    run(openssl, ['req', '-new', ...ecKey, '-keyout', pki.keyPath, '-out', csrPath, '-subj', '/CN=pontoon-apiserver']);
    run(openssl, [
      'x509', '-req', '-in', csrPath, '-CA', pki.caCertPath, '-CAkey', pki.caKeyPath, '-CAcreateserial',
      '-out', pki.certPath, '-days', VALID_DAYS, '-extfile', extPath,
    ]);
    writeFileSync(sansPath, sans);
  }
  pki.caPem = readFileSync(pki.caCertPath, 'utf8');
  return pki;
}

export interface ServiceAccountKey {
  /** Private key the apiserver (TokenRequest) and the controller-manager (legacy tokens) sign with. */
  keyPath: string;
  /** Its public half, for --service-account-key-file. */
  publicKeyPath: string;
}

/**
 * The service-account token signing key pair (kubeadm's sa.key/sa.pub), made once per
 * directory and reused: tokens already handed to pods stay valid across restarts. EC P-256,
 * so tokens are ES256.
 */
export function ensureServiceAccountKey(dir: string, options: { openssl?: string } = {}): ServiceAccountKey {
  const openssl = options.openssl ?? '/usr/bin/openssl';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key: ServiceAccountKey = { keyPath: join(dir, 'sa.key'), publicKeyPath: join(dir, 'sa.pub') };
  if (!existsSync(key.keyPath)) {
    run(openssl, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key.keyPath]);
    chmodSync(key.keyPath, 0o600);
  }
  if (!existsSync(key.publicKeyPath)) run(openssl, ['pkey', '-in', key.keyPath, '-pubout', '-out', key.publicKeyPath]);
  return key;
}

/** A leaf certificate to sign with the cluster CA (a kubelet's serving cert, the apiserver's kubelet-client cert). */
export interface CertificateRequest {
  /** File stem: `<dir>/<name>.crt` and `<name>.key`. */
  name: string;
  commonName: string;
  /** Subject O= entries: Kubernetes reads them as the user's groups. */
  organizations?: string[];
  ips?: string[];
  hosts?: string[];
  usage: 'serverAuth' | 'clientAuth';
}

export interface IssuedCertificate {
  certPath: string;
  keyPath: string;
}

/**
 * Signs a leaf certificate with the CA of `ensurePki`, into `dir` (which may belong to a
 * node: only the CA's key stays with the control plane). Issued once and reused while its
 * subject, addresses and usage stay the same.
 */
export function issueCertificate(ca: Pick<Pki, 'caCertPath' | 'caKeyPath'>, dir: string, request: CertificateRequest, options: { openssl?: string } = {}): IssuedCertificate {
  const openssl = options.openssl ?? '/usr/bin/openssl';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const issued: IssuedCertificate = { certPath: join(dir, `${request.name}.crt`), keyPath: join(dir, `${request.name}.key`) };
  // openssl's -subj escapes: a '/' or '=' inside a value would start a new attribute.
  const escape = (value: string): string => value.replace(/[/=\\]/g, (c) => `\\${c}`);
  const subject = `/${(request.organizations ?? []).map((o) => `O=${escape(o)}/`).join('')}CN=${escape(request.commonName)}`;
  const sans = [...(request.ips ?? []).map((ip) => `IP:${ip}`), ...(request.hosts ?? []).map((host) => `DNS:${host}`)].join(',');
  const spec = JSON.stringify({ subject, sans, usage: request.usage, ca: readFileSync(ca.caCertPath, 'utf8') });
  const specPath = join(dir, `${request.name}.spec`);
  if (existsSync(specPath) && readFileSync(specPath, 'utf8') === spec && existsSync(issued.certPath) && existsSync(issued.keyPath)) return issued;
  const csrPath = join(dir, `${request.name}.csr`);
  const extPath = join(dir, `${request.name}.ext`);
  writeFileSync(
    extPath,
    [
      ...(sans ? [`subjectAltName=${sans}`] : []),
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${request.usage}`,
    ].join('\n') + '\n',
  );
  run(openssl, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', issued.keyPath, '-out', csrPath, '-subj', subject]);
  chmodSync(issued.keyPath, 0o600);
  run(openssl, ['x509', '-req', '-in', csrPath, '-CA', ca.caCertPath, '-CAkey', ca.caKeyPath, '-CAcreateserial', '-out', issued.certPath, '-days', VALID_DAYS, '-extfile', extPath]);
  writeFileSync(specPath, spec);
  return issued;
}
