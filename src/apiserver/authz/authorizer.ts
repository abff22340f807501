/**
 * The authorizer chain, as upstream's `--authorization-mode=Node,RBAC`: each authorizer
 * allows, denies or has no opinion; the first that allows or denies decides, and no opinion
 * from all of them is a 403. `system:masters` is allowed before anything is consulted
 * (upstream's privileged-group short cut), so an admin is never locked out by a broken policy.
 */
import { SYSTEM_MASTERS } from '../../api/rbac.js';
import type { RequestAttributes } from './attributes.js';

export type Decision = 'allow' | 'deny' | 'no-opinion';

export interface AuthorizationResult {
  decision: Decision;
  /** Why (the binding that allowed, or what a node may not do); shown in access reviews. */
  reason: string;
}

export interface Authorizer {
  authorize(attributes: RequestAttributes): Promise<AuthorizationResult>;
}

export const NO_OPINION: AuthorizationResult = { decision: 'no-opinion', reason: '' };

export class AuthorizerChain implements Authorizer {
  constructor(private readonly authorizers: readonly Authorizer[]) {}

  async authorize(attributes: RequestAttributes): Promise<AuthorizationResult> {
    if (attributes.user.groups.includes(SYSTEM_MASTERS)) return { decision: 'allow', reason: `member of ${SYSTEM_MASTERS}` };
    for (const authorizer of this.authorizers) {
      const result = await authorizer.authorize(attributes);
      if (result.decision !== 'no-opinion') return result;
    }
    return NO_OPINION;
  }
}

/** `--authorization-mode=AlwaysAllow`: what the apiserver did before RBAC. */
export class AlwaysAllow implements Authorizer {
  async authorize(): Promise<AuthorizationResult> {
    return { decision: 'allow', reason: 'AlwaysAllow' };
  }
}
