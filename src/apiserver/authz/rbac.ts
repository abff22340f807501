/**
 * The RBAC authorizer, with upstream's matching rules (plugin/pkg/auth/authorizer/rbac):
 *
 * - ClusterRoleBindings grant their ClusterRole everywhere; RoleBindings grant their Role (of
 *   the same namespace) or ClusterRole only in the binding's namespace.
 * - Subjects: a User by name, a Group by membership, a ServiceAccount as the user
 *   `system:serviceaccount:<ns>:<name>` (a RoleBinding's subject without a namespace means the
 *   binding's own).
 * - A rule matches when its verbs, apiGroups and resources each contain the request's value
 *   or `*`. A resource is matched with its subresource: `pods` does not cover `pods/log`;
 *   `pods/log`, `*` and `*\/log` do. resourceNames, when given, must contain the object's name
 *   (so they never match a list or a create, which name no object).
 * - nonResourceURLs match exactly, or by prefix when they end in `*` (`/healthz/*`).
 * - A ClusterRole with an aggregationRule has the rules of every ClusterRole its selectors
 *   match, computed here at decision time rather than written back by a controller: the
 *   stored object shows only its own rules.
 *
 * RBAC only allows: it never denies, so its "no" is no opinion and the chain answers 403.
 */
import type { ClusterRole, PolicyRule, RoleBinding, Subject } from '../../api/rbac.js';
import { SERVICE_ACCOUNT_USER_PREFIX } from '../../api/rbac.js';
import { labelSelectorFromObject, matchesLabels } from '../../api/selectors.js';
import type { UserInfo } from '../auth.js';
import type { NonResourceAttributes, RequestAttributes, ResourceAttributes } from './attributes.js';
import { NO_OPINION, type AuthorizationResult, type Authorizer } from './authorizer.js';
import type { PolicyCache, PolicyIndex } from './policy-cache.js';

function has(list: readonly string[] | undefined, value: string): boolean {
  return !!list && (list.includes('*') || list.includes(value));
}

function resourceMatches(rule: PolicyRule, attributes: ResourceAttributes): boolean {
  const combined = attributes.subresource ? `${attributes.resource}/${attributes.subresource}` : attributes.resource;
  for (const resource of rule.resources ?? []) {
    if (resource === '*' || resource === combined) return true;
    if (attributes.subresource && resource === `*/${attributes.subresource}`) return true;
  }
  return false;
}

export function ruleAllowsResource(rule: PolicyRule, attributes: ResourceAttributes): boolean {
  if (!has(rule.verbs, attributes.verb) || !has(rule.apiGroups, attributes.apiGroup) || !resourceMatches(rule, attributes)) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || (attributes.name !== '' && names.includes(attributes.name));
}

export function ruleAllowsNonResource(rule: PolicyRule, attributes: NonResourceAttributes): boolean {
  if (!has(rule.verbs, attributes.verb)) return false;
  return (rule.nonResourceURLs ?? []).some((url) => url === '*' || url === attributes.path || (url.endsWith('*') && attributes.path.startsWith(url.slice(0, -1))));
}

export function subjectMatches(subject: Subject, user: UserInfo, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case 'User':
      return subject.name === user.name;
    case 'Group':
      return user.groups.includes(subject.name);
    case 'ServiceAccount':
      return user.name === `${SERVICE_ACCOUNT_USER_PREFIX}${subject.namespace || bindingNamespace}:${subject.name}`;
    default:
      return false;
  }
}

/** A ClusterRole's rules, with those of the roles its aggregationRule selects. */
function clusterRoleRules(index: PolicyIndex, role: ClusterRole, seen = new Set<string>()): PolicyRule[] {
  const selectors = role.aggregationRule?.clusterRoleSelectors;
  if (!selectors?.length) return role.rules ?? [];
  seen.add(role.metadata.name ?? '');
  const rules = [...(role.rules ?? [])];
  for (const selector of selectors) {
    let requirements: ReturnType<typeof labelSelectorFromObject>;
    try {
      requirements = labelSelectorFromObject(selector);
    } catch {
      continue; // an invalid selector selects nothing
    }
    for (const [name, other] of index.clusterRoles) {
      if (seen.has(name) || !matchesLabels(requirements, other.metadata.labels)) continue;
      seen.add(name);
      rules.push(...clusterRoleRules(index, other, seen));
    }
  }
  return rules;
}

/** clusterRoleRules, memoized per policy index (every request would otherwise re-aggregate). */
function effectiveRules(index: PolicyIndex, role: ClusterRole): PolicyRule[] {
  if (!role.aggregationRule?.clusterRoleSelectors?.length) return role.rules ?? [];
  const name = role.metadata.name ?? '';
  let rules = index.aggregatedRules.get(name);
  if (!rules) {
    rules = clusterRoleRules(index, role);
    index.aggregatedRules.set(name, rules);
  }
  return rules;
}

/** Where a binding's rules come from, for the "allowed by" reason. */
function describeBinding(binding: RoleBinding): string {
  const ns = binding.metadata.namespace;
  return `${ns ? `RoleBinding "${ns}/` : 'ClusterRoleBinding "'}${binding.metadata.name ?? ''}" of ${binding.roleRef.kind} "${binding.roleRef.name}"`;
}

export class RbacAuthorizer implements Authorizer {
  constructor(private readonly policy: PolicyCache) {}

  async authorize(attributes: RequestAttributes): Promise<AuthorizationResult> {
    const index = await this.policy.current();
    const allows = (rule: PolicyRule): boolean =>
      'resource' in attributes ? ruleAllowsResource(rule, attributes.resource) : ruleAllowsNonResource(rule, attributes.nonResource);
    for (const [binding, rules] of rulesFor(index, attributes.user, 'resource' in attributes ? attributes.resource.namespace : '')) {
      if (rules.some(allows)) return { decision: 'allow', reason: `RBAC: allowed by ${describeBinding(binding)}` };
    }
    return NO_OPINION;
  }
}

/**
 * Every binding that applies to `user` in `namespace` ('' = cluster-wide only) with the rules
 * it grants; a binding to a missing role grants nothing (upstream logs and goes on).
 */
export function* rulesFor(index: PolicyIndex, user: UserInfo, namespace: string): Generator<[RoleBinding, PolicyRule[]]> {
  for (const binding of index.clusterRoleBindings) {
    if (!(binding.subjects ?? []).some((s) => subjectMatches(s, user, ''))) continue;
    const role = binding.roleRef.kind === 'ClusterRole' ? index.clusterRoles.get(binding.roleRef.name) : undefined;
    if (role) yield [binding, effectiveRules(index, role)];
  }
  if (namespace === '') return;
  for (const binding of index.roleBindings.get(namespace) ?? []) {
    if (!(binding.subjects ?? []).some((s) => subjectMatches(s, user, namespace))) continue;
    if (binding.roleRef.kind === 'Role') {
      const role = index.roles.get(`${namespace}/${binding.roleRef.name}`);
      if (role) yield [binding, role.rules ?? []];
    } else {
      const role = index.clusterRoles.get(binding.roleRef.name);
      if (role) yield [binding, effectiveRules(index, role)];
    }
  }
}
