/**
 * authorization.k8s.io/v1 SelfSubjectAccessReview (`kubectl auth can-i`) and
 * SubjectAccessReview (`kubectl auth can-i --as`, webhooks; who may create one is itself an
 * RBAC question: cluster-admin may, system:basic-user may not). Nothing is stored: the answer
 * is the authorizer chain's decision for the attributes in the spec.
 */
import type { PolicyRule } from '../../api/rbac.js';
import type { UserInfo } from '../auth.js';
import { badRequest } from '../status.js';
import type { RequestAttributes } from './attributes.js';
import type { Authorizer } from './authorizer.js';
import { nodeNameOf } from './node.js';
import type { PolicyCache } from './policy-cache.js';
import { rulesFor } from './rbac.js';

export const SELF_SUBJECT_ACCESS_REVIEW_PATH = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews';
export const SUBJECT_ACCESS_REVIEW_PATH = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
export const SELF_SUBJECT_RULES_REVIEW_PATH = '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews';

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function attributesFromSpec(user: UserInfo, spec: Record<string, unknown>): RequestAttributes {
  const resource = spec['resourceAttributes'];
  const nonResource = spec['nonResourceAttributes'];
  if (resource && typeof resource === 'object') {
    const r = resource as Record<string, unknown>;
    return {
      user,
      resource: {
        verb: text(r['verb']),
        apiGroup: text(r['group']),
        resource: text(r['resource']),
        subresource: text(r['subresource']),
        namespace: text(r['namespace']),
        name: text(r['name']),
      },
    };
  }
  if (nonResource && typeof nonResource === 'object') {
    const n = nonResource as Record<string, unknown>;
    return { user, nonResource: { verb: text(n['verb']), path: text(n['path']) } };
  }
  throw badRequest('spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified');
}

/** Answers a review body; `self` reviews are about the caller, others about spec.user/groups. */
export async function reviewAccess(authorizer: Authorizer, caller: UserInfo, body: Record<string, unknown>, self: boolean): Promise<Record<string, unknown>> {
  const spec = (body['spec'] && typeof body['spec'] === 'object' ? body['spec'] : {}) as Record<string, unknown>;
  let subject = caller;
  if (!self) {
    const groups = Array.isArray(spec['groups']) ? spec['groups'].filter((g): g is string => typeof g === 'string') : [];
    if (!text(spec['user']) && groups.length === 0) throw badRequest('spec.user: Invalid value: "": at least one of user or group must be specified');
    subject = { name: text(spec['user']), uid: text(spec['uid']), groups };
  }
  const result = await authorizer.authorize(attributesFromSpec(subject, spec));
  return {
    kind: self ? 'SelfSubjectAccessReview' : 'SubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: { creationTimestamp: null },
    spec,
    status: {
      allowed: result.decision === 'allow',
      ...(result.decision === 'deny' ? { denied: true } : {}),
      ...(result.reason ? { reason: result.reason } : {}),
    },
  };
}

/**
 * SelfSubjectRulesReview (`kubectl auth can-i --list -n ns`): the RBAC rules that apply to
 * the caller there. `incomplete` when another authorizer also decides for them (a node) or
 * RBAC is off, as upstream marks it.
 */
export async function reviewRules(policy: PolicyCache | undefined, caller: UserInfo, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const spec = (body['spec'] && typeof body['spec'] === 'object' ? body['spec'] : {}) as Record<string, unknown>;
  const resourceRules: PolicyRule[] = [];
  const nonResourceRules: PolicyRule[] = [];
  if (policy) {
    for (const [, rules] of rulesFor(await policy.current(), caller, text(spec['namespace']))) {
      for (const rule of rules) {
        if (rule.nonResourceURLs?.length) nonResourceRules.push({ verbs: rule.verbs, nonResourceURLs: rule.nonResourceURLs });
        else resourceRules.push({ verbs: rule.verbs, apiGroups: rule.apiGroups ?? [], resources: rule.resources ?? [], ...(rule.resourceNames?.length ? { resourceNames: rule.resourceNames } : {}) });
      }
    }
  }
  return {
    kind: 'SelfSubjectRulesReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: { creationTimestamp: null },
    spec,
    status: { resourceRules, nonResourceRules, incomplete: !policy || nodeNameOf(caller) !== undefined },
  };
}
