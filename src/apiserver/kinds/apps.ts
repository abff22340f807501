/**
 * apps/v1 Deployment and ReplicaSet: defaults (SetDefaults_Deployment/ReplicaSet), validation
 * (ValidateDeploymentSpec/ReplicaSetSpec with the pod template validated as a PodSpec) and
 * the apps/v1 rule that a selector never changes after creation.
 *
 * Both track metadata.generation so controllers can report observedGeneration: spec changes
 * bump it, and for Deployments annotation changes do too (upstream bumps on them so that a
 * rollback request carried in an annotation is seen as new work).
 */
import type { KubeObject, LabelSelector } from '../../api/meta.js';
import { FieldPath, forbidden, invalid, notSupported, required, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { isEmptySelector, selectorMatches, validateLabelSelector, validateTemplateMeta } from './meta.js';
import { defaultPodSpec, validatePodSpec } from './pod.js';
import { TypeChecker, asObject, defaultValue, ensureObject, jsonEqual, type JsonObject } from './values.js';

const STRATEGY_TYPES = ['Recreate', 'RollingUpdate'];
const PERCENT = /^[0-9]+%$/;

function specPath(...names: string[]): FieldPath {
  return FieldPath.of('spec', ...names);
}

function nonNegative(spec: JsonObject, key: string, check: TypeChecker): FieldCause[] {
  const value = check.integer(spec[key], specPath(key));
  return value !== undefined && value < 0 ? [invalid(specPath(key), value, 'must be greater than or equal to 0')] : [];
}

/** Template defaults: the pod template is a PodSpec like any pod's. */
function defaultTemplate(spec: JsonObject): void {
  const podSpec = asObject(asObject(spec['template'])?.['spec']);
  if (podSpec) defaultPodSpec(podSpec);
}

/** Selector, replicas and template: what Deployments, ReplicaSets and DaemonSets validate alike. */
function validateWorkload(spec: JsonObject, kind: string, check: TypeChecker, forbidActiveDeadline = 'activeDeadlineSeconds in ReplicaSet is not Supported'): FieldCause[] {
  const causes: FieldCause[] = [...nonNegative(spec, 'replicas', check), ...nonNegative(spec, 'minReadySeconds', check)];

  const selectorValue = spec['selector'];
  let selector: JsonObject | undefined;
  if (selectorValue === undefined || selectorValue === null) causes.push(required(specPath('selector'), ''));
  else {
    const selectorCauses = validateLabelSelector(selectorValue, specPath('selector'));
    causes.push(...selectorCauses);
    selector = asObject(selectorValue);
    if (selector && isEmptySelector(selector)) causes.push(invalid(specPath('selector'), selector, `empty selector is invalid for ${kind}`));
    if (selectorCauses.length > 0) selector = undefined; // an invalid selector matches nothing; say so once
  }

  const templatePath = specPath('template');
  if (spec['template'] === undefined || spec['template'] === null) {
    causes.push(required(templatePath, ''));
    return causes;
  }
  const template = check.object(spec['template'], templatePath);
  if (!template) return causes;
  causes.push(...validateTemplateMeta(template['metadata'], templatePath.child('metadata')));
  const labels = asObject(asObject(template['metadata'])?.['labels']) as Record<string, string> | undefined;
  if (selector && !isEmptySelector(selector) && !selectorMatches(selector as LabelSelector, labels)) {
    causes.push(invalid(templatePath.child('metadata', 'labels'), labels ?? {}, '`selector` does not match template `labels`'));
  }
  causes.push(
    ...validatePodSpec(template['spec'], templatePath.child('spec'), {
      restartPolicies: ['Always'],
      forbidActiveDeadline,
    }),
  );
  return causes;
}

export function selectorImmutable(object: KubeObject, old: KubeObject): FieldCause[] {
  const selector = asObject(object['spec'])?.['selector'];
  const oldSelector = asObject(old['spec'])?.['selector'];
  return jsonEqual(selector, oldSelector) ? [] : [invalid(specPath('selector'), selector ?? null, 'field is immutable')];
}

/** A RollingUpdate parameter: a non-negative integer or a percentage string. */
export function validateIntOrPercent(value: unknown, path: FieldPath): FieldCause[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 ? [] : [invalid(path, value, 'must be greater than or equal to 0')];
  }
  if (typeof value === 'string') {
    if (!PERCENT.test(value)) {
      return [
        invalid(
          path,
          value,
          "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        ),
      ];
    }
    return [];
  }
  return [invalid(path, value, 'must be an integer or a percentage')];
}

function isZero(value: unknown): boolean {
  return value === 0 || value === '0%';
}

function validateStrategy(spec: JsonObject, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const path = specPath('strategy');
  const strategy = check.object(spec['strategy'], path);
  if (!strategy) return causes;
  const type = check.string(strategy['type'], path.child('type'));
  const rolling = check.object(strategy['rollingUpdate'], path.child('rollingUpdate'));
  if (!type) causes.push(required(path.child('type'), ''));
  else if (!STRATEGY_TYPES.includes(type)) causes.push(notSupported(path.child('type'), type, STRATEGY_TYPES));
  if (type === 'Recreate' && rolling) causes.push(forbidden(path.child('rollingUpdate'), "may not be specified when strategy `type` is 'Recreate'"));
  if (type === 'RollingUpdate' && !rolling) causes.push(required(path.child('rollingUpdate'), 'this should be defaulted and never be nil'));
  if (!rolling) return causes;
  const maxUnavailable = rolling['maxUnavailable'];
  const maxSurge = rolling['maxSurge'];
  causes.push(...validateIntOrPercent(maxUnavailable, path.child('rollingUpdate', 'maxUnavailable')));
  causes.push(...validateIntOrPercent(maxSurge, path.child('rollingUpdate', 'maxSurge')));
  if (typeof maxUnavailable === 'string' && PERCENT.test(maxUnavailable) && Number.parseInt(maxUnavailable, 10) > 100) {
    causes.push(invalid(path.child('rollingUpdate', 'maxUnavailable'), maxUnavailable, 'must not be greater than 100%'));
  }
  // With neither extra pods nor missing pods allowed, a rollout could never make progress.
  if (isZero(maxUnavailable) && isZero(maxSurge)) {
    causes.push(invalid(path.child('rollingUpdate', 'maxUnavailable'), maxUnavailable, 'may not be 0 when `maxSurge` is 0'));
  }
  return causes;
}

export class DeploymentStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true, hasStatus: true, tracksGeneration: true });
  }

  override applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    defaultValue(spec, 'replicas', 1);
    const strategy = ensureObject(spec, 'strategy');
    if (strategy) {
      defaultValue(strategy, 'type', 'RollingUpdate');
      if (strategy['type'] === 'RollingUpdate') {
        const rolling = ensureObject(strategy, 'rollingUpdate');
        if (rolling) {
          defaultValue(rolling, 'maxUnavailable', '25%');
          defaultValue(rolling, 'maxSurge', '25%');
        }
      }
    }
    defaultValue(spec, 'revisionHistoryLimit', 10);
    defaultValue(spec, 'progressDeadlineSeconds', 600);
    defaultTemplate(spec);
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    if (object['spec'] === undefined || object['spec'] === null) return [required(FieldPath.of('spec'), '')];
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    if (!spec) return causes;
    causes.push(...validateWorkload(spec, 'deployment', check));
    causes.push(...validateStrategy(spec, check));
    causes.push(...nonNegative(spec, 'revisionHistoryLimit', check));
    const deadline = check.integer(spec['progressDeadlineSeconds'], specPath('progressDeadlineSeconds'));
    const minReady = typeof spec['minReadySeconds'] === 'number' ? spec['minReadySeconds'] : 0;
    if (deadline !== undefined) {
      if (deadline < 0) causes.push(invalid(specPath('progressDeadlineSeconds'), deadline, 'must be greater than or equal to 0'));
      else if (deadline <= minReady) causes.push(invalid(specPath('progressDeadlineSeconds'), deadline, 'must be greater than minReadySeconds'));
    }
    check.boolean(spec['paused'], specPath('paused'));
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    return selectorImmutable(object, old);
  }

  protected override initialStatus(): unknown {
    return {};
  }

  protected override generationChanged(object: KubeObject, old: KubeObject): boolean {
    return !jsonEqual(object['spec'], old['spec']) || !jsonEqual(object.metadata.annotations, old.metadata.annotations);
  }
}

