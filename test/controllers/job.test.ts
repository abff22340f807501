import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Job, Pod } from '../../src/api/types.js';
import type { KubeClient } from '../../src/client/client.js';
import { listPods, startControlPlane, waitFor, type ControlPlane } from './harness.js';

function job(name: string, spec: Partial<Job['spec']> = {}, restartPolicy: 'Never' | 'OnFailure' = 'Never'): Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: 'default' },
    spec: {
      template: { spec: { containers: [{ name: 'work', image: 'perl', command: ['perl', '-e', 'print 1'] }], restartPolicy } },
      ...spec,
    },
  };
}

async function jobPods(api: KubeClient, name: string): Promise<Pod[]> {
  return listPods(api, 'default', `batch.kubernetes.io/job-name=${name}`);
}

function running(pods: readonly Pod[]): Pod[] {
  return pods.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
}

/** Plays the kubelet: the pod's one container ran and exited with `exitCode`. */
async function finish(api: KubeClient, pod: Pod, exitCode: number): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await api.update(
    RESOURCE.pods,
    {
      ...pod,
      status: {
        ...pod.status,
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        containerStatuses: [
          {
            name: 'work',
            image: 'perl',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: now, finishedAt: now } },
            lastState: {},
          },
        ],
      },
    },
    'status',
  );
}

async function getJob(api: KubeClient, name: string): Promise<Job> {
  const found = await api.get<Job>(RESOURCE.jobs, name, 'default');
  assert.ok(found, `job ${name} exists`);
  return found;
}

function condition(j: Job, type: string): { status: string; reason?: string } | undefined {
  return j.status?.conditions?.find((c) => c.type === type);
}

