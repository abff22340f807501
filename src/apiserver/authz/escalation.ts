/**
 * RBAC's privilege-escalation prevention, simplified from upstream's: a user may create or
 * replace a Role/ClusterRole only with permissions they already hold (or with the `escalate`
 * verb on it), and a binding only to a role whose permissions they hold (or with `bind` on
 * that role). "Hold" is checked by asking the authorizer for every concrete
 * verb × apiGroup × resource × resourceName (or verb × URL) the rule spells out, taking `*`
 * literally — so granting `*` needs `*`. Simplifications, all on the refusing side:
 * aggregated ClusterRoles and patches of RBAC objects need `escalate`/`bind` outright (their
 * resulting rules are not known before the write).
 */
import type { PolicyRule } from '../../api/rbac.js';
import { RBAC_GROUP } from '../../api/rbac.js';
import type { UserInfo } from '../auth.js';
import { forbidden } from '../status.js';
import type { RequestAttributes } from './attributes.js';
import type { Authorizer } from './authorizer.js';
import type { PolicyCache } from './policy-cache.js';

const RBAC_RESOURCES = new Set(['roles', 'clusterroles', 'rolebindings', 'clusterrolebindings']);

export function isRbacWrite(apiGroup: string, resource: string): boolean {
  return apiGroup === RBAC_GROUP && RBAC_RESOURCES.has(resource);
}

async function allowed(authorizer: Authorizer, attributes: RequestAttributes): Promise<boolean> {
  return (await authorizer.authorize(attributes)).decision === 'allow';
}

/** The first permission of `rules` the user lacks in `namespace` ('' = cluster-wide), or undefined. */
async function missingPermission(authorizer: Authorizer, user: UserInfo, rules: readonly PolicyRule[], namespace: string): Promise<string | undefined> {
  for (const rule of rules) {
    for (const verb of rule.verbs ?? []) {
      for (const path of rule.nonResourceURLs ?? []) {
        if (!(await allowed(authorizer, { user, nonResource: { verb, path } }))) return `${verb} ${path}`;
      }
      for (const apiGroup of rule.apiGroups ?? []) {
        for (const combined of rule.resources ?? []) {
          const [resource = '', subresource = ''] = combined.split('/');
          for (const name of rule.resourceNames?.length ? rule.resourceNames : ['']) {
            const attributes = { user, resource: { verb, apiGroup, resource, subresource, namespace, name } };
            if (!(await allowed(authorizer, attributes))) return `${verb} ${apiGroup || 'core'}/${combined}${name ? `/${name}` : ''}`;
          }
        }
      }
    }
  }
  return undefined;
}

export interface EscalationRequest {
  user: UserInfo;
  resource: string;
  namespace: string;
  /** The object being written; undefined for a patch. */
  object: Record<string, unknown> | undefined;
  name: string;
}

/** Throws 403 when the write would grant more than the writer holds. */
export async function checkEscalation(authorizer: Authorizer, policy: PolicyCache, request: EscalationRequest): Promise<void> {
  const { user, resource, namespace } = request;
  const object = request.object;
  const name = request.name || ((object?.['metadata'] as { name?: string } | undefined)?.name ?? '');
  const isRole = resource === 'roles' || resource === 'clusterroles';
  const refuse = (why: string): Error =>
    forbidden(`${resource}.${RBAC_GROUP} "${name}" is forbidden: user "${user.name}" is attempting to grant RBAC permissions not currently held: ${why}`);
  if (isRole) {
    if (await allowed(authorizer, { user, resource: { verb: 'escalate', apiGroup: RBAC_GROUP, resource, subresource: '', namespace, name } })) return;
    if (!object) throw refuse('patching a role needs the escalate verb');
    if (object['aggregationRule']) throw refuse('an aggregated ClusterRole needs the escalate verb');
    const missing = await missingPermission(authorizer, user, (object['rules'] as PolicyRule[] | undefined) ?? [], namespace);
    if (missing) throw refuse(missing);
    return;
  }
  const ref = object?.['roleRef'] as { kind?: string; name?: string } | undefined;
  const refResource = ref?.kind === 'Role' ? 'roles' : 'clusterroles';
  const refName = ref?.name ?? '';
  if (object && (await allowed(authorizer, { user, resource: { verb: 'bind', apiGroup: RBAC_GROUP, resource: refResource, subresource: '', namespace: refResource === 'roles' ? namespace : '', name: refName } }))) return;
  if (!object) throw refuse('patching a binding needs the bind verb on its role');
  const index = await policy.current();
  const role = refResource === 'roles' ? index.roles.get(`${namespace}/${refName}`) : index.clusterRoles.get(refName);
  // A binding to a role that does not exist grants nothing yet, but would once the role appears.
  if (!role) throw refuse(`${ref?.kind ?? 'ClusterRole'} "${refName}" not found; binding it needs the bind verb`);
  if ('aggregationRule' in role && role.aggregationRule) throw refuse(`binding the aggregated ClusterRole "${refName}" needs the bind verb`);
  const missing = await missingPermission(authorizer, user, role.rules ?? [], namespace);
  if (missing) throw refuse(missing);
}