export class ReplicaSetStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true, hasStatus: true, tracksGeneration: true });
  }

  override applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    defaultValue(spec, 'replicas', 1);
    defaultTemplate(spec);
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    if (object['spec'] === undefined || object['spec'] === null) return [required(FieldPath.of('spec'), '')];
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    if (!spec) return causes;
    causes.push(...validateWorkload(spec, 'replicaset', check));
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    return selectorImmutable(object, old);
  }

  protected override initialStatus(): unknown {
    // ReplicaSetStatus.replicas has no omitempty upstream: a new ReplicaSet shows replicas: 0.
    return { replicas: 0 };
  }
}

const DAEMONSET_STRATEGY_TYPES = ['OnDelete', 'RollingUpdate'];

/** ValidateDaemonSetUpdateStrategy: OnDelete, or RollingUpdate with a budget that can make progress. */
function validateDaemonSetUpdateStrategy(spec: JsonObject, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const path = specPath('updateStrategy');
  const strategy = check.object(spec['updateStrategy'], path);
  if (!strategy) return causes;
  const type = check.string(strategy['type'], path.child('type'));
  if (!type) causes.push(required(path.child('type'), ''));
  else if (!DAEMONSET_STRATEGY_TYPES.includes(type)) causes.push(notSupported(path.child('type'), type, DAEMONSET_STRATEGY_TYPES));
  const rolling = check.object(strategy['rollingUpdate'], path.child('rollingUpdate'));
  if (type === 'RollingUpdate' && !rolling) causes.push(required(path.child('rollingUpdate'), ''));
  if (!rolling || type !== 'RollingUpdate') return causes;
  const rollingPath = path.child('rollingUpdate');
  const maxUnavailable = rolling['maxUnavailable'];
  const maxSurge = rolling['maxSurge'];
  causes.push(...validateIntOrPercent(maxUnavailable, rollingPath.child('maxUnavailable')));
  causes.push(...validateIntOrPercent(maxSurge, rollingPath.child('maxSurge')));
  for (const [key, value] of [['maxUnavailable', maxUnavailable], ['maxSurge', maxSurge]] as const) {
    if (typeof value === 'string' && PERCENT.test(value) && Number.parseInt(value, 10) > 100) {
      causes.push(invalid(rollingPath.child(key), value, 'must not be greater than 100%'));
    }
  }
  // A DaemonSet has one pod per node: with no surge and nothing allowed down, nothing moves.
  if (isZero(maxUnavailable ?? 0) && isZero(maxSurge ?? 0)) {
    causes.push(invalid(rollingPath.child('maxUnavailable'), maxUnavailable ?? 0, 'may not be 0 when `maxSurge` is 0'));
  }
  return causes;
}

