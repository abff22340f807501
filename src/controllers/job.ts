/**
 * Job controller (batch/v1, NonIndexed): runs up to `parallelism` pods until `completions`
 * of them succeed, counts failures against `backoffLimit`, enforces activeDeadlineSeconds,
 * and reports conditions the way Kubernetes 1.32 does: SuccessCriteriaMet then Complete, or
 * FailureTarget then Failed once the Job's remaining pods are gone.
 *
 *   observed = the Job's pods (claimed by the generated controller-uid selector)
 *   desired  = active = min(parallelism, completions − succeeded) (or parallelism until the
 *              first success when completions is unset); none once finished or suspended
 *   apply    = create pods after the failure back-off (base × 2^(failures−1)), delete extras,
 *              write status; ttlSecondsAfterFinished deletes the finished Job
 *
 * Design note: counts come from the pods still present (succeeded/failed never decrease, so a
 * pod garbage-collected after it was counted is not lost). Upstream tracks with a pod
 * finalizer so that a pod deleted before the controller saw it finish still counts; we do not,
 * so a running pod deleted by hand is replaced rather than counted as a failure. The
 * ttl-after-finished controller is folded in here: it needs nothing but the Job itself.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import { matchesLabels } from '../api/selectors.js';
import type { Job, JobCondition, JobConditionType, JobStatus, Pod } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { EventRecorder } from '../client/events.js';
import type { Informer } from '../client/informer.js';
import { exponentialDelayMs } from '../lib/backoff.js';
import { describeError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { claim, controllerKey, ownerSelector } from './claim.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import { Expectations } from './expectations.js';
import { inNamespace, onAnyChange } from './informers.js';
import { controllerRef, controllerReferenceTo, isPodReady, isTerminating, nowTimestamp, setCondition } from '../api/pods.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';
import { podsToDelete } from './replicaset.js';

/** Upstream's DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff. */
export const JOB_POD_FAILURE_BACKOFF_MS = 10_000;
const MAX_JOB_POD_FAILURE_BACKOFF_MS = 10 * 60_000;
const BURST_PODS = 500;

export interface JobControllerOptions {
  /** First delay before replacing a failed pod; doubles with each failure. */
  podFailureBackoffMs?: number;
}

export interface JobCounts {
  active: Pod[];
  succeeded: number;
  failed: number;
  ready: number;
  terminating: number;
  /** Container restarts of running and pending pods (what backoffLimit means under OnFailure). */
  restarts: number;
  /** When the newest failure happened, for the back-off. */
  lastFailureMs?: number;
}

export function countJobPods(pods: readonly Pod[]): JobCounts {
  const counts: JobCounts = { active: [], succeeded: 0, failed: 0, ready: 0, terminating: 0, restarts: 0 };
  for (const pod of pods) {
    const phase = pod.status?.phase;
    if (phase === 'Succeeded') counts.succeeded += 1;
    else if (phase === 'Failed') {
      counts.failed += 1;
      const finished = Math.max(
        0,
        ...(pod.status?.containerStatuses ?? []).map((c) => Date.parse(c.state.terminated?.finishedAt ?? '') || 0),
      );
      if (finished > 0) counts.lastFailureMs = Math.max(counts.lastFailureMs ?? 0, finished);
    } else if (isTerminating(pod)) counts.terminating += 1;
    else {
      counts.active.push(pod);
      if (isPodReady(pod)) counts.ready += 1;
      for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) counts.restarts += status.restartCount;
    }
  }
  return counts;
}

/** The pods a NonIndexed Job wants running (upstream's manageJob). */
export function wantedActive(job: Job, active: number, succeeded: number): number {
  const parallelism = job.spec.parallelism ?? 1;
  if (job.spec.completions === undefined || job.spec.completions === null) return succeeded > 0 ? Math.min(active, parallelism) : parallelism;
  return Math.max(0, Math.min(parallelism, job.spec.completions - succeeded));
}