describe('Job controller against a real apiserver (the test plays the kubelet)', () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await startControlPlane({ controllers: ['job'], managerOptions: { jobPodFailureBackoffMs: 20 } });
  });
  after(async () => {
    await plane?.close();
  });

  test('completions 3, parallelism 2: never more than 2 running, Complete after 3 successes', async () => {
    await plane.api.create(RESOURCE.jobs, job('three', { completions: 3, parallelism: 2 }));
    let maxRunning = 0;
    let finished = 0;
    await waitFor('3 pods succeeded', async () => {
      const pods = await jobPods(plane.api, 'three');
      const live = running(pods);
      maxRunning = Math.max(maxRunning, live.length);
      // Finish one pod per poll, so the controller has to top the pods up between them.
      const next = live[0];
      if (next && finished < 3) {
        await finish(plane.api, next, 0);
        finished += 1;
      }
      return pods.filter((p) => p.status?.phase === 'Succeeded').length === 3;
    });
    const done = await waitFor('Complete', async () => {
      const j = await getJob(plane.api, 'three');
      return condition(j, 'Complete')?.status === 'True' && j;
    });
    assert.ok(maxRunning <= 2, `at most parallelism pods ran at once (saw ${maxRunning})`);
    assert.equal(condition(done, 'SuccessCriteriaMet')?.status, 'True');
    assert.deepEqual([done.status?.succeeded, done.status?.failed, done.status?.active], [3, 0, 0]);
    assert.ok(done.status?.startTime && done.status.completionTime, 'startTime and completionTime');
    assert.equal((await jobPods(plane.api, 'three')).length, 3, 'no extra pod after completion');
    const pod = (await jobPods(plane.api, 'three'))[0]!;
    assert.equal(pod.metadata.ownerReferences?.[0]?.uid, done.metadata.uid);
    assert.equal(pod.metadata.labels?.['batch.kubernetes.io/controller-uid'], done.metadata.uid);
  });

  test('backoffLimit 1: the second failed pod fails the Job with BackoffLimitExceeded', async () => {
    await plane.api.create(RESOURCE.jobs, job('flaky', { backoffLimit: 1 }));
    const failedUids = new Set<string>();
    await waitFor('2 failed pods', async () => {
      const pods = await jobPods(plane.api, 'flaky');
      for (const pod of running(pods)) {
        await finish(plane.api, pod, 1);
        failedUids.add(pod.metadata.uid ?? '');
      }
      return pods.filter((p) => p.status?.phase === 'Failed').length >= 2;
    });
    const failed = await waitFor('Failed', async () => {
      const j = await getJob(plane.api, 'flaky');
      return condition(j, 'Failed')?.status === 'True' && j;
    });
    assert.equal(condition(failed, 'Failed')?.reason, 'BackoffLimitExceeded');
    assert.equal(condition(failed, 'FailureTarget')?.status, 'True');
    assert.equal(failed.status?.failed, 2);
    assert.equal(condition(failed, 'Complete'), undefined);
    assert.equal(failed.status?.completionTime, undefined, 'a failed Job has no completionTime');
    assert.equal((await jobPods(plane.api, 'flaky')).length, 2, 'no third pod');
  });

  test('OnFailure: container restarts count against backoffLimit and the running pod is removed', async () => {
    await plane.api.create(RESOURCE.jobs, job('restarts', { backoffLimit: 2 }, 'OnFailure'));
    const pod = await waitFor('a pod', async () => running(await jobPods(plane.api, 'restarts'))[0]);
    await plane.api.update(
      RESOURCE.pods,
      {
        ...pod,
        status: {
          phase: 'Running',
          containerStatuses: [{ name: 'work', image: 'perl', imageID: '', ready: false, restartCount: 2, state: { running: {} }, lastState: {} }],
        },
      },
      'status',
    );
    const failed = await waitFor('Failed after restarts', async () => {
      const j = await getJob(plane.api, 'restarts');
      return condition(j, 'Failed')?.status === 'True' && j;
    });
    assert.equal(condition(failed, 'Failed')?.reason, 'BackoffLimitExceeded');
    assert.equal(running(await jobPods(plane.api, 'restarts')).length, 0);
  });

  test('activeDeadlineSeconds fails a Job that runs too long', async () => {
    await plane.api.create(RESOURCE.jobs, job('slow', { activeDeadlineSeconds: 1 }));
    const failed = await waitFor('DeadlineExceeded', async () => {
      const j = await getJob(plane.api, 'slow');
      return condition(j, 'Failed')?.status === 'True' && j;
    });
    assert.equal(condition(failed, 'Failed')?.reason, 'DeadlineExceeded');
    assert.equal(running(await jobPods(plane.api, 'slow')).length, 0);
  });

  test('ttlSecondsAfterFinished 0 deletes the Job once it completes; its pods go with it', async () => {
    await plane.api.create(RESOURCE.jobs, job('ephemeral', { ttlSecondsAfterFinished: 0 }));
    const pod = await waitFor('a pod', async () => running(await jobPods(plane.api, 'ephemeral'))[0]);
    await finish(plane.api, pod, 0);
    await waitFor('job deleted', async () => (await plane.api.get<Job>(RESOURCE.jobs, 'ephemeral', 'default')) === undefined);
    await waitFor('its pod deleted', async () => (await jobPods(plane.api, 'ephemeral')).length === 0);
  });

  test('a work queue Job (parallelism 2, no completions) completes when one pod succeeded and the rest finished', async () => {
    await plane.api.create(RESOURCE.jobs, job('queue', { parallelism: 2 }));
    const pods = await waitFor('2 pods', async () => {
      const live = running(await jobPods(plane.api, 'queue'));
      return live.length === 2 && live;
    });
    const created = await getJob(plane.api, 'queue');
    assert.equal(created.spec.completions, undefined, 'completions stay unset when only parallelism is given');
    await finish(plane.api, pods[0]!, 0);
    // After the first success no replacement starts, and the Job waits for the other pod.
    await waitFor('succeeded counted', async () => (await getJob(plane.api, 'queue')).status?.succeeded === 1);
    assert.equal(condition(await getJob(plane.api, 'queue'), 'Complete'), undefined);
    await finish(plane.api, pods[1]!, 0);
    await waitFor('Complete', async () => condition(await getJob(plane.api, 'queue'), 'Complete')?.status === 'True');
    assert.equal((await jobPods(plane.api, 'queue')).length, 2);
  });
});