/**
 * apps/v1 DaemonSet (SetDefaults_DaemonSet, ValidateDaemonSet): a pod template for every
 * eligible node, updated RollingUpdate (one node at a time by default) or OnDelete.
 */
export class DaemonSetStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true, hasStatus: true, tracksGeneration: true });
  }

  override applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    const strategy = ensureObject(spec, 'updateStrategy');
    if (strategy) {
      defaultValue(strategy, 'type', 'RollingUpdate');
      if (strategy['type'] === 'RollingUpdate') {
        const rolling = ensureObject(strategy, 'rollingUpdate');
        if (rolling) {
          defaultValue(rolling, 'maxUnavailable', 1);
          defaultValue(rolling, 'maxSurge', 0);
        }
      }
    }
    defaultValue(spec, 'revisionHistoryLimit', 10);
    defaultTemplate(spec);
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    if (object['spec'] === undefined || object['spec'] === null) return [required(FieldPath.of('spec'), '')];
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    if (!spec) return causes;
    causes.push(...validateWorkload(spec, 'daemonset', check, 'activeDeadlineSeconds in DaemonSet is not Supported'));
    causes.push(...validateDaemonSetUpdateStrategy(spec, check));
    causes.push(...nonNegative(spec, 'revisionHistoryLimit', check));
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    return selectorImmutable(object, old);
  }

  protected override initialStatus(): unknown {
    // The four counters have no omitempty upstream: a new DaemonSet shows them as 0.
    return { currentNumberScheduled: 0, numberMisscheduled: 0, desiredNumberScheduled: 0, numberReady: 0 };
  }
}
