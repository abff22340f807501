/**
 * DaemonSet and Job through the HTTP API: defaults as upstream's SetDefaults_*, validation as
 * 422 Invalid Status with field causes (and nothing stored), immutable fields, discovery,
 * Tables; and boolean query parameters parsed like Go's strconv.ParseBool.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/api/meta.js';
import type { Table } from '../../src/api/table.js';
import type { DaemonSet, Job } from '../../src/api/types.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { pod, startTestApi, type TestApi } from './server-harness.js';
import { WatchStream } from './watch-stream.js';

const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const DS_PATH = '/apis/apps/v1/namespaces/default/daemonsets';
const JOB_PATH = '/apis/batch/v1/namespaces/default/jobs';

/** The docs' DaemonSet (fluentd-elasticsearch), with a busybox command as pods here are processes. */
function fluentd(name = 'fluentd-elasticsearch'): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: 'default', labels: { 'k8s-app': 'fluentd-logging' } },
    spec: {
      selector: { matchLabels: { name } },
      template: {
        metadata: { labels: { name } },
        spec: {
          tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }],
          containers: [{ name: 'fluentd-elasticsearch', image: 'busybox', command: ['sleep', '3600'] }],
          terminationGracePeriodSeconds: 30,
        },
      },
    },
  };
}

/** The docs' pi Job. */
function pi(name = 'pi', restartPolicy: string | null = 'Never'): Record<string, unknown> {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: {
      template: {
        spec: {
          containers: [{ name: 'pi', image: 'perl:5.34.0', command: ['perl', '-Mbignum=bpi', '-wle', 'print bpi(2000)'] }],
          ...(restartPolicy ? { restartPolicy } : {}),
        },
      },
      backoffLimit: 4,
    },
  };
}

function causes(status: Status): string[] {
  return (status.details?.causes ?? []).map((c) => `${c.field} ${c.reason}`).sort();
}

