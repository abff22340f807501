/**
 * Deployment controller: one ReplicaSet per pod template (named `<deployment>-<hash>`, labelled
 * and selected by `pod-template-hash`), rolled from old to new by the strategy, and a status
 * that sums the sets.
 *
 *   desired  = the new set (template == spec.template) at spec.replicas, old sets at 0, moved
 *              there within the maxSurge/maxUnavailable fence (RollingUpdate) or by stopping
 *              every old pod before starting new ones (Recreate)
 *   observed = the ReplicaSets the Deployment controls (adopting matching orphans) and, for
 *              Recreate, their pods
 *   apply    = create the new set, scale sets (each step returns and waits for the ReplicaSet
 *              informer, like upstream, so every decision is made on fresh availability),
 *              delete old empty sets beyond revisionHistoryLimit, write status
 *
 * Design note: the new set's name comes from the template hash, so a sync that runs before
 * the informer shows a set we just created gets AlreadyExists and picks up the existing set
 * rather than making a second one. An existing set with that name whose template differs is a
 * hash collision: status.collisionCount goes up and the next sync hashes differently.
 * Paused deployments only scale.
 */
import { objectKey } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import { matchesLabels } from '../api/selectors.js';
import type { Deployment, DeploymentCondition, DeploymentStatus, Pod, ReplicaSet } from '../api/types.js';
import { isAlreadyExists, isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import type { Logger } from '../lib/log.js';
import { claim, controllerKey, ownerSelector } from './claim.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import {
  byCreation,
  canonicalJson,
  computeDeploymentStatus,
  computeTemplateHash,
  DESIRED_REPLICAS_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  newReplicaSetReplicas,
  POD_TEMPLATE_HASH_LABEL,
  planRollingStep,
  proportionalScale,
  resolveFenceposts,
  REVISION_ANNOTATION,
  revisionOf,
  rolloutComplete,
  specReplicas,
  templatesEqualIgnoringHash,
  type ScaleStep,
} from './deployment-util.js';
import type { EventRecorder } from '../client/events.js';
import { inNamespace, onAnyChange } from './informers.js';
import { controllerRef, controllerReferenceTo, nowTimestamp } from '../api/pods.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

const DEFAULT_REVISION_HISTORY_LIMIT = 10;
const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;

export class DeploymentController implements Controller {
  readonly name = 'deployment';
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly deployments: Informer<Deployment>;
  private readonly replicaSets: Informer<ReplicaSet>;
  private readonly pods: Informer<Pod>;
  private readonly reconciler: Reconciler;

