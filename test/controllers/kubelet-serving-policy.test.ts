/** Which kubelet serving requests csrapproving approves, and the SANs csrsigning copies. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { type CertificateSigningRequest, SIGNER_KUBELET_SERVING } from '../../src/api/certificates.js';
import { notApprovableKubeletServing, subjectAltNameConfig } from '../../src/controllers/kubelet-serving-policy.js';
import { parseIpNet } from '../../src/lib/ip.js';
import { generateKeyAndCsr, issueCertificate, parseCsr } from '../../src/lib/x509.js';

const nodes = [parseIpNet('198.18.0.0/24')];
const subject = { commonName: 'system:node:w1', organizations: ['system:nodes'] };

function request(sans: string[], over: Partial<CertificateSigningRequest['spec']> = {}, who = { username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:authenticated'] }, subj = subject) {
  const { csrPem } = generateKeyAndCsr(subj, sans);
  const csr: CertificateSigningRequest = {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name: 'x' },
    spec: { request: Buffer.from(csrPem).toString('base64'), signerName: SIGNER_KUBELET_SERVING, usages: ['digital signature', 'key encipherment', 'server auth'], ...who, ...over },
  };
  return { csr, info: parseCsr(csrPem), csrPem };
}

test('a bootstrap token or the node itself gets a serving certificate for an address in the node network', () => {
  const { csr, info } = request(['IP:198.18.0.11', 'DNS:w1']);
  assert.equal(notApprovableKubeletServing(csr, info, nodes), undefined);
  const self = request(['IP:198.18.0.11'], {}, { username: 'system:node:w1', groups: ['system:nodes'] });
  assert.equal(notApprovableKubeletServing(self.csr, self.info, nodes), undefined);
});

test('refused: an address outside, another DNS name, no SANs, client usages, another subject, another requester, no ranges', () => {
  const cases = [
    request(['IP:10.0.0.5']),
    request(['IP:198.18.0.11', 'DNS:w2']),
    request([]),
    request(['IP:198.18.0.11'], { usages: ['digital signature', 'client auth'] }),
    request(['IP:198.18.0.11'], {}, undefined, { commonName: 'admin', organizations: ['system:masters'] }),
    request(['IP:198.18.0.11'], {}, { username: 'system:node:w2', groups: ['system:nodes'] }),
  ];
  for (const { csr, info } of cases) assert.ok(notApprovableKubeletServing(csr, info, nodes), JSON.stringify(info.subjectAltNames));
  const fine = request(['IP:198.18.0.11']);
  assert.ok(notApprovableKubeletServing(fine.csr, fine.info, []), 'no --kubelet-serving-approve-cidrs: nothing is approved');
});

test('the issued certificate carries the request\'s checked SANs and serverAuth', () => {
  const { info, csrPem } = request(['IP:198.18.0.11', 'DNS:w1']);
  assert.deepEqual(subjectAltNameConfig(info), ['IP:198.18.0.11', 'DNS:w1']);
  // A throwaway CA, as csrsigning's --cluster-signing-cert-file.
  const dir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${dir}/ca.key`, '-out', `${dir}/ca.crt`, '-subj', '/CN=t', '-days', '1'], { stdio: 'ignore' });
  try {
    const pem = issueCertificate(csrPem, { caCertPath: `${dir}/ca.crt`, caKeyPath: `${dir}/ca.key`, durationSeconds: 86_400, extendedKeyUsages: ['serverAuth'], subjectAltNames: subjectAltNameConfig(info) });
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' });
    assert.match(text, /IP Address:198\.18\.0\.11, DNS:w1/);
    assert.match(text, /TLS Web Server Authentication/);
  } finally {
    execFileSync('rm', ['-rf', dir]);
  }
});

