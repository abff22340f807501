/**
 * CertificateSigningRequest (certificates.k8s.io/v1), with upstream's rules
 * (pkg/registry/certificates/certificates/strategy.go, pkg/apis/certificates/validation).
 *
 * Three ways to write one, each owning its part, as upstream:
 * - the object (create, PUT, PATCH): spec is fixed at create, where the requester's identity
 *   is stamped into spec.username/uid/groups from the authenticated user (stampRequester),
 *   never taken from the client; later main updates change metadata only;
 * - `/approval`: only the Approved and Denied conditions (what `kubectl certificate approve`
 *   PUTs); once set they cannot be taken back;
 * - `/status`: the certificate and the other conditions (what a signer writes), never the
 *   approval, and the certificate only once and only after approval.
 */
import type { KubeObject } from '../../api/meta.js';
import { KNOWN_USAGES, pemBlocks, type CertificateSigningRequest, type CsrCondition } from '../../api/certificates.js';
import type { UserInfo } from '../user-info.js';
import { duplicate, FieldPath, forbidden, invalid, notSupported, required, type FieldCause } from './field.js';
import { copyField, GenericStrategy } from './generic.js';
import { asObject, jsonEqual, TypeChecker } from './values.js';

const APPROVAL_TYPES = new Set(['Approved', 'Denied']);
const CONDITION_STATUSES = ['True', 'False', 'Unknown'];
/** Upstream's minimum for spec.expirationSeconds (10 minutes). */
const MIN_EXPIRATION_SECONDS = 600;
/** `<fully qualified domain>/<path>` (upstream's signerName format). */
const SIGNER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+\/[A-Za-z0-9._~%!$&'()*+,;=:@/-]+$/;

/** Upstream's PrepareForCreate: the requester is who sent the request, whatever the body says. */
export function stampRequester(body: Record<string, unknown>, user: UserInfo): void {
  const spec = asObject(body['spec']);
  if (!spec) return;
  spec['username'] = user.name;
  spec['groups'] = [...user.groups];
  if (user.uid) spec['uid'] = user.uid;
  else delete spec['uid'];
  delete spec['extra'];
}

function conditionsOf(object: KubeObject): CsrCondition[] {
  const status = asObject(object['status']);
  return Array.isArray(status?.['conditions']) ? (status['conditions'] as CsrCondition[]) : [];
}

function setConditions(object: KubeObject, conditions: CsrCondition[]): void {
  const status = { ...(asObject(object['status']) ?? {}) };
  if (conditions.length > 0) status['conditions'] = conditions;
  else delete status['conditions'];
  if (Object.keys(status).length > 0) object['status'] = status;
  else delete object['status'];
}

/** Fills the timestamps of conditions new or changed since `old` (upstream does this server-side). */
function stampConditionTimes(object: KubeObject, old: KubeObject | undefined): void {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const before = old ? conditionsOf(old) : [];
  const conditions = conditionsOf(object).map((condition) => {
    const previous = before.find((c) => c.type === condition.type);
    const next = { ...condition };
    if (!next.lastUpdateTime) next.lastUpdateTime = previous && jsonEqual({ ...previous, lastUpdateTime: undefined }, { ...next, lastUpdateTime: undefined }) ? (previous.lastUpdateTime ?? now) : now;
    if (!next.lastTransitionTime) next.lastTransitionTime = previous && previous.status === next.status ? (previous.lastTransitionTime ?? now) : now;
    return next;
  });
  if (conditions.length > 0) setConditions(object, conditions);
}

export class CertificateSigningRequestStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: false, hasStatus: true });
  }

  protected override initialStatus(): unknown {
    return undefined;
  }

  override prepareForUpdate(object: KubeObject, old: KubeObject): void {
    super.prepareForUpdate(object, old);
    copyField(object, old, 'spec');
  }

  override prepareForStatusUpdate(object: KubeObject, old: KubeObject): void {
    super.prepareForStatusUpdate(object, old);
    const kept = conditionsOf(old).filter((c) => APPROVAL_TYPES.has(c.type));
    setConditions(object, [...kept, ...conditionsOf(object).filter((c) => !APPROVAL_TYPES.has(c.type))]);
    stampConditionTimes(object, old);
  }

  /** `/approval`: everything from old but the Approved/Denied conditions. */
  prepareForApprovalUpdate(object: KubeObject, old: KubeObject): void {
    const sent = conditionsOf(object).filter((c) => APPROVAL_TYPES.has(c.type));
    const resourceVersion = object.metadata.resourceVersion;
    for (const key of Object.keys(object)) delete object[key];
    Object.assign(object, structuredClone(old));
    if (resourceVersion === undefined) delete object.metadata.resourceVersion;
    else object.metadata.resourceVersion = resourceVersion;
    setConditions(object, [...sent, ...conditionsOf(old).filter((c) => !APPROVAL_TYPES.has(c.type))]);
    stampConditionTimes(object, old);
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const specPath = FieldPath.of('spec');
    const spec = check.object(object['spec'], specPath);
    if (!spec) {
      causes.push(required(specPath));
      return causes;
    }
    const request = check.string(spec['request'], specPath.child('request'));
    if (!request) causes.push(required(specPath.child('request')));
    else {
      const pem = Buffer.from(request, 'base64').toString('utf8');
      const blocks = pemBlocks(pem, 'CERTIFICATE REQUEST');
      if (!blocks || blocks.length !== 1) causes.push(invalid(specPath.child('request'), '<request redacted>', 'must contain exactly one PEM block of type "CERTIFICATE REQUEST"'));
    }
    const signer = check.string(spec['signerName'], specPath.child('signerName'));
    if (!signer) causes.push(required(specPath.child('signerName')));
    else if (!SIGNER_NAME.test(signer)) causes.push(invalid(specPath.child('signerName'), signer, 'must be a fully qualified domain and path of the form \'example.com/signer-name\''));
    const expiration = check.integer(spec['expirationSeconds'], specPath.child('expirationSeconds'));
    if (expiration !== undefined && expiration < MIN_EXPIRATION_SECONDS) causes.push(invalid(specPath.child('expirationSeconds'), expiration, `may not specify a duration less than ${MIN_EXPIRATION_SECONDS} seconds`));
    const usagesPath = specPath.child('usages');
    const usages = check.strings(spec['usages'], usagesPath);
    if (spec['usages'] === undefined || usages.length === 0) causes.push(required(usagesPath));
    usages.forEach((usage, i) => {
      if (!(KNOWN_USAGES as readonly string[]).includes(usage)) causes.push(notSupported(usagesPath.index(i), usage, KNOWN_USAGES));
    });
    check.string(spec['username'], specPath.child('username'));
    check.strings(spec['groups'], specPath.child('groups'));

    const statusPath = FieldPath.of('status');
    const status = check.object(object['status'], statusPath);
    const conditionsPath = statusPath.child('conditions');
    const seen = new Set<string>();
    for (const [i, condition] of check.objects(status?.['conditions'], conditionsPath)) {
      const at = conditionsPath.index(i);
      const type = check.string(condition['type'], at.child('type'));
      if (!type) causes.push(required(at.child('type')));
      else if (APPROVAL_TYPES.has(type) || type === 'Failed') {
        if (seen.has(type)) causes.push(duplicate(at.child('type'), type));
        seen.add(type);
      }
      const conditionStatus = check.string(condition['status'], at.child('status'));
      if (!conditionStatus) causes.push(required(at.child('status')));
      else if (!CONDITION_STATUSES.includes(conditionStatus)) causes.push(notSupported(at.child('status'), conditionStatus, CONDITION_STATUSES));
      else if (APPROVAL_TYPES.has(type ?? '') && conditionStatus !== 'True') causes.push(notSupported(at.child('status'), conditionStatus, ['True']));
    }
    if (seen.has('Approved') && seen.has('Denied')) causes.push(invalid(conditionsPath, 'Approved,Denied', 'Approved and Denied conditions are mutually exclusive'));
    const certificate = check.string(status?.['certificate'], statusPath.child('certificate'));
    if (certificate !== undefined && certificate !== '') {
      const blocks = pemBlocks(Buffer.from(certificate, 'base64').toString('utf8'), 'CERTIFICATE');
      if (!blocks || blocks.length === 0) causes.push(invalid(statusPath.child('certificate'), '<certificate data>', 'must contain at least one CERTIFICATE PEM block'));
      if (!seen.has('Approved')) causes.push(forbidden(statusPath.child('certificate'), 'may only be set when the request is approved'));
    }
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    if (!jsonEqual(object['spec'], old['spec'])) causes.push(invalid(FieldPath.of('spec'), '<spec>', 'field is immutable'));
    const now = conditionsOf(object);
    for (const condition of conditionsOf(old)) {
      if (APPROVAL_TYPES.has(condition.type) && !now.some((c) => c.type === condition.type && c.status === condition.status)) {
        causes.push(forbidden(FieldPath.of('status', 'conditions'), `updates may not remove a condition of type "${condition.type}"`));
      }
    }
    const oldCertificate = (old as CertificateSigningRequest).status?.certificate;
    if (oldCertificate && (object as CertificateSigningRequest).status?.certificate !== oldCertificate) {
      causes.push(invalid(FieldPath.of('status', 'certificate'), '<certificate data>', 'updates may not modify existing certificate content'));
    }
    return causes;
  }
}
