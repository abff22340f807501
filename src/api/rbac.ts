/**
 * rbac.authorization.k8s.io/v1 objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding)
 * as JSON, and the group names upstream's authenticators and bootstrap policy use.
 */
import type { KubeObject, LabelSelector } from './meta.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';

export const SYSTEM_MASTERS = 'system:masters';
export const SYSTEM_AUTHENTICATED = 'system:authenticated';
export const SYSTEM_UNAUTHENTICATED = 'system:unauthenticated';
export const SYSTEM_NODES = 'system:nodes';
export const SYSTEM_BOOTSTRAPPERS = 'system:bootstrappers';
export const NODE_USER_PREFIX = 'system:node:';
export const SERVICE_ACCOUNT_USER_PREFIX = 'system:serviceaccount:';
/** Every ServiceAccount is also in `system:serviceaccounts` and `system:serviceaccounts:<ns>`. */
export const SERVICE_ACCOUNTS_GROUP = 'system:serviceaccounts';

export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface Subject {
  kind: 'User' | 'Group' | 'ServiceAccount';
  name: string;
  /** ServiceAccount only. */
  namespace?: string;
  apiGroup?: string;
}

export interface RoleRef {
  apiGroup: string;
  kind: 'Role' | 'ClusterRole';
  name: string;
}

export interface AggregationRule {
  clusterRoleSelectors?: LabelSelector[];
}

export interface Role extends KubeObject {
  rules?: PolicyRule[];
}

export interface ClusterRole extends Role {
  aggregationRule?: AggregationRule;
}

export interface RoleBinding extends KubeObject {
  subjects?: Subject[];
  roleRef: RoleRef;
}
