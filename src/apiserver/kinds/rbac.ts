/**
 * rbac.authorization.k8s.io/v1 kinds, with upstream's rules (pkg/apis/rbac/validation):
 * every rule names verbs; a rule names resources (with apiGroups) or nonResourceURLs, and
 * nonResourceURLs only in ClusterRoles; subjects are User, Group or ServiceAccount (the
 * latter with a namespace); a binding's roleRef cannot change (delete and recreate it, as
 * upstream demands, so a binding never silently starts granting a different role).
 * Role names are path segments (`system:node`, `edit`), not DNS subdomains.
 */
import type { KubeObject } from '../../api/meta.js';
import { RBAC_GROUP } from '../../api/rbac.js';
import { FieldPath, invalid, notSupported, required, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { nameIsPathSegment } from './names.js';
import { jsonEqual, TypeChecker } from './values.js';

function validateRules(object: KubeObject, clusterScoped: boolean): FieldCause[] {
  const causes: FieldCause[] = [];
  const check = new TypeChecker(causes);
  for (const [i, rule] of check.objects(object['rules'], FieldPath.of('rules'))) {
    const at = FieldPath.of('rules').index(i);
    if (check.strings(rule['verbs'], at.child('verbs')).length === 0) causes.push(required(at.child('verbs'), 'verbs must contain at least one value'));
    const resources = check.strings(rule['resources'], at.child('resources'));
    const groups = check.strings(rule['apiGroups'], at.child('apiGroups'));
    check.strings(rule['resourceNames'], at.child('resourceNames'));
    const urls = check.strings(rule['nonResourceURLs'], at.child('nonResourceURLs'));
    if (urls.length > 0) {
      if (!clusterScoped) causes.push(invalid(at.child('nonResourceURLs'), urls, 'namespaced rules cannot apply to non-resource URLs'));
      if (resources.length > 0 || groups.length > 0) causes.push(invalid(at.child('nonResourceURLs'), urls, 'rules cannot apply to both regular resources and non-resource URLs'));
    } else {
      if (resources.length === 0) causes.push(required(at.child('resources'), 'resource rules must supply at least one resource'));
      if (groups.length === 0) causes.push(required(at.child('apiGroups'), 'resource rules must supply at least one api group'));
    }
  }
  return causes;
}

export class RoleStrategy extends GenericStrategy {
  constructor(private readonly clusterScoped: boolean) {
    super({ namespaced: !clusterScoped, nameValidator: nameIsPathSegment });
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes = validateRules(object, this.clusterScoped);
    if (this.clusterScoped) {
      const check = new TypeChecker(causes);
      const aggregation = check.object(object['aggregationRule'], FieldPath.of('aggregationRule'));
      if (aggregation) {
        const selectors = check.objects(aggregation['clusterRoleSelectors'], FieldPath.of('aggregationRule', 'clusterRoleSelectors'));
        if (selectors.length === 0) causes.push(required(FieldPath.of('aggregationRule', 'clusterRoleSelectors')));
      }
    }
    return causes;
  }
}

export class RoleBindingStrategy extends GenericStrategy {
  constructor(private readonly clusterScoped: boolean) {
    super({ namespaced: !clusterScoped, nameValidator: nameIsPathSegment });
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const ref = check.object(object['roleRef'], FieldPath.of('roleRef'));
    if (!ref) causes.push(required(FieldPath.of('roleRef')));
    else {
      const group = check.string(ref['apiGroup'], FieldPath.of('roleRef', 'apiGroup'));
      if (group !== RBAC_GROUP) causes.push(notSupported(FieldPath.of('roleRef', 'apiGroup'), group ?? '', [RBAC_GROUP]));
      const kind = check.string(ref['kind'], FieldPath.of('roleRef', 'kind'));
      const kinds = this.clusterScoped ? ['ClusterRole'] : ['Role', 'ClusterRole'];
      if (kind === undefined || !kinds.includes(kind)) causes.push(notSupported(FieldPath.of('roleRef', 'kind'), kind ?? '', kinds));
      const name = check.string(ref['name'], FieldPath.of('roleRef', 'name'));
      if (!name) causes.push(required(FieldPath.of('roleRef', 'name')));
    }
    for (const [i, subject] of check.objects(object['subjects'], FieldPath.of('subjects'))) {
      const at = FieldPath.of('subjects').index(i);
      const kind = check.string(subject['kind'], at.child('kind'));
      const name = check.string(subject['name'], at.child('name'));
      if (!name) causes.push(required(at.child('name')));
      const namespace = check.string(subject['namespace'], at.child('namespace'));
      switch (kind) {
        case 'ServiceAccount':
          if (!namespace && this.clusterScoped) causes.push(required(at.child('namespace')));
          break;
        case 'User':
        case 'Group':
          if (subject['apiGroup'] !== RBAC_GROUP) causes.push(notSupported(at.child('apiGroup'), subject['apiGroup'] ?? '', [RBAC_GROUP]));
          break;
        default:
          causes.push(notSupported(at.child('kind'), kind ?? '', ['ServiceAccount', 'User', 'Group']));
      }
    }
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    return jsonEqual(object['roleRef'], old['roleRef']) ? [] : [invalid(FieldPath.of('roleRef'), object['roleRef'], 'cannot change roleRef')];
  }
}