describe('DaemonSet and Job kinds over HTTP', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore());
  });
  after(async () => {
    await api?.close();
  });

  test('discovery: daemonsets (ds, all, status) in apps/v1; jobs (all, status) in batch/v1', async () => {
    const apps = await api.call<{ resources: { name: string; shortNames?: string[]; categories?: string[]; namespaced: boolean; kind: string }[] }>('GET', '/apis/apps/v1');
    const ds = apps.body.resources.find((r) => r.name === 'daemonsets');
    assert.deepEqual([ds?.kind, ds?.namespaced, ds?.shortNames, ds?.categories], ['DaemonSet', true, ['ds'], ['all']]);
    assert.ok(apps.body.resources.some((r) => r.name === 'daemonsets/status'));
    const batch = await api.call<{ resources: { name: string; kind: string; categories?: string[] }[] }>('GET', '/apis/batch/v1');
    assert.equal(batch.status, 200);
    assert.deepEqual(batch.body.resources.find((r) => r.name === 'jobs')?.categories, ['all']);
    assert.ok(batch.body.resources.some((r) => r.name === 'jobs/status'));
    const groups = await api.call<{ groups: { name: string }[] }>('GET', '/apis');
    assert.ok(groups.body.groups.some((g) => g.name === 'batch'));
  });

  test('a DaemonSet gets upstream defaults and zero counters', async () => {
    const answer = await api.call<DaemonSet>('POST', DS_PATH, fluentd());
    assert.equal(answer.status, 201, answer.text);
    const ds = answer.body;
    assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    assert.equal(ds.spec.revisionHistoryLimit, 10);
    assert.equal(ds.spec.template.spec.restartPolicy, 'Always');
    assert.equal(ds.spec.template.spec.dnsPolicy, 'ClusterFirst');
    assert.equal(ds.metadata.generation, 1);
    assert.deepEqual(ds.status, { currentNumberScheduled: 0, numberMisscheduled: 0, desiredNumberScheduled: 0, numberReady: 0 });
  });

  test('an invalid DaemonSet is 422 Invalid with a cause per field, and nothing is stored', async () => {
    const bad = fluentd('bad-ds');
    const spec = bad['spec'] as { selector: unknown; template: { spec: Record<string, unknown> }; updateStrategy?: unknown };
    spec.selector = { matchLabels: { name: 'other' } };
    spec.template.spec['restartPolicy'] = 'Never';
    spec.template.spec['activeDeadlineSeconds'] = 10;
    spec.updateStrategy = { type: 'Sideways' };
    const answer = await api.call<Status>('POST', DS_PATH, bad);
    assert.equal(answer.status, 422);
    assert.equal(answer.body.reason, 'Invalid');
    assert.deepEqual(answer.body.details?.kind, 'DaemonSet');
    assert.deepEqual(causes(answer.body), [
      'spec.template.metadata.labels FieldValueInvalid',
      'spec.template.spec.activeDeadlineSeconds FieldValueForbidden',
      'spec.template.spec.restartPolicy FieldValueNotSupported',
      'spec.updateStrategy.type FieldValueNotSupported',
    ]);
    assert.equal((await api.call('GET', `${DS_PATH}/bad-ds`)).status, 404);

    const stuck = fluentd('stuck');
    (stuck['spec'] as Record<string, unknown>)['updateStrategy'] = { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 0 } };
    const zero = await api.call<Status>('POST', DS_PATH, stuck);
    assert.equal(zero.status, 422);
    assert.deepEqual(causes(zero.body), ['spec.updateStrategy.rollingUpdate.maxUnavailable FieldValueInvalid']);
  });

  test('a DaemonSet selector is immutable; a template change bumps the generation', async () => {
    const current = (await api.call<DaemonSet>('GET', `${DS_PATH}/fluentd-elasticsearch`)).body;
    const moved = structuredClone(current);
    moved.spec.selector = { matchLabels: { name: 'fluentd-elasticsearch', extra: 'x' } };
    moved.spec.template.metadata = { labels: { name: 'fluentd-elasticsearch', extra: 'x' } };
    const refused = await api.call<Status>('PUT', `${DS_PATH}/fluentd-elasticsearch`, moved);
    assert.equal(refused.status, 422);
    assert.deepEqual(causes(refused.body), ['spec.selector FieldValueInvalid']);
    const newer = structuredClone(current);
    newer.spec.template.spec.containers[0]!.image = 'busybox:2';
    const accepted = await api.call<DaemonSet>('PUT', `${DS_PATH}/fluentd-elasticsearch`, newer);
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal(accepted.body.metadata.generation, 2);
  });

  test('the pi Job gets defaults and a selector generated from its uid', async () => {
    const answer = await api.call<Job>('POST', JOB_PATH, pi());
    assert.equal(answer.status, 201, answer.text);
    const job = answer.body;
    const uid = job.metadata.uid ?? '';
    assert.ok(uid);
    assert.deepEqual(
      [job.spec.completions, job.spec.parallelism, job.spec.backoffLimit, job.spec.completionMode, job.spec.manualSelector, job.spec.suspend, job.spec.podReplacementPolicy],
      [1, 1, 4, 'NonIndexed', false, false, 'TerminatingOrFailed'],
    );
    assert.deepEqual(job.spec.selector, { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } });
    assert.deepEqual(job.spec.template.metadata?.labels, {
      'batch.kubernetes.io/controller-uid': uid,
      'batch.kubernetes.io/job-name': 'pi',
      'controller-uid': uid,
      'job-name': 'pi',
    });
    // Without backoffLimit the default is 6.
    const plain = pi('pi-default');
    delete (plain['spec'] as Record<string, unknown>)['backoffLimit'];
    assert.equal((await api.call<Job>('POST', JOB_PATH, plain)).body.spec.backoffLimit, 6);
  });

  test('a Job whose pods would restart forever, or with a hand-written selector that does not match, is refused', async () => {
    const always = await api.call<Status>('POST', JOB_PATH, pi('always', null));
    assert.equal(always.status, 422);
    assert.deepEqual(causes(always.body), ['spec.template.spec.restartPolicy FieldValueNotSupported']);
    assert.match(always.body.message ?? '', /Unsupported value: "Always"/);

    const manual = pi('manual');
    Object.assign(manual['spec'] as Record<string, unknown>, { manualSelector: true, selector: { matchLabels: { app: 'x' } } });
    const mismatch = await api.call<Status>('POST', JOB_PATH, manual);
    assert.equal(mismatch.status, 422);
    assert.deepEqual(causes(mismatch.body), ['spec.template.metadata.labels FieldValueInvalid']);

    const negative = pi('negative');
    Object.assign(negative['spec'] as Record<string, unknown>, { parallelism: -1, backoffLimit: -2 });
    const refused = await api.call<Status>('POST', JOB_PATH, negative);
    assert.deepEqual(causes(refused.body), ['spec.backoffLimit FieldValueInvalid', 'spec.parallelism FieldValueInvalid']);
    assert.equal((await api.call('GET', `${JOB_PATH}/negative`)).status, 404);
  });

  test('a Job template and completions are immutable; parallelism may change', async () => {
    const job = (await api.call<Job>('GET', `${JOB_PATH}/pi`)).body;
    const changed = structuredClone(job);
    changed.spec.template.spec.containers[0]!.image = 'perl:5.36';
    changed.spec.completions = 2;
    const refused = await api.call<Status>('PUT', `${JOB_PATH}/pi`, changed);
    assert.equal(refused.status, 422);
    assert.deepEqual(causes(refused.body), ['spec.completions FieldValueInvalid', 'spec.template FieldValueInvalid']);
    const scaled = structuredClone(job);
    scaled.spec.parallelism = 3;
    const accepted = await api.call<Job>('PUT', `${JOB_PATH}/pi`, scaled);
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal(accepted.body.spec.parallelism, 3);
  });

  test('Tables: kubectl get ds and get jobs columns', async () => {
    const ds = await api.call<Table>('GET', DS_PATH, undefined, { accept: TABLE });
    assert.deepEqual(
      ds.body.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name),
      ['Name', 'Desired', 'Current', 'Ready', 'Up-to-date', 'Available', 'Node Selector', 'Age'],
    );
    const row = ds.body.rows.find((r) => r.cells[0] === 'fluentd-elasticsearch');
    assert.deepEqual(row?.cells.slice(1, 7), [0, 0, 0, 0, 0, '<none>']);
    const jobs = await api.call<Table>('GET', JOB_PATH, undefined, { accept: TABLE });
    assert.deepEqual(
      jobs.body.columnDefinitions.filter((c) => c.priority === 0).map((c) => c.name),
      ['Name', 'Status', 'Completions', 'Duration', 'Age'],
    );
    const piRow = jobs.body.rows.find((r) => r.cells[0] === 'pi');
    assert.deepEqual(piRow?.cells.slice(1, 4), ['Running', '0/1', '']);
  });
});