/** Whether enough pods succeeded: `completions`, or (work queue) one success and nothing left running. */
export function successCriteriaMet(job: Job, counts: Pick<JobCounts, 'succeeded' | 'active'>): boolean {
  if (job.spec.completions === undefined || job.spec.completions === null) return counts.succeeded > 0 && counts.active.length === 0;
  return counts.succeeded >= job.spec.completions;
}

/** Why the Job must fail, or undefined (backoffLimit, restarts under OnFailure, activeDeadlineSeconds). */
export function failureReason(job: Job, counts: JobCounts, startMs: number | undefined, nowMs: number): { reason: string; message: string } | undefined {
  const backoffLimit = job.spec.backoffLimit ?? 6;
  const onFailure = job.spec.template.spec.restartPolicy === 'OnFailure';
  const restartsExceeded = onFailure && (backoffLimit === 0 ? counts.restarts > 0 : counts.restarts >= backoffLimit);
  if (counts.failed > backoffLimit || restartsExceeded) return { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
  const deadline = job.spec.activeDeadlineSeconds;
  if (deadline !== undefined && startMs !== undefined && nowMs - startMs >= deadline * 1000) {
    return { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
  }
  return undefined;
}

function conditionTrue(job: Job, type: JobConditionType): JobCondition | undefined {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

export function jobFinished(job: Job): JobCondition | undefined {
  return conditionTrue(job, 'Complete') ?? conditionTrue(job, 'Failed');
}

export class JobController implements Controller {
  readonly name = 'job';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly jobs: Informer<Job>;
  private readonly pods: Informer<Pod>;
  private readonly expectations = new Expectations();
  private readonly reconciler: Reconciler;
  private readonly backoffBaseMs: number;
  /** Per Job: how many failures we had seen and when the count last grew (pods without a finishedAt). */
  private readonly failuresSeen = new Map<string, { failed: number; atMs: number }>();

  constructor(context: ControllerContext, options: JobControllerOptions = {}) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'job-controller');
    this.backoffBaseMs = options.podFailureBackoffMs ?? JOB_POD_FAILURE_BACKOFF_MS;
    this.jobs = context.informers.informer<Job>(RESOURCE.jobs);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });

    onAnyChange(this.jobs, (job) => this.reconciler.enqueue(objectKey(job.metadata)));
    this.pods.on('add', (pod) => {
      const owner = this.ownerKey(pod);
      if (owner) this.expectations.creationObserved(owner);
      this.enqueueFor(pod);
    });
    this.pods.on('update', (old, pod) => {
      const owner = this.ownerKey(pod);
      if (owner && pod.metadata.deletionTimestamp && !old.metadata.deletionTimestamp) this.expectations.deletionObserved(owner, objectKey(pod.metadata));
      this.enqueueFor(pod);
    });
    this.pods.on('delete', (pod) => {
      const owner = this.ownerKey(pod);
      if (owner) this.expectations.deletionObserved(owner, objectKey(pod.metadata));
      this.enqueueFor(pod);
    });
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  private ownerKey(pod: Pod): string | undefined {
    return controllerKey(pod, 'Job', this.jobs);
  }

  private enqueueFor(pod: Pod): void {
    const owner = this.ownerKey(pod);
    if (owner) {
      this.reconciler.enqueue(owner);
      return;
    }
    if (controllerRef(pod)) return;
    // An orphan: the Jobs whose selector matches may adopt it.
    for (const job of inNamespace(this.jobs, pod.metadata.namespace ?? '')) {
      const selector = ownerSelector(job.spec.selector);
      if (selector && matchesLabels(selector, pod.metadata.labels)) this.reconciler.enqueue(objectKey(job.metadata));
    }
  }

  private async sync(key: string): Promise<SyncResult | void> {
    const cached = this.jobs.get(key);
    if (!cached) {
      this.expectations.delete(key);
      this.failuresSeen.delete(key);
      return;
    }
    const job = structuredClone(cached);
    const nowMs = Date.now();
    const finished = jobFinished(job);
    if (finished) return this.afterFinished(job, finished, nowMs);

    const selector = ownerSelector(job.spec.selector);
    if (!selector) {
      this.log.warn({ job: key }, 'invalid selector; not managing pods');
      return;
    }
    const pods = await claim({
      api: this.api,
      log: this.log,
      owner: job,
      ownerApiVersion: 'batch/v1',
      ownerKind: 'Job',
      selector,
      candidates: inNamespace(this.pods, job.metadata.namespace ?? ''),
      resource: RESOURCE.pods,
    });
    const counts = countJobPods(pods);
    // Counts never go down: a finished pod removed after it was counted stays counted.
    counts.succeeded = Math.max(counts.succeeded, job.status?.succeeded ?? 0);
    counts.failed = Math.max(counts.failed, job.status?.failed ?? 0);

    const status: JobStatus = structuredClone(job.status ?? {});
    const conditions = (status.conditions ??= []);
    const now = nowTimestamp(nowMs);
    const suspended = job.spec.suspend === true;
    if (!suspended && !status.startTime) status.startTime = now;
    const startMs = status.startTime ? Date.parse(status.startTime) : undefined;

    let requeueAfterMs: number | undefined;
    const failureTarget = conditionTrue(job, 'FailureTarget');
    const successTarget = conditionTrue(job, 'SuccessCriteriaMet');
    const failure = failureTarget ? { reason: failureTarget.reason ?? '', message: failureTarget.message ?? '' } : successTarget ? undefined : failureReason(job, counts, startMs, nowMs);
    const succeeded = !failure && (successTarget !== undefined || successCriteriaMet(job, counts));

    if (failure || succeeded || suspended) {
      // Finishing (or suspended): no pod may keep running.
      if (failure) setCondition(conditions, { type: 'FailureTarget', status: 'True', reason: failure.reason, message: failure.message, lastProbeTime: now }, now);
      if (succeeded) setCondition(conditions, { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', lastProbeTime: now }, now);
      if (suspended) setCondition(conditions, { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended', lastProbeTime: now }, now);
      if (counts.active.length > 0 && this.expectations.satisfied(key)) await this.deletePods(job, key, counts.active);
      const gone = counts.active.length === 0 && counts.terminating === 0;
      if (failure && gone) {
        setCondition(conditions, { type: 'Failed', status: 'True', reason: failure.reason, message: failure.message, lastProbeTime: now }, now);
        this.recorder.record(job, 'Warning', failure.reason, failure.message);
      } else if (succeeded && gone) {
        setCondition(conditions, { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', lastProbeTime: now }, now);
        status.completionTime = now;
        this.recorder.record(job, 'Normal', 'Completed', 'Job completed');
      }
    } else {
      const suspendedCondition = conditions.find((c) => c.type === 'Suspended');
      if (suspendedCondition?.status === 'True') setCondition(conditions, { type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'Job resumed', lastProbeTime: now }, now);
      if (this.expectations.satisfied(key)) requeueAfterMs = await this.manage(job, key, counts, nowMs);
      const deadline = job.spec.activeDeadlineSeconds;
      if (deadline !== undefined && startMs !== undefined) {
        const leftMs = startMs + deadline * 1000 - nowMs;
        requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, Math.max(leftMs, 0) + 1);
      }
    }

    status.active = counts.active.length;
    status.succeeded = counts.succeeded;
    status.failed = counts.failed;
    status.ready = counts.ready;
    status.terminating = counts.terminating;
    status.uncountedTerminatedPods = {};
    if (conditions.length === 0) delete status.conditions;
    await this.updateStatus(job, status);
    if (requeueAfterMs !== undefined && Number.isFinite(requeueAfterMs)) return { requeueAfterMs };
  }

  /** Creates or deletes pods toward wantedActive; returns when the failure back-off ends, if it holds creation back. */
  private async manage(job: Job, key: string, counts: JobCounts, nowMs: number): Promise<number | undefined> {
    const want = wantedActive(job, counts.active.length, counts.succeeded);
    const active = counts.active.length;
    if (active > want) {
      await this.deletePods(job, key, podsToDelete(counts.active, active - want));
      return undefined;
    }
    if (active === want) return undefined;
    const waitMs = this.backoffRemaining(key, counts, nowMs);
    if (waitMs > 0) return waitMs;
    const count = Math.min(want - active, BURST_PODS);
    this.expectations.expectCreations(key, count);
    let created = 0;
    try {
      // Doubling batches (slowStartBatch): a template the apiserver refuses fails once.
      for (let batch = 1; created < count; batch *= 2) {
        const size = Math.min(batch, count - created);
        const results = await Promise.allSettled(Array.from({ length: size }, () => this.createPod(job)));
        created += size;
        for (const r of results) if (r.status === 'rejected') this.expectations.creationObserved(key);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      }
    } finally {
      for (let i = created; i < count; i++) this.expectations.creationObserved(key);
    }
    return undefined;
  }

  /** Milliseconds until a replacement may start: base × 2^(failures−1) after the newest failure. */
  private backoffRemaining(key: string, counts: JobCounts, nowMs: number): number {
    if (counts.failed === 0) return 0;
    const seen = this.failuresSeen.get(key);
    if (!seen || seen.failed !== counts.failed) this.failuresSeen.set(key, { failed: counts.failed, atMs: nowMs });
    const lastFailureMs = counts.lastFailureMs ?? this.failuresSeen.get(key)!.atMs;
    const delayMs = exponentialDelayMs(this.backoffBaseMs, MAX_JOB_POD_FAILURE_BACKOFF_MS, counts.failed - 1);
    return Math.max(0, lastFailureMs + delayMs - nowMs);
  }

  private async createPod(job: Job): Promise<void> {
    const template = job.spec.template;
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: `${job.metadata.name}-`,
        namespace: job.metadata.namespace,
        labels: { ...template.metadata?.labels },
        ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
        ownerReferences: [controllerReferenceTo(job, 'batch/v1', 'Job')],
      },
      spec: structuredClone(template.spec),
    };
    try {
      const created = await this.api.create(RESOURCE.pods, pod);
      this.recorder.record(job, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`);
    } catch (err) {
      this.recorder.record(job, 'Warning', 'FailedCreate', `Error creating: ${describeError(err)}`);
      throw err;
    }
  }

  private async deletePods(job: Job, key: string, pods: readonly Pod[]): Promise<void> {
    this.expectations.expectDeletions(key, pods.map((pod) => objectKey(pod.metadata)));
    const results = await Promise.allSettled(
      pods.map(async (pod) => {
        try {
          await this.api.delete(RESOURCE.pods, pod.metadata.name ?? '', pod.metadata.namespace, { preconditions: { uid: pod.metadata.uid } });
          this.recorder.record(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`);
        } catch (err) {
          this.expectations.deletionObserved(key, objectKey(pod.metadata));
          if (!isNotFound(err)) throw err;
        }
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** ttlSecondsAfterFinished: the finished Job (and, by cascade, its pods) goes after the TTL. */
  private async afterFinished(job: Job, finished: JobCondition, nowMs: number): Promise<SyncResult | void> {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (ttl === undefined || job.metadata.deletionTimestamp) return;
    const finishedMs = Date.parse(job.status?.completionTime ?? finished.lastTransitionTime ?? '') || nowMs;
    const leftMs = finishedMs + ttl * 1000 - nowMs;
    if (leftMs > 0) return { requeueAfterMs: leftMs + 1 };
    try {
      await this.api.delete(RESOURCE.jobs, job.metadata.name ?? '', job.metadata.namespace, {
        propagationPolicy: 'Background',
        preconditions: { uid: job.metadata.uid },
      });
      this.log.info({ job: objectKey(job.metadata) }, 'deleted finished job after ttlSecondsAfterFinished');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async updateStatus(job: Job, status: JobStatus): Promise<void> {
    if (JSON.stringify(job.status ?? {}) === JSON.stringify(status)) return;
    try {
      await this.api.update(RESOURCE.jobs, { ...job, status }, 'status');
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }
}
