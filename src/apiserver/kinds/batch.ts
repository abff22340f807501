/**
 * batch/v1 Job: defaults (SetDefaults_Job), the generated selector (upstream's
 * generateSelector) and validation (ValidateJob, ValidateJobSpecUpdate).
 *
 * Design note: the selector is generated in `validate`, as upstream's jobStrategy.Validate
 * does, because only then does the object carry its uid: the selector is
 * `batch.kubernetes.io/controller-uid=<uid>`, unique to this Job, so a new Job of the same
 * name never adopts the old one's pods. Generation is idempotent (it fills only what is
 * missing), so the same code on update leaves a stored Job unchanged.
 */
import type { KubeObject, LabelSelector } from '../../api/meta.js';
import { selectorImmutable } from './apps.js';
import { FieldPath, invalid, notSupported, required, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { isEmptySelector, selectorMatches, validateLabelSelector, validateTemplateMeta } from './meta.js';
import { defaultPodSpec, validatePodSpec } from './pod.js';
import { TypeChecker, asObject, defaultValue, ensureObject, jsonEqual, type JsonObject } from './values.js';

export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
export const LEGACY_JOB_NAME_LABEL = 'job-name';
export const CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';
export const LEGACY_CONTROLLER_UID_LABEL = 'controller-uid';

/** Upstream's default backoffLimit: a Job is Failed after its 7th failed pod. */
export const DEFAULT_BACKOFF_LIMIT = 6;

/** Only NonIndexed is implemented: accepting Indexed would run it wrong (no completion indexes). */
const COMPLETION_MODES = ['NonIndexed'];
const JOB_RESTART_POLICIES = ['OnFailure', 'Never'];
const POD_REPLACEMENT_POLICIES = ['TerminatingOrFailed', 'Failed'];

function specPath(...names: string[]): FieldPath {
  return FieldPath.of('spec', ...names);
}

function nonNegative(spec: JsonObject, key: string, check: TypeChecker): FieldCause[] {
  const value = check.integer(spec[key], specPath(key));
  return value !== undefined && value < 0 ? [invalid(specPath(key), value, 'must be greater than or equal to 0')] : [];
}

/** generateSelector: job-name and controller-uid labels on the template, a selector on the uid. */
function generateSelector(object: KubeObject, spec: JsonObject): void {
  const template = ensureObject(spec, 'template');
  const metadata = template && ensureObject(template, 'metadata');
  const labels = metadata && ensureObject(metadata, 'labels');
  if (!labels) return;
  const name = object.metadata.name ?? '';
  const uid = object.metadata.uid ?? '';
  // A label the user set is kept; a conflict with the selector is then a validation error.
  defaultValue(labels, LEGACY_JOB_NAME_LABEL, name);
  defaultValue(labels, JOB_NAME_LABEL, name);
  defaultValue(labels, LEGACY_CONTROLLER_UID_LABEL, uid);
  defaultValue(labels, CONTROLLER_UID_LABEL, uid);
  const selector = ensureObject(spec, 'selector');
  const matchLabels = selector && ensureObject(selector, 'matchLabels');
  if (matchLabels) defaultValue(matchLabels, CONTROLLER_UID_LABEL, uid);
}

/** ValidateGeneratedSelector: with manualSelector false the selector must be the generated one. */
function validateGeneratedSelector(object: KubeObject, spec: JsonObject): FieldCause[] {
  const uid = object.metadata.uid ?? '';
  const causes: FieldCause[] = [];
  const labels = asObject(asObject(asObject(spec['template'])?.['metadata'])?.['labels']) ?? {};
  const labelsPath = specPath('template', 'metadata', 'labels');
  for (const key of [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL]) {
    if (labels[key] !== uid) causes.push(invalid(labelsPath, labels, `\`selector\` not auto-generated: ${key} must be ${uid}`));
  }
  const matchLabels = asObject(asObject(spec['selector'])?.['matchLabels']) ?? {};
  if (matchLabels[CONTROLLER_UID_LABEL] !== uid) {
    causes.push(invalid(specPath('selector'), spec['selector'] ?? null, '`selector` not auto-generated'));
  }
  return causes;
}

function validateJobSpec(spec: JsonObject, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  for (const key of ['parallelism', 'completions', 'activeDeadlineSeconds', 'backoffLimit', 'ttlSecondsAfterFinished']) {
    causes.push(...nonNegative(spec, key, check));
  }
  const deadline = spec['activeDeadlineSeconds'];
  if (deadline === 0) causes.push(invalid(specPath('activeDeadlineSeconds'), 0, 'must be greater than 0'));
  check.boolean(spec['manualSelector'], specPath('manualSelector'));
  check.boolean(spec['suspend'], specPath('suspend'));
  const mode = check.string(spec['completionMode'], specPath('completionMode'));
  if (mode !== undefined && !COMPLETION_MODES.includes(mode)) causes.push(notSupported(specPath('completionMode'), mode, COMPLETION_MODES));
  const replacement = check.string(spec['podReplacementPolicy'], specPath('podReplacementPolicy'));
  if (replacement !== undefined && !POD_REPLACEMENT_POLICIES.includes(replacement)) {
    causes.push(notSupported(specPath('podReplacementPolicy'), replacement, POD_REPLACEMENT_POLICIES));
  }

  let selector: JsonObject | undefined;
  if (spec['selector'] === undefined || spec['selector'] === null) causes.push(required(specPath('selector'), ''));
  else {
    const selectorCauses = validateLabelSelector(spec['selector'], specPath('selector'));
    causes.push(...selectorCauses);
    selector = asObject(spec['selector']);
    if (selector && isEmptySelector(selector)) causes.push(invalid(specPath('selector'), selector, 'empty selector is invalid for job'));
    if (selectorCauses.length > 0) selector = undefined;
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
  causes.push(...validatePodSpec(template['spec'], templatePath.child('spec'), { restartPolicies: JOB_RESTART_POLICIES }));
  return causes;
}

function immutable(spec: JsonObject, oldSpec: JsonObject, key: string): FieldCause[] {
  return jsonEqual(spec[key], oldSpec[key]) ? [] : [invalid(specPath(key), spec[key] ?? null, 'field is immutable')];
}

export class JobStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: true, hasStatus: true, tracksGeneration: true });
  }

  override applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    // Neither set: one pod to one success. Only parallelism set: a work queue (completions stay unset).
    if ((spec['completions'] === undefined || spec['completions'] === null) && (spec['parallelism'] === undefined || spec['parallelism'] === null)) {
      spec['completions'] = 1;
    }
    defaultValue(spec, 'parallelism', 1);
    defaultValue(spec, 'backoffLimit', DEFAULT_BACKOFF_LIMIT);
    defaultValue(spec, 'completionMode', 'NonIndexed');
    defaultValue(spec, 'suspend', false);
    defaultValue(spec, 'podReplacementPolicy', 'TerminatingOrFailed');
    defaultValue(spec, 'manualSelector', false);
    const podSpec = asObject(asObject(spec['template'])?.['spec']);
    if (podSpec) defaultPodSpec(podSpec);
  }

  override validate(object: KubeObject): FieldCause[] {
    const spec = asObject(object['spec']);
    if (spec && spec['manualSelector'] !== true) generateSelector(object, spec);
    return super.validate(object);
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    if (object['spec'] === undefined || object['spec'] === null) return [required(FieldPath.of('spec'), '')];
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    if (!spec) return causes;
    causes.push(...validateJobSpec(spec, check));
    if (spec['manualSelector'] !== true) causes.push(...validateGeneratedSelector(object, spec));
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    const spec = asObject(object['spec']);
    const oldSpec = asObject(old['spec']);
    if (!spec || !oldSpec) return [];
    return [
      ...selectorImmutable(object, old),
      ...immutable(spec, oldSpec, 'template'),
      ...immutable(spec, oldSpec, 'completions'),
      ...immutable(spec, oldSpec, 'completionMode'),
      ...immutable(spec, oldSpec, 'manualSelector'),
    ];
  }

  protected override initialStatus(): unknown {
    return {};
  }
}
