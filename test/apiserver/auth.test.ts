/** Token authentication, anonymous requests (discovery and health only), TLS from ensurePki, and the unix socket. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/api/meta.js';
import { parseTokenFile, TokenFileError } from '../../src/apiserver/auth.js';
import { ensurePki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { call, pod, startTestApi, type TestApi } from './server-harness.js';

const PODS = '/api/v1/namespaces/default/pods';

describe('tokens file', () => {
  test('parses the static token CSV, quoted groups included', () => {
    const tokens = parseTokenFile('# comment\nabc,alice,1,"admins,devs"\n\nxyz, bob ,2\n');
    assert.deepEqual(tokens.get('abc'), { name: 'alice', uid: '1', groups: ['admins', 'devs', 'system:authenticated'] });
    assert.deepEqual(tokens.get('xyz'), { name: 'bob', uid: '2', groups: ['system:authenticated'] });
    assert.throws(() => parseTokenFile('onlytoken\n'), TokenFileError);
    assert.throws(() => parseTokenFile('a,b,c,"unterminated\n'), TokenFileError);
  });
});

describe('apiserver with a tokens file over TLS and a unix socket', () => {
  let dir: string;
  let api: TestApi;
  let ca: string;
  let socketPath: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-auth-'));
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(tokensFile, 'admintoken,admin,1,"system:masters"\n');
    const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    ca = pki.caPem;
    socketPath = join(dir, 'apiserver.sock');
    api = await startTestApi(new MemoryStore(), { tokensFile, tlsCertFile: pki.certPath, tlsKeyFile: pki.keyPath, socketPath });
  });
  after(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('ensurePki makes a CA once and reuses it; the server certificate follows the addresses', () => {
    const pkiDir = join(dir, 'pki');
    const first = ensurePki(pkiDir, { ips: ['127.0.0.1'], hosts: ['localhost'] });
    const cert = readFileSync(first.certPath, 'utf8');
    const again = ensurePki(pkiDir, { ips: ['127.0.0.1'], hosts: ['localhost'] });
    assert.equal(again.caPem, first.caPem);
    assert.equal(readFileSync(again.certPath, 'utf8'), cert);
    const wider = ensurePki(pkiDir, { ips: ['127.0.0.1', '198.18.0.1'], hosts: ['localhost'] });
    assert.equal(wider.caPem, first.caPem);
    const reissued = readFileSync(wider.certPath, 'utf8');
    assert.notEqual(reissued, cert);
    assert.ok(new X509Certificate(reissued).subjectAltName?.includes('IP Address:198.18.0.1'));
    assert.ok(new X509Certificate(reissued).verify(new X509Certificate(first.caPem).publicKey));
    assert.equal(statSync(wider.keyPath).mode & 0o077, 0, 'keys are private');
  });

  test('serves HTTPS with a certificate the CA verifies', async () => {
    assert.match(api.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const version = await call<{ minor: string }>(api.url, 'GET', '/version', undefined, { ca });
    assert.equal(version.body.minor, '32');
    await assert.rejects(call(api.url, 'GET', '/version'), /self[- ]signed|unable to verify|certificate/i);
  });

  test('anonymous requests may neither read nor write objects; a bad token is 401; a good token writes', async () => {
    const list = await call<Status>(api.url, 'GET', PODS, undefined, { ca });
    assert.equal(list.status, 403);
    assert.equal(list.body.reason, 'Forbidden');
    assert.equal((await call(api.url, 'GET', '/api/v1', undefined, { ca })).status, 200, 'discovery stays open');
    const anonymousCreate = await call<Status>(api.url, 'POST', PODS, pod('a'), { ca });
    assert.equal(anonymousCreate.status, 403);
    assert.equal(anonymousCreate.body.reason, 'Forbidden');
    assert.match(anonymousCreate.body.message ?? '', /User "system:anonymous" cannot create resource "pods" in API group "" in the namespace "default"/);
    const anonymousDelete = await call<Status>(api.url, 'DELETE', `${PODS}/kubernetes`, undefined, { ca });
    assert.equal(anonymousDelete.status, 403);

    const badToken = await call<Status>(api.url, 'GET', PODS, undefined, { ca, token: 'wrong' });
    assert.equal(badToken.status, 401);
    assert.equal(badToken.body.kind, 'Status');
    assert.equal(badToken.body.reason, 'Unauthorized');

    const created = await call(api.url, 'POST', PODS, pod('a'), { ca, token: 'admintoken' });
    assert.equal(created.status, 201, created.text);
  });

  test('the unix socket speaks plain HTTP with the same rules', async () => {
    const base = `unix:${socketPath}`;
    assert.equal((await call(base, 'GET', '/readyz')).text, 'ok');
    assert.equal((await call(base, 'GET', PODS)).status, 403);
    assert.equal((await call(base, 'POST', PODS, pod('b'))).status, 403);
    assert.equal((await call(base, 'POST', PODS, pod('b'), { token: 'admintoken' })).status, 201);
    assert.equal((await call(base, 'GET', PODS, undefined, { token: 'nope' })).status, 401);
  });
});
