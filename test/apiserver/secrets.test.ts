/** Secret and ServiceAccount rules through the REST API: 422 causes, stringData, the 1 MiB limit, immutability. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/api/meta.js';
import type { Secret } from '../../src/api/serviceaccount.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from './server-harness.js';

const SECRETS = '/api/v1/namespaces/default/secrets';
const b64 = (text: string): string => Buffer.from(text).toString('base64');

function secret(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name }, ...extra };
}

function causesOf(answer: { body: unknown }): { reason?: string; field?: string; message?: string }[] {
  return (answer.body as Status).details?.causes ?? [];
}

describe('Secret', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore());
  });
  after(async () => {
    await api?.close();
  });

  test('stringData is merged into data (winning over data), defaulted to Opaque, and never stored or returned', async () => {
    const created = await api.call<Secret>('POST', SECRETS, secret('merge', { data: { a: b64('from-data'), b: b64('kept') }, stringData: { a: 'from-stringData', c: 'plain' } }));
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.type, 'Opaque');
    assert.equal(created.body.stringData, undefined);
    assert.deepEqual(created.body.data, { a: b64('from-stringData'), b: b64('kept'), c: b64('plain') });
    const read = await api.call<Secret>('GET', `${SECRETS}/merge`);
    assert.equal(read.body.stringData, undefined);
    assert.deepEqual(read.body.data, created.body.data);

    const patched = await api.call<Secret>('PATCH', `${SECRETS}/merge`, { stringData: { d: 'added' } }, { contentType: 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.stringData, undefined);
    assert.equal(patched.body.data?.['d'], b64('added'));
    assert.equal(patched.body.data?.['b'], b64('kept'));
  });

  test('data values must be base64 and keys valid config keys: 422 with a cause per field', async () => {
    const answer = await api.call('POST', SECRETS, secret('bad', { data: { ok: b64('x'), 'not base64': '!!!', '..hidden': b64('y') } }));
    assert.equal(answer.status, 422, answer.text);
    assert.equal((answer.body as Status).reason, 'Invalid');
    const fields = causesOf(answer).map((c) => `${c.reason} ${c.field}`);
    assert.ok(fields.includes('FieldValueInvalid data[not base64]'), fields.join('; '));
    assert.ok(fields.includes('FieldValueInvalid data[..hidden]'), fields.join('; '));
    assert.ok(!fields.some((f) => f.endsWith('data[ok]')));
    // Nothing half-created.
    assert.equal((await api.call('GET', `${SECRETS}/bad`)).status, 404);
  });

  test('the decoded values may total exactly 1 MiB; one byte more is 422 Too long', async () => {
    const mib = 1024 * 1024;
    const exact = await api.call('POST', SECRETS, secret('exact', { data: { a: Buffer.alloc(mib - 10, 1).toString('base64'), b: Buffer.alloc(10, 2).toString('base64') } }));
    assert.equal(exact.status, 201, exact.text.slice(0, 300));
    const over = await api.call('POST', SECRETS, secret('over', { data: { a: Buffer.alloc(mib - 10, 1).toString('base64') }, stringData: { b: 'x'.repeat(11) } }));
    assert.equal(over.status, 422, over.text.slice(0, 300));
    assert.deepEqual(causesOf(over), [{ reason: 'FieldValueTooLong', field: 'data', message: 'Too long: must have at most 1048576 bytes' }]);
    assert.match((over.body as Status).message ?? '', /^Secret "over" is invalid: data: Too long: must have at most 1048576 bytes$/);
    assert.equal((await api.call('GET', `${SECRETS}/over`)).status, 404);
  });

  test('type-specific keys: tls needs tls.crt and tls.key, service-account-token its account annotation, dockerconfigjson JSON', async () => {
    const tls = await api.call('POST', SECRETS, secret('tls', { type: 'kubernetes.io/tls', data: { 'tls.crt': b64('cert') } }));
    assert.equal(tls.status, 422);
    assert.deepEqual(causesOf(tls).map((c) => `${c.reason} ${c.field}`), ['FieldValueRequired data[tls.key]']);

    const token = await api.call('POST', SECRETS, secret('tok', { type: 'kubernetes.io/service-account-token' }));
    assert.equal(token.status, 422);
    assert.deepEqual(causesOf(token).map((c) => `${c.reason} ${c.field}`), ['FieldValueRequired metadata.annotations[kubernetes.io/service-account.name]']);

    const docker = await api.call('POST', SECRETS, secret('reg', { type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': '{not json' } }));
    assert.equal(docker.status, 422);
    assert.deepEqual(causesOf(docker).map((c) => `${c.reason} ${c.field}`), ['FieldValueInvalid data[.dockerconfigjson]']);
    const dockerOk = await api.call('POST', SECRETS, secret('reg', { type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': '{"auths":{}}' } }));
    assert.equal(dockerOk.status, 201, dockerOk.text);
  });

  test('type is immutable; an immutable Secret keeps its data', async () => {
    assert.equal((await api.call('POST', SECRETS, secret('fixed', { data: { a: b64('1') } }))).status, 201);
    const retype = await api.call('PATCH', `${SECRETS}/fixed`, { type: 'example.com/custom' }, { contentType: 'application/merge-patch+json' });
    assert.equal(retype.status, 422);
    assert.deepEqual(causesOf(retype).map((c) => `${c.reason} ${c.field}`), ['FieldValueInvalid type']);

    assert.equal((await api.call('PATCH', `${SECRETS}/fixed`, { immutable: true }, { contentType: 'application/merge-patch+json' })).status, 200);
    const edit = await api.call('PATCH', `${SECRETS}/fixed`, { stringData: { a: '2' } }, { contentType: 'application/merge-patch+json' });
    assert.equal(edit.status, 422);
    assert.deepEqual(causesOf(edit).map((c) => `${c.reason} ${c.field}`), ['FieldValueForbidden data']);
    const read = await api.call<Secret>('GET', `${SECRETS}/fixed`);
    assert.equal(read.body.data?.['a'], b64('1'));
  });

  test('Table columns NAME TYPE DATA AGE', async () => {
    const table = await api.call<{ columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] }>('GET', `${SECRETS}?fieldSelector=metadata.name%3Dmerge`, undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    assert.deepEqual(table.body.columnDefinitions.map((c) => c.name), ['Name', 'Type', 'Data', 'Age']);
    assert.deepEqual(table.body.rows[0]?.cells.slice(0, 3), ['merge', 'Opaque', 4]);
  });
});

describe('ServiceAccount', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore());
  });
  after(async () => {
    await api?.close();
  });

  test('secrets, imagePullSecrets and automountServiceAccountToken are kept; bad shapes are 422', async () => {
    const path = '/api/v1/namespaces/default/serviceaccounts';
    const body = { metadata: { name: 'bot' }, secrets: [{ name: 's1' }], imagePullSecrets: [{ name: 'reg' }], automountServiceAccountToken: false };
    const created = await api.call<Record<string, unknown>>('POST', path, body);
    assert.equal(created.status, 201, created.text);
    assert.deepEqual(created.body['imagePullSecrets'], [{ name: 'reg' }]);
    assert.equal(created.body['automountServiceAccountToken'], false);
    const bad = await api.call('POST', path, { metadata: { name: 'bad' }, automountServiceAccountToken: 'yes', imagePullSecrets: [{ name: 'Not_A_Name' }] });
    assert.equal(bad.status, 422);
    assert.deepEqual(causesOf(bad).map((c) => c.field).sort(), ['automountServiceAccountToken', 'imagePullSecrets[0].name']);
    const table = await api.call<{ columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] }>('GET', path, undefined, {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    assert.deepEqual(table.body.columnDefinitions.map((c) => c.name), ['Name', 'Secrets', 'Age']);
    assert.deepEqual(table.body.rows[0]?.cells.slice(0, 2), ['bot', 1]);
  });
});
