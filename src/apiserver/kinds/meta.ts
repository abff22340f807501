/**
 * ObjectMeta and LabelSelector validation shared by every kind (upstream's
 * apimachinery/pkg/api/validation ValidateObjectMeta and metav1validation).
 */
import type { LabelSelector, ObjectMeta } from '../../api/meta.js';
import { labelKeyErrors, labelSelectorFromObject, labelValueErrors, matchesLabels } from '../../api/selectors.js';
import { FieldPath, forbidden, invalid, invalidEach, notSupported, required, tooLong, type FieldCause } from './field.js';
import { dns1123LabelErrors, nameIsDnsSubdomain, type NameValidator } from './names.js';
import { TypeChecker, asObject, jsonEqual, type JsonObject } from './values.js';

/** Upstream's cap on the total size of all annotations of one object. */
export const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 256 * 1024;

/** Label keys and values (also node selectors and Service selectors). */
export function validateLabels(labels: Record<string, string>, path: FieldPath): FieldCause[] {
  const causes: FieldCause[] = [];
  for (const [key, value] of Object.entries(labels)) {
    causes.push(...invalidEach(path, key, labelKeyErrors(key)));
    causes.push(...invalidEach(path, value, labelValueErrors(value)));
  }
  return causes;
}

export function validateAnnotations(annotations: Record<string, string>, path: FieldPath): FieldCause[] {
  const causes: FieldCause[] = [];
  let totalBytes = 0;
  for (const [key, value] of Object.entries(annotations)) {
    // Keys are checked lower-cased, as upstream does: annotation keys may carry capitals.
    causes.push(...invalidEach(path, key, labelKeyErrors(key.toLowerCase())));
    totalBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (totalBytes > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES) causes.push(tooLong(path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES));
  return causes;
}

function validateOwnerReferences(value: unknown, path: FieldPath, check: TypeChecker): FieldCause[] {
  const causes: FieldCause[] = [];
  const controllers: string[] = [];
  for (const [i, reference] of check.objects(value, path)) {
    const at = path.index(i);
    for (const key of ['apiVersion', 'kind', 'name', 'uid']) {
      const text = check.string(reference[key], at.child(key));
      if (!text) causes.push(required(at.child(key), ''));
    }
    if (reference['controller'] === true) controllers.push(`${String(reference['kind'])}/${String(reference['name'])}`);
  }
  if (controllers.length > 1) {
    causes.push(
      invalid(path, value, `Only one reference can have Controller set to true. Found "true" in references for ${controllers.join(' and ')}`),
    );
  }
  return causes;
}

/**
 * The metadata every object carries. `nameValidator` is the kind's name rule (DNS subdomain
 * unless the kind says otherwise); `namespaced` says whether `metadata.namespace` is required
 * or forbidden.
 */
export function validateMeta(
  meta: ObjectMeta | undefined,
  namespaced: boolean,
  nameValidator: NameValidator = nameIsDnsSubdomain,
  path: FieldPath = FieldPath.of('metadata'),
): FieldCause[] {
  const causes: FieldCause[] = [];
  const check = new TypeChecker(causes);
  const object = asObject(meta);
  if (!object) return [required(path, '')];
  const name = check.string(object['name'], path.child('name')) ?? '';
  const generateName = check.string(object['generateName'], path.child('generateName')) ?? '';
  if (generateName) causes.push(...invalidEach(path.child('generateName'), generateName, nameValidator(generateName, true)));
  if (name) causes.push(...invalidEach(path.child('name'), name, nameValidator(name, false)));
  else if (!generateName) causes.push(required(path.child('name'), 'name or generateName is required'));

  const namespace = check.string(object['namespace'], path.child('namespace')) ?? '';
  if (namespaced) {
    if (!namespace) causes.push(required(path.child('namespace'), ''));
    else causes.push(...invalidEach(path.child('namespace'), namespace, dns1123LabelErrors(namespace)));
  } else if (namespace) {
    causes.push(forbidden(path.child('namespace'), 'not allowed on this type'));
  }

  const generation = check.integer(object['generation'], path.child('generation'));
  if (generation !== undefined && generation < 0) causes.push(invalid(path.child('generation'), generation, 'must be greater than or equal to 0'));
  causes.push(...validateLabels(check.stringMap(object['labels'], path.child('labels')), path.child('labels')));
  causes.push(...validateAnnotations(check.stringMap(object['annotations'], path.child('annotations')), path.child('annotations')));
  causes.push(...validateOwnerReferences(object['ownerReferences'], path.child('ownerReferences'), check));
  for (const finalizer of check.strings(object['finalizers'], path.child('finalizers'))) {
    causes.push(...invalidEach(path.child('finalizers'), finalizer, labelKeyErrors(finalizer)));
  }
  return causes;
}

/** Labels and annotations of a pod template's metadata (its name is never used). */
export function validateTemplateMeta(meta: unknown, path: FieldPath): FieldCause[] {
  const causes: FieldCause[] = [];
  const check = new TypeChecker(causes);
  const object = check.object(meta, path);
  if (!object) return causes;
  causes.push(...validateLabels(check.stringMap(object['labels'], path.child('labels')), path.child('labels')));
  causes.push(...validateAnnotations(check.stringMap(object['annotations'], path.child('annotations')), path.child('annotations')));
  return causes;
}

function immutable(value: unknown, old: unknown, path: FieldPath): FieldCause[] {
  return jsonEqual(value, old) ? [] : [invalid(path, value, 'field is immutable')];
}

/** What no update may change, whatever the kind (upstream's ValidateObjectMetaUpdate). */
export function validateMetaUpdate(meta: ObjectMeta, old: ObjectMeta, path: FieldPath = FieldPath.of('metadata')): FieldCause[] {
  const causes: FieldCause[] = [
    ...immutable(meta.name, old.name, path.child('name')),
    ...immutable(meta.namespace ?? '', old.namespace ?? '', path.child('namespace')),
  ];
  if (old.uid && meta.uid) causes.push(...immutable(meta.uid, old.uid, path.child('uid')));
  if (old.creationTimestamp && meta.creationTimestamp) {
    causes.push(...immutable(meta.creationTimestamp, old.creationTimestamp, path.child('creationTimestamp')));
  }
  if (old.deletionTimestamp) {
    const before = new Set(old.finalizers ?? []);
    const added = (Array.isArray(meta.finalizers) ? meta.finalizers : []).filter((f) => !before.has(f));
    if (added.length > 0) {
      causes.push(
        forbidden(path.child('finalizers'), `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`),
      );
    }
  }
  return causes;
}

const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** A LabelSelector object (Deployment/ReplicaSet spec.selector). */
export function validateLabelSelector(selector: unknown, path: FieldPath): FieldCause[] {
  const causes: FieldCause[] = [];
  const check = new TypeChecker(causes);
  const object = check.object(selector, path);
  if (!object) return causes;
  causes.push(...validateLabels(check.stringMap(object['matchLabels'], path.child('matchLabels')), path.child('matchLabels')));
  for (const [i, expression] of check.objects(object['matchExpressions'], path.child('matchExpressions'))) {
    const at = path.child('matchExpressions').index(i);
    const operator = check.string(expression['operator'], at.child('operator'));
    const values = check.strings(expression['values'], at.child('values'));
    if (operator === 'In' || operator === 'NotIn') {
      if (values.length === 0) causes.push(required(at.child('values'), "must be specified when `operator` is 'In' or 'NotIn'"));
    } else if (operator === 'Exists' || operator === 'DoesNotExist') {
      if (values.length > 0) causes.push(forbidden(at.child('values'), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
    } else if (operator === undefined) {
      causes.push(required(at.child('operator'), ''));
    } else {
      causes.push(notSupported(at.child('operator'), operator, SELECTOR_OPERATORS));
    }
    const key = check.string(expression['key'], at.child('key')) ?? '';
    causes.push(...invalidEach(at.child('key'), key, labelKeyErrors(key)));
    for (const [j, value] of values.entries()) causes.push(...invalidEach(at.child('values').index(j), value, labelValueErrors(value)));
  }
  return causes;
}

/** True when a LabelSelector object has neither matchLabels nor matchExpressions. */
export function isEmptySelector(selector: JsonObject): boolean {
  const labels = asObject(selector['matchLabels']);
  const expressions = selector['matchExpressions'];
  return (!labels || Object.keys(labels).length === 0) && (!Array.isArray(expressions) || expressions.length === 0);
}

/** Whether `labels` satisfy a (valid) LabelSelector object; an invalid one matches nothing. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  try {
    return matchesLabels(labelSelectorFromObject(selector), labels);
  } catch {
    return false;
  }
}
