/**
 * Joining with a bootstrap token against a real apiserver (TLS, static admin token, client
 * CA) and the controllers that make it work (tokencleaner, bootstrapsigner, csrapproving,
 * csrsigning): token authentication (valid, wrong secret, expired, malformed), the CSR
 * round trip through `pontoon join`'s code and kubectl (`get csr`, `certificate approve`),
 * and a bootstrap-token CSR for another signer staying Pending.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import { bootstrapTokenSecret, generateBootstrapToken, formatBootstrapToken, BOOTSTRAP_TOKEN_NAMESPACE, bootstrapSecretName } from '../../src/api/bootstrap-token.js';
import { type CertificateSigningRequest, SIGNER_KUBE_APISERVER_CLIENT } from '../../src/api/certificates.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Secret } from '../../src/api/serviceaccount.js';
import { ensurePki, type Pki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { ApiError } from '../../src/client/api.js';
import { KubeClient, loadKubeconfig } from '../../src/client/client.js';
import { createBootstrapToken } from '../../src/cli/bootstrap-tokens.js';
import { JoinError, joinNode } from '../../src/cli/join.js';
import { ControllerManager } from '../../src/controllers/manager.js';
import { createLogger } from '../../src/lib/log.js';
import { generateKeyAndCsr, issueCertificate, publicKeyPin } from '../../src/lib/x509.js';
import { poll } from '../helpers/wait.js';
import { startTestApi, type TestApi } from './server-harness.js';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);
const log = createLogger('bootstrap-join-test', { level: process.env['PONTOON_TEST_LOG_LEVEL'] ?? 'silent' });

interface Review {
  status: { userInfo: { username: string; groups: string[] } };
}

describe('bootstrap tokens and node certificates', () => {
  let dir: string;
  let api: TestApi;
  let pki: Pki;
  let admin: KubeClient;
  let manager: ControllerManager;
  let kubeconfig: string;

  const kubectl = async (args: string[]): Promise<string> => {
    const { stdout } = await run(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, HOME: dir } });
    return stdout;
  };
  const whoami = (token: string) => api.call<Review>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {}, { token, ca: pki.caPem });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-join-'));
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(tokensFile, 'admintoken,admin,1,"system:masters"\n');
    pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    api = await startTestApi(new MemoryStore(), { tokensFile, tlsCertFile: pki.certPath, tlsKeyFile: pki.keyPath, clientCaFile: pki.caCertPath });
    admin = new KubeClient({ server: api.url, token: 'admintoken', ca: pki.caPem });
    manager = new ControllerManager({
      api: admin,
      log,
      controllers: ['tokencleaner', 'bootstrapsigner', 'csrapproving', 'csrsigning'],
      clusterSigning: { caCertPath: pki.caCertPath, caKeyPath: pki.caKeyPath },
    });
    await manager.start();
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 't', cluster: { server: api.url, 'certificate-authority-data': Buffer.from(pki.caPem).toString('base64') } }],
        users: [{ name: 'u', user: { token: 'admintoken' } }],
        contexts: [{ name: 't', context: { cluster: 't', user: 'u' } }],
        'current-context': 't',
      }),
    );
  });
  after(async () => {
    await manager?.stop();
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a valid token authenticates as system:bootstrap:<id> in system:bootstrappers', async () => {
    const { token } = await createBootstrapToken(admin, { ttlSeconds: 600 });
    const answer = await whoami(token);
    assert.equal(answer.status, 201, answer.text);
    const id = token.split('.')[0]!;
    assert.equal(answer.body.status.userInfo.username, `system:bootstrap:${id}`);
    assert.ok(answer.body.status.userInfo.groups.includes('system:bootstrappers'), answer.text);
    assert.ok(answer.body.status.userInfo.groups.includes('system:bootstrappers:kubeadm:default-node-token'), answer.text);
  });

  test('a wrong secret, an unknown id and a malformed token get 401', async () => {
    const { token } = await createBootstrapToken(admin, { ttlSeconds: 600 });
    const [id, secret] = token.split('.') as [string, string];
    const wrongSecret = `${id}.${secret.startsWith('a') ? 'b' : 'a'}${secret.slice(1)}`;
    for (const bad of [wrongSecret, formatBootstrapToken(generateBootstrapToken()), `${id}.short`, `${id.toUpperCase()}.${secret}`]) {
      const answer = await whoami(bad);
      assert.equal(answer.status, 401, `${bad}: ${answer.text}`);
      assert.equal((answer.body as unknown as { reason: string }).reason, 'Unauthorized');
    }
    // The same shape of refusal for a wrong secret and an unknown id: no oracle for ids.
    const a = await whoami(wrongSecret);
    const b = await whoami(formatBootstrapToken(generateBootstrapToken()));
    assert.equal(a.text, b.text);
  });

  test('an expired token gets 401 saying so, and tokencleaner deletes its Secret', async () => {
    const token = generateBootstrapToken();
    await admin.create<Secret>(RESOURCE.secrets, bootstrapTokenSecret({ token, expires: new Date(Date.now() - 1000) }));
    const answer = await whoami(formatBootstrapToken(token));
    assert.equal(answer.status, 401, answer.text);
    assert.match((answer.body as unknown as { message: string }).message, /expired/);
    await poll('expired token Secret deleted', async () => ((await admin.get(RESOURCE.secrets, bootstrapSecretName(token.id), BOOTSTRAP_TOKEN_NAMESPACE)) ? undefined : true), { timeoutMs: 10_000 });
  });

  test('join: CSR auto-approved and signed, the kubeconfig authenticates as the node', async () => {
    const { token } = await createBootstrapToken(admin, { ttlSeconds: 600, clusterInfo: { server: api.url, caPem: pki.caPem } });
    const result = await joinNode({ server: api.url, token, nodeName: 'w1', caCertHash: publicKeyPin(pki.caPem), dir: join(dir, 'w1'), timeoutMs: 20_000 });
    const csr = await admin.get<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, result.csrName);
    assert.equal(csr?.spec.username, `system:bootstrap:${token.split('.')[0]}`);
    assert.ok(csr?.status?.conditions?.some((c) => c.type === 'Approved' && c.status === 'True'));
    const certificate = new X509Certificate(Buffer.from(csr?.status?.certificate ?? '', 'base64'));
    assert.ok(certificate.verify(new X509Certificate(pki.caPem).publicKey), 'issued by the cluster CA');
    assert.match(certificate.subject, /CN=system:node:w1/);
    const node = new KubeClient(loadKubeconfig(result.kubeconfig));
    const review = (await node.request<Review>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {}));
    assert.equal(review.status.userInfo.username, 'system:node:w1');
    assert.ok(review.status.userInfo.groups.includes('system:nodes'));
    const listing = await kubectl(['get', 'csr']);
    assert.match(listing, new RegExp(`^${result.csrName}\\s+\\S+\\s+kubernetes.io/kube-apiserver-client-kubelet\\s+system:bootstrap:\\S+\\s+<none>\\s+Approved,Issued`, 'm'), listing);
  });

  test('join without a hash trusts the CA through the token signature; a wrong hash or token is refused', async () => {
    const { token } = await createBootstrapToken(admin, { ttlSeconds: 600, clusterInfo: { server: api.url, caPem: pki.caPem } });
    const result = await joinNode({ server: api.url, token, nodeName: 'w2', dir: join(dir, 'w2'), timeoutMs: 20_000 });
    assert.equal(result.caPem, pki.caPem);
    await assert.rejects(joinNode({ server: api.url, token, nodeName: 'w3', caCertHash: `sha256:${'0'.repeat(64)}`, dir: join(dir, 'w3') }), JoinError);
    const wrong = formatBootstrapToken(generateBootstrapToken());
    await assert.rejects(joinNode({ server: api.url, token: wrong, nodeName: 'w4', caCertHash: publicKeyPin(pki.caPem), dir: join(dir, 'w4') }), (err: unknown) => err instanceof JoinError && /refused the bootstrap token/.test(err.message));
    const pending = await admin.list<CertificateSigningRequest>(RESOURCE.certificatesigningrequests);
    assert.ok(!pending.items.some((c) => /system:node:w4/.test(c.spec.username ?? '')), 'no CSR from the refused token');
  });

  test('a bootstrap CSR for another signer stays Pending until kubectl certificate approve', async () => {
    const { token } = await createBootstrapToken(admin, { ttlSeconds: 600 });
    const asBootstrap = new KubeClient({ server: api.url, token, ca: pki.caPem });
    const csrFor = (name: string, signerName: string, commonName: string): CertificateSigningRequest => ({
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: {
        request: Buffer.from(generateKeyAndCsr({ commonName, organizations: ['system:nodes'] }).csrPem).toString('base64'),
        signerName,
        usages: ['digital signature', 'key encipherment', 'client auth'],
        // A client cannot claim to be someone else: the apiserver stamps the requester.
        username: 'admin',
        groups: ['system:masters'],
      },
    });
    await asBootstrap.create(RESOURCE.certificatesigningrequests, csrFor('other-signer', SIGNER_KUBE_APISERVER_CLIENT, 'system:node:w5'));
    // The approver works its queue in order: once the later node request is approved, it has
    // looked at the earlier one too.
    await asBootstrap.create(RESOURCE.certificatesigningrequests, csrFor('node-after', 'kubernetes.io/kube-apiserver-client-kubelet', 'system:node:w6'));
    await poll('node-after approved', async () => ((await admin.get<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, 'node-after'))?.status?.certificate ? true : undefined), { timeoutMs: 20_000 });
    const other = await admin.get<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, 'other-signer');
    assert.equal(other?.spec.username, `system:bootstrap:${token.split('.')[0]}`);
    assert.ok(!other?.spec.groups?.includes('system:masters'));
    assert.equal(other?.status?.conditions, undefined, JSON.stringify(other?.status));
    assert.match(await kubectl(['get', 'csr', 'other-signer']), /other-signer\s+.*\s+Pending/);

    assert.match(await kubectl(['certificate', 'approve', 'other-signer']), /certificatesigningrequest.certificates.k8s.io\/other-signer approved/);
    await poll('other-signer issued', async () => ((await admin.get<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, 'other-signer'))?.status?.certificate ? true : undefined), { timeoutMs: 20_000 });
    assert.match(await kubectl(['get', 'csr', 'other-signer']), /Approved,Issued/);
    // The bootstrap identity may not approve: status writes keep the approval out.
    const signed = await admin.get<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, 'other-signer');
    await assert.rejects(
      admin.update(RESOURCE.certificatesigningrequests, { ...signed!, status: { ...signed!.status, conditions: [] } }, 'approval'),
      (err: unknown) => err instanceof ApiError && err.code === 422,
    );
  });

  test('a CSR without a PEM request, signer or usages is 422 with field causes', async () => {
    const answer = await api.call<{ reason: string; details: { causes: { field: string }[] } }>(
      'POST',
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: 'junk' }, spec: { request: Buffer.from('not pem').toString('base64'), usages: ['flying'] } },
      { token: 'admintoken', ca: pki.caPem },
    );
    assert.equal(answer.status, 422, answer.text);
    const fields = answer.body.details.causes.map((c) => c.field).sort();
    assert.deepEqual(fields, ['spec.request', 'spec.signerName', 'spec.usages[0]']);
  });

  test('a client certificate from another CA authenticates nobody', async () => {
    const otherCa = ensurePki(join(dir, 'other-pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    const { keyPem, csrPem } = generateKeyAndCsr({ commonName: 'system:node:forged', organizations: ['system:nodes'] });
    const forged = issueCertificate(csrPem, { caCertPath: otherCa.caCertPath, caKeyPath: otherCa.caKeyPath, durationSeconds: 3600, extendedKeyUsages: ['clientAuth'] });
    const client = new KubeClient({ server: api.url, ca: pki.caPem, cert: forged, key: keyPem });
    // Who it is, from the refusal: anonymous users may not even ask (system:basic-user is
    // bound to system:authenticated only, as upstream's).
    await assert.rejects(client.request<Review>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {}), (err: unknown) => err instanceof ApiError && err.code === 403 && /User "system:anonymous"/.test(err.message));
    await assert.rejects(client.create(RESOURCE.configmaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'default' } }), (err: unknown) => err instanceof ApiError && err.code === 403);
  });
});
