/**
 * authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`): the caller's own
 * identity as the authenticator saw it. Nothing is stored, so it is served beside the
 * resource table rather than in it (controllers list and watch every kind in the table).
 */
import type { UserInfo } from './auth.js';

export const SELF_SUBJECT_REVIEW_PATH = '/apis/authentication.k8s.io/v1/selfsubjectreviews';

export function selfSubjectReview(user: UserInfo): Record<string, unknown> {
  return {
    kind: 'SelfSubjectReview',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { creationTimestamp: null },
    status: { userInfo: { username: user.name, ...(user.uid ? { uid: user.uid } : {}), groups: user.groups } },
  };
}
