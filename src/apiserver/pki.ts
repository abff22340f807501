/**
 * A private CA and one apiserver certificate, made with the openssl CLI so no crypto library
 * is needed. Generated once per directory and reused, so kubeconfigs written earlier keep
 * trusting the server; the server certificate alone is re-issued when the addresses it must
 * cover change. EC P-256 keys: generated in milliseconds, and every TLS client here takes them.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
