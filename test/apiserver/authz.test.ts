/**
 * Authorization: anonymous callers see discovery and health only; the Node authorizer keeps a
 * node to its own Node, Lease, pods and the Secrets its pods use; a ServiceAccount with a Role
 * may do exactly what the Role says (asked through the real kubectl's `auth can-i`, and by
 * making the requests); access reviews; the escalation check on writing roles and bindings.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import type { Status } from '../../src/api/meta.js';
import { ensurePki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { call, pod, startTestApi, type Answer, type TestApi } from './server-harness.js';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';
const RBAC = '/apis/rbac.authorization.k8s.io/v1';
const MERGE = 'application/merge-patch+json';

const TOKENS: Record<string, string> = {
  admin: 'admin',
  n1: 'system:node:n1',
  n2: 'system:node:n2',
  alice: 'alice',
};

describe('authorization (Node, RBAC)', () => {
  let dir: string;
  let api: TestApi;
  let ca: string;
  const as = <T = unknown>(who: keyof typeof TOKENS | 'anonymous' | { token: string }, method: string, path: string, body?: unknown, contentType?: string): Promise<Answer<T>> =>
    call<T>(api.url, method, path, body, {
      ca,
      ...(who === 'anonymous' ? {} : { token: typeof who === 'object' ? who.token : `${who}-token` }),
      ...(contentType ? { contentType } : {}),
    });
  const ok = async <T = unknown>(answer: Promise<Answer<T>>, code = 200): Promise<T> => {
    const a = await answer;
    assert.equal(a.status, code, a.text);
    return a.body;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pontoon-authz-'));
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(
      tokensFile,
      ['admin-token,admin,1,"system:masters"', 'n1-token,system:node:n1,2,"system:nodes"', 'n2-token,system:node:n2,3,"system:nodes"', 'alice-token,alice,4,""', ''].join('\n'),
    );
    const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
    ca = pki.caPem;
    api = await startTestApi(new MemoryStore(), { tokensFile, tlsCertFile: pki.certPath, tlsKeyFile: pki.keyPath });
    for (const name of ['n1', 'n2']) await ok(as('admin', 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } }), 201);
  });
  after(async () => {
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('anonymous: discovery and health answer, objects are 403', async () => {
    for (const path of ['/version', '/healthz', '/livez', '/readyz', '/api', '/apis', '/api/v1', '/apis/apps/v1', '/openapi/v3', '/openapi/v2']) {
      assert.equal((await as('anonymous', 'GET', path)).status, 200, path);
    }
    for (const path of ['/api/v1/namespaces/default/pods', '/api/v1/namespaces', '/api/v1/secrets', '/api/v1/namespaces/default/services/kubernetes', '/apis/apps/v1/deployments']) {
      const answer = await as<Status>('anonymous', 'GET', path);
      assert.equal(answer.status, 403, path);
      assert.equal(answer.body.reason, 'Forbidden');
    }
    const denied = await as<Status>('anonymous', 'GET', '/api/v1/namespaces/default/pods');
    assert.match(denied.body.message ?? '', /User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default"/);
    assert.equal((await as('anonymous', 'POST', '/api/v1/namespaces/default/configmaps', { metadata: { name: 'x' } })).status, 403);
    // A user with a token but no bindings: discovery yes, objects no.
    assert.equal((await as('alice', 'GET', '/apis')).status, 200);
    assert.equal((await as('alice', 'GET', '/api/v1/namespaces/default/pods')).status, 403);
  });

  test('a node writes only its own Node and Lease, and the status of pods bound to it', async () => {
    const status = { status: { conditions: [{ type: 'Ready', status: 'True' }] } };
    await ok(as('n1', 'PATCH', '/api/v1/nodes/n1/status', status, MERGE));
    const other = await as<Status>('n1', 'PATCH', '/api/v1/nodes/n2/status', status, MERGE);
    assert.equal(other.status, 403, other.text);
    assert.equal((await as('n1', 'PATCH', '/api/v1/nodes/n2', { metadata: { labels: { a: 'b' } } }, MERGE)).status, 403);
    assert.equal((await as('n1', 'DELETE', '/api/v1/nodes/n2')).status, 403);
    assert.equal((await as('n1', 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n3' } })).status, 403);
    await ok(as('n1', 'GET', '/api/v1/nodes'));

    const leases = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';
    const lease = (name: string): unknown => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name }, spec: { holderIdentity: name } });
    await ok(as('n1', 'POST', leases, lease('n1')), 201);
    assert.equal((await as('n1', 'POST', leases, lease('n2'))).status, 403);
    await ok(as('n2', 'POST', leases, lease('n2')), 201);
    assert.equal((await as('n1', 'PATCH', `${leases}/n2`, { spec: { holderIdentity: 'n1' } }, MERGE)).status, 403);
    await ok(as('n1', 'PATCH', `${leases}/n1`, { spec: { renewTime: '2026-01-01T00:00:00.000000Z' } }, MERGE));

    const pods = '/api/v1/namespaces/default/pods';
    await ok(as('admin', 'POST', pods, pod('on-n1', { nodeName: 'n1' })), 201);
    const podStatus = { status: { phase: 'Running' } };
    await ok(as('n1', 'PATCH', `${pods}/on-n1/status`, podStatus, MERGE));
    assert.equal((await as('n2', 'PATCH', `${pods}/on-n1/status`, podStatus, MERGE)).status, 403);
    assert.equal((await as('n1', 'POST', pods, pod('made-by-node', { nodeName: 'n1' }))).status, 403);
    assert.equal((await as('n2', 'DELETE', `${pods}/on-n1`)).status, 403);
    // Events are every node's to write; other kinds are not.
    const event = { apiVersion: 'v1', kind: 'Event', metadata: { name: 'e1' }, involvedObject: { kind: 'Pod', name: 'on-n1', namespace: 'default' }, reason: 'Started', message: 'm', type: 'Normal' };
    await ok(as('n1', 'POST', '/api/v1/namespaces/default/events', event), 201);
    assert.equal((await as('n1', 'POST', '/api/v1/namespaces/default/configmaps', { metadata: { name: 'c' } })).status, 403);
  });

  test('a node reads only the Secrets and ConfigMaps its pods use, and never lists them', async () => {
    const ns = '/api/v1/namespaces/default';
    for (const name of ['mounted', 'env-only', 'unused']) {
      await ok(as('admin', 'POST', `${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: { k: name } }), 201);
    }
    await ok(as('admin', 'POST', `${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { a: 'b' } }), 201);
    const withVolumes = pod('uses-secrets', { nodeName: 'n1' }) as { spec: Record<string, unknown> };
    withVolumes.spec['volumes'] = [
      { name: 's', secret: { secretName: 'mounted' } },
      { name: 'c', configMap: { name: 'settings' } },
    ];
    (withVolumes.spec['containers'] as Array<Record<string, unknown>>)[0]!['env'] = [{ name: 'E', valueFrom: { secretKeyRef: { name: 'env-only', key: 'k' } } }];
    await ok(as('admin', 'POST', `${ns}/pods`, withVolumes), 201);

    await ok(as('n1', 'GET', `${ns}/secrets/mounted`));
    await ok(as('n1', 'GET', `${ns}/secrets/env-only`));
    await ok(as('n1', 'GET', `${ns}/configmaps/settings`));
    assert.equal((await as('n1', 'GET', `${ns}/secrets/unused`)).status, 403);
    assert.equal((await as('n2', 'GET', `${ns}/secrets/mounted`)).status, 403, 'no pod of n2 uses it');
    assert.equal((await as('n1', 'GET', `${ns}/secrets`)).status, 403);
    assert.equal((await as('n1', 'GET', '/api/v1/secrets')).status, 403);
    assert.equal((await as('n1', 'GET', `${ns}/secrets?watch=true&fieldSelector=metadata.name%3Dmounted`)).status, 403);
    assert.equal((await as('n1', 'PUT', `${ns}/secrets/mounted`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mounted' } })).status, 403);
    // The relationship ends with the pod.
    await ok(as('admin', 'DELETE', `${ns}/pods/uses-secrets?gracePeriodSeconds=0`));
    assert.equal((await as('n1', 'GET', `${ns}/secrets/mounted`)).status, 403);
  });

  test('a ServiceAccount with a Role may do exactly what the Role says (kubectl auth can-i)', async () => {
    const granted: Array<{ verbs: string[]; resources: string[] }> = [
      { verbs: ['get', 'list', 'watch'], resources: ['pods'] },
      { verbs: ['create', 'delete'], resources: ['configmaps'] },
      { verbs: ['get'], resources: ['pods/log'] },
    ];
    await ok(as('admin', 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } }), 201);
    await ok(as('admin', 'POST', '/api/v1/namespaces/team/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot' } }), 201);
    await ok(
      as('admin', 'POST', `${RBAC}/namespaces/team/roles`, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'pod-reader' },
        rules: granted.map((r) => ({ apiGroups: [''], ...r })),
      }),
      201,
    );
    await ok(
      as('admin', 'POST', `${RBAC}/namespaces/team/rolebindings`, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'robot-reads-pods' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'robot', namespace: 'team' }],
      }),
      201,
    );
    const tokenAnswer = await ok<{ status: { token: string } }>(as('admin', 'POST', '/api/v1/namespaces/team/serviceaccounts/robot/token', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} }), 201);
    const robot = { token: tokenAnswer.status.token };

    const kubeconfig = join(dir, 'robot.kubeconfig');
    writeFileSync(
      kubeconfig,
      toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 't', cluster: { server: api.url, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
        users: [{ name: 'robot', user: { token: robot.token } }],
        contexts: [{ name: 't', context: { cluster: 't', user: 'robot' } }],
        'current-context': 't',
      }),
    );
    const canI = async (args: string[]): Promise<boolean> => {
      try {
        const { stdout } = await run(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), 'auth', 'can-i', ...args], { env: { ...process.env, HOME: dir } });
        assert.equal(stdout.trim(), 'yes');
        return true;
      } catch (err) {
        const failed = err as { code?: number; stdout?: string; stderr?: string };
        // can-i answers "no" with exit status 1; anything else is a broken request.
        assert.equal(failed.code, 1, `${args.join(' ')}: ${failed.stderr ?? ''}`);
        assert.match(failed.stdout ?? '', /^no/, failed.stderr);
        return false;
      }
    };
    const expected = (verb: string, resource: string, namespace: string): boolean =>
      namespace === 'team' && granted.some((r) => r.verbs.includes(verb) && r.resources.includes(resource));
    const mismatches: string[] = [];
    for (const namespace of ['team', 'default']) {
      for (const verb of ['get', 'list', 'create', 'delete', 'update']) {
        for (const resource of ['pods', 'configmaps', 'secrets', 'pods/log']) {
          // kubectl reads `pods/log` as the pod named log: a subresource is its own flag.
          const [plural = '', subresource] = resource.split('/');
          const answer = await canI([verb, plural, ...(subresource ? [`--subresource=${subresource}`] : []), '-n', namespace]);
          if (answer !== expected(verb, resource, namespace)) mismatches.push(`${verb} ${resource} -n ${namespace}: kubectl says ${answer}`);
        }
      }
    }
    assert.deepEqual(mismatches, []);
    // The answers are what the requests get.
    await ok(as(robot, 'GET', '/api/v1/namespaces/team/pods'));
    assert.equal((await as(robot, 'GET', '/api/v1/namespaces/default/pods')).status, 403);
    assert.equal((await as(robot, 'GET', '/api/v1/namespaces/team/secrets')).status, 403);
    await ok(as(robot, 'POST', '/api/v1/namespaces/team/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'made' } }), 201);
    assert.equal((await as(robot, 'PUT', '/api/v1/namespaces/team/configmaps/made', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'made' } })).status, 403);
    await ok(as(robot, 'DELETE', '/api/v1/namespaces/team/configmaps/made'));

    // Removing the binding takes the permissions away on the next request.
    await ok(as('admin', 'DELETE', `${RBAC}/namespaces/team/rolebindings/robot-reads-pods`));
    assert.equal((await as(robot, 'GET', '/api/v1/namespaces/team/pods')).status, 403);
    assert.equal(await canI(['list', 'pods', '-n', 'team']), false);
  });

  test('kubectl create role/rolebinding (protobuf bodies) and auth can-i --list', async () => {
    const kubeconfig = (name: string, token: string): string => {
      const path = join(dir, `${name}.kubeconfig`);
      writeFileSync(
        path,
        toYaml({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 't', cluster: { server: api.url, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
          users: [{ name, user: { token } }],
          contexts: [{ name: 't', context: { cluster: 't', user: name } }],
          'current-context': 't',
        }),
      );
      return path;
    };
    const admin = kubeconfig('admin', 'admin-token');
    const kubectl = async (config: string, ...args: string[]): Promise<string> =>
      (await run(KUBECTL, ['--kubeconfig', config, '--cache-dir', join(dir, 'cache'), ...args], { env: { ...process.env, HOME: dir } })).stdout;
    assert.match(await kubectl(admin, 'create', 'namespace', 'cli'), /created/);
    assert.match(await kubectl(admin, 'create', 'role', 'cm-editor', '--verb=get,create', '--resource=configmaps', '-n', 'cli'), /created/);
    assert.match(await kubectl(admin, 'create', 'clusterrole', 'metrics-reader', '--verb=get', '--non-resource-url=/metrics'), /created/);
    assert.match(await kubectl(admin, 'create', 'rolebinding', 'alice-cm', '--role=cm-editor', '--user=alice', '-n', 'cli'), /created/);
    assert.match(await kubectl(admin, 'create', 'clusterrolebinding', 'alice-metrics', '--clusterrole=metrics-reader', '--user=alice'), /created/);
    const alice = kubeconfig('alice', 'alice-token');
    assert.equal((await kubectl(alice, 'auth', 'can-i', 'create', 'configmaps', '-n', 'cli')).trim(), 'yes');
    await assert.rejects(kubectl(alice, 'auth', 'can-i', 'delete', 'configmaps', '-n', 'cli'), (err: { code?: number }) => err.code === 1);
    const listing = await kubectl(alice, 'auth', 'can-i', '--list', '-n', 'cli');
    assert.match(listing, /^configmaps\s+\[\]\s+\[\]\s+\[get create\]$/m);
    assert.match(listing, /^\s*\[\/metrics\]\s+\[\]\s+\[get\]$/m);
  });

  test('SubjectAccessReview is for admins; resourceNames and nonResourceURLs match as upstream', async () => {
    const review = (spec: unknown): unknown => ({ apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec });
    const path = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
    assert.equal((await as('alice', 'POST', path, review({ user: 'alice', resourceAttributes: { verb: 'get', resource: 'pods' } }))).status, 403);
    await ok(
      as('admin', 'POST', `${RBAC}/clusterroles`, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'one-secret' },
        rules: [
          { apiGroups: [''], resources: ['secrets'], resourceNames: ['mounted'], verbs: ['get'] },
          { nonResourceURLs: ['/metrics', '/logs/*'], verbs: ['get'] },
        ],
      }),
      201,
    );
    await ok(
      as('admin', 'POST', `${RBAC}/clusterrolebindings`, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'alice-one-secret' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'one-secret' },
        subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
      }),
      201,
    );
    const allowed = async (spec: unknown): Promise<boolean> => (await ok<{ status: { allowed: boolean } }>(as('admin', 'POST', path, review(spec)), 201)).status.allowed;
    assert.equal(await allowed({ user: 'alice', resourceAttributes: { verb: 'get', resource: 'secrets', namespace: 'default', name: 'mounted' } }), true);
    assert.equal(await allowed({ user: 'alice', resourceAttributes: { verb: 'get', resource: 'secrets', namespace: 'default', name: 'unused' } }), false);
    assert.equal(await allowed({ user: 'alice', resourceAttributes: { verb: 'list', resource: 'secrets', namespace: 'default' } }), false, 'resourceNames never match a list');
    assert.equal(await allowed({ user: 'alice', nonResourceAttributes: { verb: 'get', path: '/logs/kubelet.log' } }), true);
    assert.equal(await allowed({ user: 'alice', nonResourceAttributes: { verb: 'get', path: '/metricsx' } }), false);
    assert.equal(await allowed({ user: 'bob', groups: ['system:masters'], resourceAttributes: { verb: 'delete', resource: 'nodes', name: 'n1' } }), true);
    await ok(as('alice', 'GET', '/api/v1/namespaces/default/secrets/mounted'));
    assert.equal((await as('alice', 'GET', '/api/v1/namespaces/default/secrets/unused')).status, 403);
  });

  test('writing roles and bindings cannot grant more than the writer holds', async () => {
    const roles = `${RBAC}/namespaces/team/roles`;
    const bindings = `${RBAC}/namespaces/team/rolebindings`;
    // alice may manage roles and bindings in team, and read pods there, nothing else.
    await ok(
      as('admin', 'POST', roles, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'rbac-manager' },
        rules: [
          { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: ['create', 'get', 'list'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
        ],
      }),
      201,
    );
    await ok(
      as('admin', 'POST', bindings, {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'alice-manages-rbac' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'rbac-manager' },
        subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
      }),
      201,
    );
    const role = (name: string, rules: unknown[]): unknown => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name }, rules });
    await ok(as('alice', 'POST', roles, role('subset', [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }])), 201);
    const escalating = await as<Status>('alice', 'POST', roles, role('more', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]));
    assert.equal(escalating.status, 403, escalating.text);
    assert.match(escalating.body.message ?? '', /attempting to grant RBAC permissions not currently held/);
    assert.equal((await as('alice', 'POST', roles, role('wild', [{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }]))).status, 403);
    const binding = (name: string, roleName: string, kind = 'Role'): unknown => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name: roleName },
      subjects: [{ kind: 'ServiceAccount', name: 'robot' }],
    });
    await ok(as('alice', 'POST', bindings, binding('robot-subset', 'subset')), 201);
    assert.equal((await as('alice', 'POST', bindings, binding('robot-admin', 'cluster-admin', 'ClusterRole'))).status, 403);
    // The admin holds everything and may grant it.
    await ok(as('admin', 'POST', bindings, binding('robot-view', 'view', 'ClusterRole')), 201);
  });

  test('bootstrap roles: aggregated view, cluster-admin for system:masters, bootstrappers may create CSRs', async () => {
    const review = async (user: string, groups: string[], attributes: Record<string, string>): Promise<boolean> =>
      (
        await ok<{ status: { allowed: boolean } }>(
          as('admin', 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, groups, resourceAttributes: attributes } }),
          201,
        )
      ).status.allowed;
    // robot got `view` in team above: its rules come from the roles aggregated into it.
    const robot = 'system:serviceaccount:team:robot';
    assert.equal(await review(robot, [], { verb: 'list', group: 'apps', resource: 'deployments', namespace: 'team' }), true);
    assert.equal(await review(robot, [], { verb: 'get', resource: 'secrets', namespace: 'team', name: 'x' }), false);
    assert.equal(await review(robot, [], { verb: 'delete', resource: 'pods', namespace: 'team', name: 'x' }), false);
    assert.equal(await review('joiner', ['system:bootstrappers', 'system:authenticated'], { verb: 'create', group: 'certificates.k8s.io', resource: 'certificatesigningrequests' }), true);
    assert.equal(await review('joiner', ['system:bootstrappers', 'system:authenticated'], { verb: 'list', resource: 'secrets' }), false);
    assert.equal(await review('system:kube-proxy', [], { verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices' }), true);
    assert.equal(await review('system:kube-proxy', [], { verb: 'get', resource: 'secrets', namespace: 'default', name: 'x' }), false);
    const clusterRoles = await ok<{ items: Array<{ metadata: { name: string } }> }>(as('admin', 'GET', `${RBAC}/clusterroles`));
    for (const name of ['cluster-admin', 'system:discovery', 'system:basic-user', 'system:public-info-viewer', 'system:node', 'system:node-proxier', 'system:kube-scheduler', 'system:kube-controller-manager', 'system:node-bootstrapper']) {
      assert.ok(clusterRoles.items.some((r) => r.metadata.name === name), name);
    }
  });
});
