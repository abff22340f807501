/**
 * Secrets, ServiceAccounts and tokens as real clients use them: kubectl 1.32 (`create
 * secret generic|tls`, `create serviceaccount`, `create token`, `auth whoami`), the official
 * Python client (Debian python3-kubernetes) and @kubernetes/client-node — each requests a
 * token and lists Services with it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ensurePki, ensureServiceAccountKey, type Pki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { call, startTestApi, type TestApi } from './server-harness.js';

const KUBECTL = '/usr/bin/kubectl';
const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('service accounts and secrets from real clients', () => {
  let dir: string;
  let api: TestApi;
  let pki: Pki;
  let kubeconfig: string;

  const kubectl = async (args: string[]): Promise<string> => {
    const { stdout } = await run(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, HOME: dir } });
    return stdout;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-sa-clients-'));
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(tokensFile, 'admintoken,admin,1,"system:masters"\n');
    pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    const saKey = ensureServiceAccountKey(join(dir, 'pki'));
    api = await startTestApi(new MemoryStore(), {
      tokensFile,
      tlsCertFile: pki.certPath,
      tlsKeyFile: pki.keyPath,
      serviceAccountSigningKeyFile: saKey.keyPath,
    });
    // Under RBAC a token is only as good as its bindings: the default namespace's accounts may read.
    const binding = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'serviceaccounts-view' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:serviceaccounts:default' }],
    };
    const bound = await call(api.url, 'POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings', binding, { ca: pki.caPem, token: 'admintoken' });
    assert.equal(bound.status, 201, bound.text);
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
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('kubectl create secret generic / tls, get -o yaml, get secrets', async () => {
    assert.match(await kubectl(['create', 'secret', 'generic', 'x', '--from-literal=a=b', '--from-literal=user=admin']), /secret\/x created/);
    const yaml = parseYaml(await kubectl(['get', 'secret', 'x', '-o', 'yaml'])) as { type: string; data: Record<string, string>; stringData?: unknown };
    assert.equal(yaml.type, 'Opaque');
    assert.deepEqual(yaml.data, { a: Buffer.from('b').toString('base64'), user: Buffer.from('admin').toString('base64') });
    assert.equal(yaml.stringData, undefined);
    assert.match(await kubectl(['create', 'secret', 'tls', 'web-tls', '--cert', pki.certPath, '--key', pki.keyPath]), /secret\/web-tls created/);
    const listing = (await kubectl(['get', 'secrets'])).trim().split('\n');
    assert.match(listing[0]!, /^NAME\s+TYPE\s+DATA\s+AGE$/);
    assert.ok(listing.some((line) => /^web-tls\s+kubernetes\.io\/tls\s+2\s+/.test(line)), listing.join('\n'));
    assert.ok(listing.some((line) => /^x\s+Opaque\s+2\s+/.test(line)), listing.join('\n'));
  });

  test('kubectl create serviceaccount, create token, and the token with kubectl', async () => {
    assert.match(await kubectl(['create', 'serviceaccount', 'robot']), /serviceaccount\/robot created/);
    const accounts = (await kubectl(['get', 'sa'])).trim().split('\n');
    assert.match(accounts[0]!, /^NAME\s+SECRETS\s+AGE$/);
    assert.ok(accounts.some((line) => /^robot\s+0\s+/.test(line)));
    const token = (await kubectl(['create', 'token', 'robot', '--duration', '15m', '--audience', 'https://kubernetes.default.svc.cluster.local'])).trim();
    const claims = claimsOf(token);
    assert.equal(claims['sub'], 'system:serviceaccount:default:robot');
    assert.equal((claims['exp'] as number) - (claims['iat'] as number), 900);
    const whoami = JSON.parse(await kubectl(['--token', token, 'auth', 'whoami', '-o', 'json'])) as { status: { userInfo: { username: string } } };
    assert.equal(whoami.status.userInfo.username, 'system:serviceaccount:default:robot');
    assert.match(await kubectl(['--token', token, 'get', 'services']), /^kubernetes\s+ClusterIP/m);
    await assert.rejects(kubectl(['create', 'token', 'robot', '--duration', '5m']), /may not specify a duration less than 10 minutes/);
    await assert.rejects(kubectl(['create', 'token', 'ghost']), /serviceaccounts "ghost" not found/);
  });

  test('the official Python client requests a token and lists Services with it', async () => {
    assert.match(await kubectl(['create', 'serviceaccount', 'py']), /created/);
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, pki.caPem);
    const script = `
import json, sys
from kubernetes import client
def api(token):
    c = client.Configuration()
    c.host = sys.argv[1]
    c.ssl_ca_cert = sys.argv[2]
    c.api_key = {"authorization": "Bearer " + token}
    return client.CoreV1Api(client.ApiClient(c))
request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=1200))
answer = api("admintoken").create_namespaced_service_account_token("py", "default", request)
services = api(answer.status.token).list_namespaced_service("default")
print(json.dumps({"token": answer.status.token, "services": [s.metadata.name for s in services.items]}))
`;
    const { stdout } = await run(PYTHON, ['-c', script, api.url, caFile]);
    const result = JSON.parse(stdout) as { token: string; services: string[] };
    assert.deepEqual(result.services, ['kubernetes']);
    assert.equal(claimsOf(result.token)['sub'], 'system:serviceaccount:default:py');
  });

  test('@kubernetes/client-node requests a token and lists Services with it', async () => {
    const config = (token: string): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 't', server: api.url, skipTLSVerify: false, caData: Buffer.from(pki.caPem).toString('base64') }],
        users: [{ name: 'u', token }],
        contexts: [{ name: 't', cluster: 't', user: 'u' }],
        currentContext: 't',
      });
      return kc;
    };
    const admin = config('admintoken').makeApiClient(CoreV1Api);
    await admin.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'js' } } });
    const answer = await admin.createNamespacedServiceAccountToken({ namespace: 'default', name: 'js', body: { spec: { audiences: [] } } });
    const token = answer.status?.token ?? '';
    assert.equal(claimsOf(token)['sub'], 'system:serviceaccount:default:js');
    const services = await config(token).makeApiClient(CoreV1Api).listNamespacedService({ namespace: 'default' });
    assert.deepEqual(services.items.map((s) => s.metadata?.name), ['kubernetes']);
    await admin.deleteNamespacedServiceAccount({ namespace: 'default', name: 'js' });
    await assert.rejects(config(token).makeApiClient(CoreV1Api).listNamespacedService({ namespace: 'default' }), (err: { code?: number }) => err.code === 401);
  });
});