describe('boolean query parameters (strconv.ParseBool)', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore());
    await api.call('POST', '/api/v1/namespaces/default/pods', pod('b-1'));
  });
  after(async () => {
    await api?.close();
  });

  for (const word of ['1', 't', 'T', 'TRUE', 'true', 'True']) {
    test(`watch=${word} streams events`, async () => {
      const stream = new WatchStream(api.url, `/api/v1/namespaces/default/pods?watch=${word}&allowWatchBookmarks=${word}`);
      try {
        const [first] = await stream.waitFor(1);
        assert.equal(first?.type, 'ADDED');
        assert.equal((first?.object as { metadata: { name: string } }).metadata.name, 'b-1');
      } finally {
        stream.close();
      }
    });
  }

  for (const word of ['0', 'f', 'F', 'FALSE', 'false', 'False', '']) {
    test(`watch=${JSON.stringify(word)} is a plain list`, async () => {
      const answer = await api.call<{ kind: string }>('GET', `/api/v1/namespaces/default/pods?watch=${word}`);
      assert.equal(answer.status, 200);
      assert.equal(answer.body.kind, 'PodList');
    });
  }

  for (const [name, value] of [['watch', 'yes'], ['watch', 'TrUe'], ['allowWatchBookmarks', 'on'], ['sendInitialEvents', '2']] as const) {
    test(`${name}=${value} is 400 BadRequest naming the parameter`, async () => {
      const answer = await api.call<Status>('GET', `/api/v1/namespaces/default/pods?watch=true&${name}=${value}`);
      assert.equal(answer.status, 400);
      assert.equal(answer.body.kind, 'Status');
      assert.equal(answer.body.reason, 'BadRequest');
      assert.match(answer.body.message ?? '', new RegExp(name));
    });
  }
});