  constructor(context: ControllerContext) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'deployment-controller');
    this.deployments = context.informers.informer<Deployment>(RESOURCE.deployments);
    this.replicaSets = context.informers.informer<ReplicaSet>(RESOURCE.replicasets);
    this.pods = context.informers.informer<Pod>(RESOURCE.pods);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log, workers: 2 });

    onAnyChange(this.deployments, (d) => this.reconciler.enqueue(objectKey(d.metadata)));
    this.replicaSets.on('add', (rs) => this.replicaSetChanged(rs));
    this.replicaSets.on('update', (old, rs) => {
      this.replicaSetChanged(rs);
      if (controllerRef(old)?.uid !== controllerRef(rs)?.uid) this.replicaSetChanged(old);
    });
    this.replicaSets.on('delete', (rs) => this.replicaSetChanged(rs));
    // Recreate waits for old pods to be gone.
    this.pods.on('delete', (pod) => this.podDeleted(pod));
  }

  async start(): Promise<void> {
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  private ownerKey(rs: ReplicaSet): string | undefined {
    return controllerKey(rs, 'Deployment', this.deployments);
  }

  private replicaSetChanged(rs: ReplicaSet): void {
    const owner = this.ownerKey(rs);
    if (owner) {
      this.reconciler.enqueue(owner);
      return;
    }
    if (controllerRef(rs)) return;
    for (const d of inNamespace(this.deployments, rs.metadata.namespace ?? '')) {
      const selector = ownerSelector(d.spec.selector);
      if (selector && matchesLabels(selector, rs.metadata.labels)) this.reconciler.enqueue(objectKey(d.metadata));
    }
  }

  private podDeleted(pod: Pod): void {
    const ref = controllerRef(pod);
    if (!ref || ref.kind !== 'ReplicaSet') return;
    const rs = this.replicaSets.get(`${pod.metadata.namespace}/${ref.name}`);
    if (!rs) return;
    const owner = this.ownerKey(rs);
    if (owner && this.deployments.get(owner)?.spec.strategy?.type === 'Recreate') this.reconciler.enqueue(owner);
  }

  // ---- sync -------------------------------------------------------------------------------

  private async sync(key: string): Promise<SyncResult | void> {
    const cached = this.deployments.get(key);
    if (!cached) return;
    const d = structuredClone(cached);
    const selector = ownerSelector(d.spec.selector);
    if (!selector) {
      this.log.warn({ deployment: key }, 'empty or invalid selector; not managing replica sets');
      return;
    }
    const namespace = d.metadata.namespace ?? '';
    const sets = await claim({
      api: this.api,
      log: this.log,
      owner: d,
      ownerApiVersion: 'apps/v1',
      ownerKind: 'Deployment',
      selector,
      candidates: inNamespace(this.replicaSets, namespace),
      resource: RESOURCE.replicasets,
    });
    if (d.metadata.deletionTimestamp) {
      await this.syncStatus(d, sets, this.findNewSet(d, sets), false);
      return;
    }
    if (d.spec.paused) {
      const newSet = this.findNewSet(d, sets);
      if (this.isScalingEvent(d, sets)) await this.scale(d, newSet, sets);
      else await this.syncStatus(d, sets, newSet, false);
      return;
    }
    if (this.isScalingEvent(d, sets)) {
      const { newSet, allSets } = await this.getAllSets(d, sets, false);
      await this.scale(d, newSet, allSets);
      return;
    }
    return d.spec.strategy?.type === 'Recreate' ? this.rolloutRecreate(d, sets) : this.rolloutRolling(d, sets);
  }

  /** The set whose template is the Deployment's (oldest if several), or the one named by the hash. */
  private findNewSet(d: Deployment, sets: readonly ReplicaSet[]): ReplicaSet | undefined {
    const sorted = [...sets].sort(byCreation);
    const equal = sorted.find((rs) => templatesEqualIgnoringHash(rs.spec.template, d.spec.template));
    if (equal) return equal;
    // The apiserver may default the two templates differently; the hash name still identifies ours.
    const hash = computeTemplateHash(d.spec.template, collisionCountOf(d));
    return sorted.find((rs) => rs.metadata.name === `${d.metadata.name}-${hash}` && rs.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash);
  }

  /** Sets with replicas > 0, or the new/latest one: the scaling-event test and scale() target. */
  private isScalingEvent(d: Deployment, sets: readonly ReplicaSet[]): boolean {
    const replicas = d.spec.replicas ?? 1;
    for (const rs of sets) {
      if (specReplicas(rs) === 0) continue;
      const desired = rs.metadata.annotations?.[DESIRED_REPLICAS_ANNOTATION];
      if (desired !== undefined && Number(desired) !== replicas) return true;
    }
    return false;
  }

  /**
   * The new set (created when `create` and missing, revision bumped when an old template comes
   * back) and all sets including it. Keeps the Deployment's revision annotation in step.
   */
  private async getAllSets(d: Deployment, sets: ReplicaSet[], create: boolean): Promise<{ newSet: ReplicaSet | undefined; allSets: ReplicaSet[] }> {
    let newSet = this.findNewSet(d, sets);
    const oldSets = sets.filter((rs) => rs !== newSet);
    const newRevision = String(Math.max(0, ...oldSets.map(revisionOf)) + 1);
    if (newSet) {
      if (revisionOf(newSet) < Number(newRevision) || newSet.metadata.annotations?.[DESIRED_REPLICAS_ANNOTATION] === undefined) {
        const updated = structuredClone(newSet);
        updated.metadata.annotations = {
          ...updated.metadata.annotations,
          [REVISION_ANNOTATION]: revisionOf(newSet) < Number(newRevision) ? newRevision : String(revisionOf(newSet)),
          ...this.replicaAnnotations(d),
        };
        newSet = await this.api.update(RESOURCE.replicasets, updated);
      }
    } else if (create) {
      newSet = await this.createNewSet(d, sets, newRevision);
    }
    if (newSet) await this.setDeploymentRevision(d, String(revisionOf(newSet)));
    const allSets = newSet ? [newSet, ...oldSets] : oldSets;
    return { newSet, allSets };
  }

  private replicaAnnotations(d: Deployment): Record<string, string> {
    const replicas = d.spec.replicas ?? 1;
    return {
      [DESIRED_REPLICAS_ANNOTATION]: String(replicas),
      [MAX_REPLICAS_ANNOTATION]: String(replicas + resolveFenceposts(d).maxSurge),
    };
  }

  private async createNewSet(d: Deployment, sets: readonly ReplicaSet[], revision: string): Promise<ReplicaSet | undefined> {
    const collisionCount = collisionCountOf(d);
    const hash = computeTemplateHash(d.spec.template, collisionCount);
    const template = structuredClone(d.spec.template);
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, [POD_TEMPLATE_HASH_LABEL]: hash } };
    const name = `${d.metadata.name}-${hash}`;
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name,
        namespace: d.metadata.namespace,
        labels: { ...template.metadata.labels },
        annotations: { ...d.metadata.annotations, [REVISION_ANNOTATION]: revision, ...this.replicaAnnotations(d) },
        ownerReferences: [controllerReferenceTo(d, 'apps/v1', 'Deployment')],
      },
      spec: {
        replicas: 0,
        minReadySeconds: d.spec.minReadySeconds ?? 0,
        selector: {
          ...structuredClone(d.spec.selector),
          matchLabels: { ...d.spec.selector.matchLabels, [POD_TEMPLATE_HASH_LABEL]: hash },
        },
        template,
      },
    };
    // Annotations the user put on the Deployment for kubectl are not the set's.
    delete rs.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'];
    rs.spec.replicas = newReplicaSetReplicas(d, sets, undefined);
    try {
      const created = await this.api.create(RESOURCE.replicasets, rs);
      this.recorder.record(d, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${name} from 0 to ${rs.spec.replicas}`);
      await this.setProgressing(d, 'True', 'NewReplicaSetCreated', `Created new replica set "${name}"`);
      return created;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    const existing = await this.api.get<ReplicaSet>(RESOURCE.replicasets, name, d.metadata.namespace);
    if (!existing) return undefined; // deleted meanwhile: the next sync creates it
    const ours = controllerRef(existing)?.uid === d.metadata.uid;
    if (ours && (templatesEqualIgnoringHash(existing.spec.template, d.spec.template) || existing.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash)) {
      return existing; // our own create, not yet in the informer
    }
    // A hash collision: bump collisionCount so the next sync picks another name.
    const status = { ...d.status, collisionCount: (collisionCount ?? 0) + 1 };
    await this.api.update(RESOURCE.deployments, { ...d, status }, 'status');
    this.log.info({ deployment: objectKey(d.metadata), name }, 'replica set name collision; bumped collisionCount');
    return undefined;
  }

  private async setDeploymentRevision(d: Deployment, revision: string): Promise<void> {
    if (d.metadata.annotations?.[REVISION_ANNOTATION] === revision) return;
    const updated = await this.api.patch<Deployment>(
      RESOURCE.deployments,
      d.metadata.name ?? '',
      d.metadata.namespace,
      { metadata: { annotations: { [REVISION_ANNOTATION]: revision } } },
      'merge',
    );
    d.metadata = updated.metadata;
  }

  /** Sets one set's size and the replica annotations; true when anything was written. */
  private async scaleSet(d: Deployment, rs: ReplicaSet, replicas: number): Promise<ReplicaSet> {
    const annotations = this.replicaAnnotations(d);
    const sizeChanged = specReplicas(rs) !== replicas;
    const annotationsChanged = Object.entries(annotations).some(([k, v]) => rs.metadata.annotations?.[k] !== v);
    if (!sizeChanged && !annotationsChanged) return rs;
    const updated = structuredClone(rs);
    updated.spec.replicas = replicas;
    updated.metadata.annotations = { ...updated.metadata.annotations, ...annotations };
    const written = await this.api.update(RESOURCE.replicasets, updated);
    if (sizeChanged) {
      const direction = replicas > specReplicas(rs) ? 'up' : 'down';
      this.recorder.record(d, 'Normal', 'ScalingReplicaSet', `Scaled ${direction} replica set ${rs.metadata.name} from ${specReplicas(rs)} to ${replicas}`);
    }
    return written;
  }

  private async applySteps(d: Deployment, steps: readonly ScaleStep[]): Promise<boolean> {
    let scaled = false;
    for (const step of steps) {
      if (specReplicas(step.set) === step.replicas) continue;
      await this.scaleSet(d, step.set, step.replicas);
      scaled = true;
    }
    return scaled;
  }

  /** spec.replicas changed: resize the active sets (proportionally in mid-rollout). */
  private async scale(d: Deployment, newSet: ReplicaSet | undefined, allSets: ReplicaSet[]): Promise<void> {
    const replicas = d.spec.replicas ?? 1;
    const active = allSets.filter((rs) => specReplicas(rs) > 0);
    if (active.length <= 1) {
      const target = active[0] ?? newSet ?? [...allSets].sort(byCreation).at(-1);
      if (target) await this.scaleSet(d, target, replicas);
    } else if (newSet && specReplicas(newSet) === replicas && (newSet.status?.availableReplicas ?? 0) >= replicas) {
      // The new set is saturated: what is old can go.
      for (const rs of allSets) if (rs !== newSet && specReplicas(rs) > 0) await this.scaleSet(d, rs, 0);
    } else if (d.spec.strategy?.type !== 'Recreate') {
      for (const [rs, size] of proportionalScale(d, active)) await this.scaleSet(d, rs, size);
    }
    await this.syncStatus(d, allSets, newSet, false);
  }

  private async rolloutRolling(d: Deployment, sets: ReplicaSet[]): Promise<SyncResult | void> {
    const { newSet, allSets } = await this.getAllSets(d, sets, true);
    if (!newSet) return { requeueAfterMs: 100 };
    const oldSets = allSets.filter((rs) => rs !== newSet);
    // One kind of step per sync; the next sync decides on fresh ReplicaSet status.
    if (await this.applySteps(d, planRollingStep(d, newSet, oldSets))) return this.syncStatus(d, allSets, newSet, true);
    const status = computeDeploymentStatus(d, allSets, newSet);
    if (rolloutComplete(d, status)) await this.cleanup(d, oldSets);
    return this.syncStatus(d, allSets, newSet, false);
  }

  private async rolloutRecreate(d: Deployment, sets: ReplicaSet[]): Promise<SyncResult | void> {
    let { newSet, allSets } = await this.getAllSets(d, sets, false);
    const oldSets = allSets.filter((rs) => rs !== newSet);
    const activeOld = oldSets.filter((rs) => specReplicas(rs) > 0);
    if (activeOld.length > 0) {
      for (const rs of activeOld) await this.scaleSet(d, rs, 0);
      return this.syncStatus(d, allSets, newSet, true);
    }
    if (this.oldPodsRunning(d, oldSets)) return this.syncStatus(d, allSets, newSet, false);
    if (!newSet) {
      ({ newSet, allSets } = await this.getAllSets(d, sets, true));
      if (!newSet) return { requeueAfterMs: 100 };
    }
    const replicas = d.spec.replicas ?? 1;
    if (specReplicas(newSet) !== replicas) {
      const written = await this.scaleSet(d, newSet, replicas);
      return this.syncStatus(d, allSets.map((rs) => (rs === newSet ? written : rs)), written, true);
    }
    const status = computeDeploymentStatus(d, allSets, newSet);
    if (rolloutComplete(d, status)) await this.cleanup(d, oldSets);
    return this.syncStatus(d, allSets, newSet, false);
  }

  /** Any pod of an old set that has not finished (terminating ones included). */
  private oldPodsRunning(d: Deployment, oldSets: readonly ReplicaSet[]): boolean {
    if (oldSets.some((rs) => (rs.status?.replicas ?? 0) > 0)) return true;
    const oldUids = new Set(oldSets.map((rs) => rs.metadata.uid));
    return inNamespace(this.pods, d.metadata.namespace ?? '').some((pod) => {
      const ref = controllerRef(pod);
      return ref !== undefined && oldUids.has(ref.uid) && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';
    });
  }

  /** Deletes the oldest empty old sets beyond revisionHistoryLimit. */
  private async cleanup(d: Deployment, oldSets: readonly ReplicaSet[]): Promise<void> {
    const limit = d.spec.revisionHistoryLimit ?? DEFAULT_REVISION_HISTORY_LIMIT;
    const empty = oldSets
      .filter((rs) => specReplicas(rs) === 0 && (rs.status?.replicas ?? 0) === 0 && !rs.metadata.deletionTimestamp)
      .sort(byCreation);
    for (const rs of empty.slice(0, Math.max(0, empty.length - limit))) {
      try {
        await this.api.delete(RESOURCE.replicasets, rs.metadata.name ?? '', rs.metadata.namespace, {
          propagationPolicy: 'Background',
          preconditions: { uid: rs.metadata.uid },
        });
        this.log.info({ deployment: objectKey(d.metadata), replicaSet: rs.metadata.name }, 'deleted old replica set');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  private async setProgressing(d: Deployment, status: 'True' | 'False', reason: string, message: string): Promise<void> {
    const next = structuredClone(d.status ?? {});
    const conditions = (next.conditions ??= []);
    if (!upsertDeploymentCondition(conditions, { type: 'Progressing', status, reason, message }, nowTimestamp())) return;
    try {
      const written = await this.api.update(RESOURCE.deployments, { ...d, status: next }, 'status');
      d.status = written.status;
      d.metadata.resourceVersion = written.metadata.resourceVersion;
    } catch (err) {
      // Advice only; the rollout itself goes on. The next status sync rewrites it.
      this.log.debug({ deployment: objectKey(d.metadata), err: String(err) }, 'could not record Progressing condition');
    }
  }

  /**
   * Writes status with Available/Progressing conditions. `progressed` says this sync moved the
   * rollout (a create or scale), which renews the progress deadline.
   */
  private async syncStatus(d: Deployment, allSets: readonly ReplicaSet[], newSet: ReplicaSet | undefined, progressed: boolean): Promise<SyncResult | void> {
    const summary = computeDeploymentStatus(d, allSets, newSet);
    const status: DeploymentStatus = { ...d.status, ...summary };
    const conditions = structuredClone(d.status?.conditions ?? []);
    const now = nowTimestamp();
    const replicas = d.spec.replicas ?? 1;
    const { maxUnavailable } = resolveFenceposts(d);
    if ((summary.availableReplicas ?? 0) >= replicas - maxUnavailable) {
      upsertDeploymentCondition(conditions, { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.' }, now);
    } else {
      upsertDeploymentCondition(conditions, { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' }, now);
    }

    let requeueAfterMs: number | undefined;
    const complete = rolloutComplete(d, summary);
    const progressing = conditions.find((c) => c.type === 'Progressing');
    const deadlineSeconds = d.spec.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS;
    const setName = newSet?.metadata.name ?? '';
    const moved =
      progressed ||
      summary.updatedReplicas !== d.status?.updatedReplicas ||
      summary.availableReplicas !== d.status?.availableReplicas ||
      summary.readyReplicas !== d.status?.readyReplicas ||
      summary.replicas !== d.status?.replicas;
    if (d.spec.paused) {
      upsertDeploymentCondition(conditions, { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused', message: 'Deployment is paused' }, now);
    } else if (complete && newSet) {
      upsertDeploymentCondition(conditions, { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${setName}" has successfully progressed.` }, now);
    } else if (moved || !progressing || progressing.reason === 'DeploymentPaused' || progressing.reason === 'NewReplicaSetAvailable') {
      upsertDeploymentCondition(conditions, { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `ReplicaSet "${setName}" is progressing.` }, now, true);
      requeueAfterMs = deadlineSeconds * 1000;
    } else if (progressing.reason !== 'ProgressDeadlineExceeded') {
      const since = Date.parse(progressing.lastUpdateTime ?? progressing.lastTransitionTime ?? '') || Date.now();
      const left = since + deadlineSeconds * 1000 - Date.now();
      if (left <= 0) {
        upsertDeploymentCondition(conditions, { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "${setName}" has timed out progressing.` }, now);
      } else {
        requeueAfterMs = left + 1;
      }
    }
    status.conditions = conditions;
    if (canonicalJson(status) !== canonicalJson(d.status ?? {})) {
      try {
        await this.api.update(RESOURCE.deployments, { ...d, status }, 'status');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }
}

/** status.collisionCount (apps/v1; not in the shared DeploymentStatus type). */
function collisionCountOf(d: Deployment): number | undefined {
  const count = (d.status as { collisionCount?: unknown } | undefined)?.collisionCount;
  return typeof count === 'number' ? count : undefined;
}

/**
 * Sets a Deployment condition. lastTransitionTime moves when status changes; lastUpdateTime
 * whenever anything changes, or always with `touch` (progress renews the deadline).
 */
function upsertDeploymentCondition(conditions: DeploymentCondition[], wanted: DeploymentCondition, now: string, touch = false): boolean {
  const index = conditions.findIndex((c) => c.type === wanted.type);
  const current = index >= 0 ? conditions[index] : undefined;
  const same = current && current.status === wanted.status && current.reason === wanted.reason && current.message === wanted.message;
  if (same && !touch) return false;
  if (same && touch && current.lastUpdateTime === now) return false;
  const next: DeploymentCondition = {
    ...wanted,
    lastUpdateTime: now,
    lastTransitionTime: current && current.status === wanted.status ? current.lastTransitionTime ?? now : now,
  };
  if (index >= 0) conditions[index] = next;
  else conditions.push(next);
  return true;
}
