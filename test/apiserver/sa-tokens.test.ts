/**
 * Service-account tokens: TokenRequest, and authentication with the tokens it returns —
 * valid only while signed by our key, for our issuer and audience, unexpired, and while the
 * ServiceAccount and the bound Pod/Secret exist with the same uid.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomUUID, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KubeObject, Status } from '../../src/api/meta.js';
import { boundClaims, type TokenRequest } from '../../src/api/serviceaccount.js';
import { ensurePki, ensureServiceAccountKey } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { readSigningKey, signingKeyFromPem, signJws, type SigningKey } from '../../src/lib/jws.js';
import { call, pod, startTestApi, type TestApi } from './server-harness.js';

const NS = '/api/v1/namespaces/default';
const ISSUER = 'https://kubernetes.default.svc.cluster.local';

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('service-account tokens', () => {
  let dir: string;
  let api: TestApi;
  let ca: string;
  let signingKey: SigningKey;
  let publicKeyPem: string;
  const admin = { token: 'admintoken' };

  const asAdmin = <T = unknown>(method: string, path: string, body?: unknown) => call<T>(api.url, method, path, body, { ca, ...admin });
  const withToken = <T = unknown>(token: string, method: string, path: string, body?: unknown) => call<T>(api.url, method, path, body, { ca, token });

  async function createAccount(name: string): Promise<KubeObject> {
    const created = await asAdmin<KubeObject>('POST', `${NS}/serviceaccounts`, { metadata: { name } });
    assert.equal(created.status, 201, created.text);
    return created.body;
  }

  async function requestToken(account: string, spec: Record<string, unknown> = {}): Promise<{ status: number; body: TokenRequest & Status }> {
    return asAdmin<TokenRequest & Status>('POST', `${NS}/serviceaccounts/${account}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec });
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-satokens-'));
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(tokensFile, 'admintoken,admin,1,"system:masters"\n');
    const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    const saKey = ensureServiceAccountKey(join(dir, 'pki'));
    ca = pki.caPem;
    signingKey = readSigningKey(saKey.keyPath);
    publicKeyPem = readFileSync(saKey.publicKeyPath, 'utf8');
    api = await startTestApi(new MemoryStore(), {
      tokensFile,
      tlsCertFile: pki.certPath,
      tlsKeyFile: pki.keyPath,
      serviceAccountSigningKeyFile: saKey.keyPath,
      serviceAccountKeyFiles: [saKey.publicKeyPath],
    });
    // Under RBAC a valid token still needs a binding: every service account may read here.
    const bound = await call(api.url, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'serviceaccounts-view' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:serviceaccounts' }],
    }, { ca, token: 'admintoken' });
    assert.equal(bound.status, 201, bound.text);
  });
  after(async () => {
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('discovery lists serviceaccounts/token (TokenRequest, create)', async () => {
    const list = await asAdmin<{ resources: { name: string; kind: string; group?: string; verbs: string[] }[] }>('GET', '/api/v1');
    const token = list.body.resources.find((r) => r.name === 'serviceaccounts/token');
    assert.deepEqual(token && { kind: token.kind, group: token.group, verbs: token.verbs }, { kind: 'TokenRequest', group: 'authentication.k8s.io', verbs: ['create'] });
  });

  test('TokenRequest returns an ES256 JWT with the standard claims, verifiable with the public key', async () => {
    const account = await createAccount('reader');
    const answer = await requestToken('reader');
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const token = answer.body.status!.token;
    const [header, payload, signature] = token.split('.');
    assert.equal(JSON.parse(Buffer.from(header!, 'base64url').toString()).alg, 'ES256');
    assert.ok(verify('sha256', Buffer.from(`${header}.${payload}`), { key: createPublicKey(publicKeyPem), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature!, 'base64url')));
    const claims = claimsOf(token);
    assert.equal(claims['iss'], ISSUER);
    assert.equal(claims['sub'], 'system:serviceaccount:default:reader');
    assert.deepEqual(claims['aud'], [ISSUER]);
    assert.deepEqual(answer.body.spec.audiences, [ISSUER]);
    assert.equal(answer.body.spec.expirationSeconds, 3600);
    assert.equal((claims['exp'] as number) - (claims['iat'] as number), 3600);
    assert.equal(claims['nbf'], claims['iat']);
    assert.equal(Date.parse(answer.body.status!.expirationTimestamp) / 1000, claims['exp']);
    assert.deepEqual(claims['kubernetes.io'], { namespace: 'default', serviceaccount: { name: 'reader', uid: account.metadata.uid } });
  });

  test('the token authenticates as the service account and may list Services', async () => {
    await createAccount('lister');
    const token = (await requestToken('lister')).body.status!.token;
    const review = await withToken<{ status: { userInfo: { username: string; groups: string[] } } }>(token, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {});
    assert.equal(review.status, 201);
    assert.equal(review.body.status.userInfo.username, 'system:serviceaccount:default:lister');
    assert.deepEqual(review.body.status.userInfo.groups, ['system:serviceaccounts', 'system:serviceaccounts:default', 'system:authenticated']);
    const services = await withToken<{ items: KubeObject[] }>(token, 'GET', `${NS}/services`);
    assert.equal(services.status, 200);
    assert.ok(services.body.items.some((s) => s.metadata.name === 'kubernetes'));
  });

  test('bad requests: short expiry 422, missing account 404, unsupported bound kind 400, stale uid 409, anonymous 403', async () => {
    await createAccount('picky');
    const short = await requestToken('picky', { expirationSeconds: 599 });
    assert.equal(short.status, 422);
    assert.deepEqual(short.body.details?.causes, [
      { reason: 'FieldValueInvalid', field: 'spec.expirationSeconds', message: 'Invalid value: 599: may not specify a duration less than 10 minutes' },
    ]);
    assert.equal((await requestToken('picky', { expirationSeconds: 600 })).status, 201);
    const missing = await requestToken('nobody');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.message, 'serviceaccounts "nobody" not found');
    const node = await requestToken('picky', { boundObjectRef: { kind: 'Node', apiVersion: 'v1', name: 'n1' } });
    assert.equal(node.status, 400);
    assert.equal(node.body.message, 'cannot bind token to object of type /v1, Kind=Node');
    const created = await asAdmin<KubeObject>('POST', `${NS}/pods`, { ...pod('picky-pod'), spec: { ...(pod('x')['spec'] as object), serviceAccountName: 'picky' } });
    assert.equal(created.status, 201, created.text);
    const stale = await requestToken('picky', { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'picky-pod', uid: randomUUID() } });
    assert.equal(stale.status, 409);
    const otherAccount = await requestToken('reader', { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'picky-pod' } });
    assert.equal(otherAccount.status, 400);
    const anonymous = await call<Status>(api.url, 'POST', `${NS}/serviceaccounts/picky/token`, { spec: {} }, { ca });
    assert.equal(anonymous.status, 403);
  });

  test('expired, tampered, foreign-key, wrong-issuer and wrong-audience tokens are 401 Unauthorized', async () => {
    const account = await createAccount('forged');
    const forge = (overrides: Record<string, unknown>, key: SigningKey = signingKey): string => {
      const nowSeconds = Math.floor(Date.now() / 1000);
      const claims = boundClaims({
        issuer: ISSUER,
        audiences: [ISSUER],
        serviceAccount: { namespace: 'default', name: 'forged', uid: account.metadata.uid ?? '' },
        issuedAtSeconds: nowSeconds,
        expirationSeconds: 3600,
        jti: randomUUID(),
      });
      return signJws({ ...claims, ...overrides }, key);
    };
    const expectStatus = async (token: string, code: number, what: string): Promise<void> => {
      const answer = await withToken<Status>(token, 'GET', `${NS}/services`);
      assert.equal(answer.status, code, what);
      if (code === 401) assert.deepEqual({ kind: answer.body.kind, reason: answer.body.reason }, { kind: 'Status', reason: 'Unauthorized' }, what);
    };
    // The forging itself is sound: the same claims with our key are accepted.
    await expectStatus(forge({}), 200, 'well-formed token');
    const twoHoursAgo = Math.floor(Date.now() / 1000) - 7200;
    await expectStatus(forge({ iat: twoHoursAgo, nbf: twoHoursAgo, exp: twoHoursAgo + 3600 }), 401, 'expired');
    await expectStatus(forge({ nbf: Math.floor(Date.now() / 1000) + 3600 }), 401, 'not yet valid');
    await expectStatus(forge({ iss: 'https://issuer.example' }), 401, 'wrong issuer');
    await expectStatus(forge({ aud: ['https://other.example'] }), 401, 'wrong audience');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await expectStatus(forge({}, signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }))), 401, 'signed by another key');

    const [header, payload, signature] = forge({}).split('.');
    const tamperedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: 'system:serviceaccount:kube-system:default' }),
    ).toString('base64url');
    await expectStatus(`${header}.${tamperedPayload}.${signature}`, 401, 'tampered payload');
    const flipped = signature!.slice(0, 10) + (signature![10] === 'A' ? 'B' : 'A') + signature!.slice(11);
    await expectStatus(`${header}.${payload}.${flipped}`, 401, 'tampered signature');
  });

  test('deleting the ServiceAccount revokes its tokens, also after one of the same name is made again', async () => {
    await createAccount('doomed');
    const token = (await requestToken('doomed')).body.status!.token;
    assert.equal((await withToken(token, 'GET', `${NS}/services`)).status, 200);
    assert.equal((await asAdmin('DELETE', `${NS}/serviceaccounts/doomed`)).status, 200);
    assert.equal((await withToken(token, 'GET', `${NS}/services`)).status, 401);
    await createAccount('doomed');
    assert.equal((await withToken(token, 'GET', `${NS}/services`)).status, 401, 'a new account with the same name has another uid');
  });

  test('a token bound to a Pod or a Secret dies with it', async () => {
    await createAccount('bound');
    const created = await asAdmin<KubeObject>('POST', `${NS}/pods`, { ...pod('bound-pod'), spec: { ...(pod('x')['spec'] as object), serviceAccountName: 'bound' } });
    assert.equal(created.status, 201, created.text);
    const answer = await requestToken('bound', { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'bound-pod' } });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const podToken = answer.body.status!.token;
    assert.deepEqual((claimsOf(podToken)['kubernetes.io'] as { pod: unknown }).pod, { name: 'bound-pod', uid: created.body.metadata.uid });
    assert.equal(answer.body.spec.boundObjectRef?.uid, created.body.metadata.uid);

    assert.equal((await asAdmin('POST', `${NS}/secrets`, { metadata: { name: 'anchor' }, stringData: { a: 'b' } })).status, 201);
    const secretToken = (await requestToken('bound', { boundObjectRef: { kind: 'Secret', name: 'anchor' } })).body.status!.token;

    assert.equal((await withToken(podToken, 'GET', `${NS}/services`)).status, 200);
    assert.equal((await withToken(secretToken, 'GET', `${NS}/services`)).status, 200);
    assert.equal((await asAdmin('DELETE', `${NS}/pods/bound-pod`)).status, 200);
    assert.equal((await asAdmin('GET', `${NS}/pods/bound-pod`)).status, 404, 'an unscheduled pod goes at once');
    assert.equal((await withToken(podToken, 'GET', `${NS}/services`)).status, 401);
    assert.equal((await withToken(secretToken, 'GET', `${NS}/services`)).status, 200, 'the Secret-bound token does not depend on the pod');
    assert.equal((await asAdmin('DELETE', `${NS}/secrets/anchor`)).status, 200);
    assert.equal((await withToken(secretToken, 'GET', `${NS}/services`)).status, 401);
  });
});
