/**
 * Flattens an UPDATE's NLRI fields by family: IPv4 may come in the base fields or in
 * MP_REACH/MP_UNREACH (RFC 4760), IPv6 only in the MP attributes. Lists are passed through,
 * not copied, since an UPDATE carries hundreds of prefixes and this runs for every one.
 */
import type { IpNet } from '../../lib/ip.js';
import type { Family, UpdateMessage } from '../types.js';

export interface FamilyPrefixes {
  readonly family: Family;
  readonly prefixes: readonly IpNet[];
}

export interface UpdateRoutes {
  readonly withdrawn: readonly FamilyPrefixes[];
  readonly announced: readonly FamilyPrefixes[];
}

export function routesOf(update: UpdateMessage): UpdateRoutes {
  const withdrawn: FamilyPrefixes[] = [];
  const announced: FamilyPrefixes[] = [];
  if (update.withdrawn.length > 0) withdrawn.push({ family: 'ipv4-unicast', prefixes: update.withdrawn });
  if (update.mpUnreach !== undefined && update.mpUnreach.withdrawn.length > 0) {
    withdrawn.push({ family: update.mpUnreach.family, prefixes: update.mpUnreach.withdrawn });
  }
  if (update.nlri.length > 0) announced.push({ family: 'ipv4-unicast', prefixes: update.nlri });
  if (update.mpReach !== undefined && update.mpReach.nlri.length > 0) {
    announced.push({ family: update.mpReach.family, prefixes: update.mpReach.nlri });
  }
  return { withdrawn, announced };
}

/** RFC 4724 §2: End-of-RIB is an UPDATE with nothing in it (IPv4) or an empty MP_UNREACH. */
export function endOfRibFamily(update: UpdateMessage): Family | undefined {
  if (update.attributes !== undefined || update.nlri.length > 0 || update.withdrawn.length > 0 || update.mpReach !== undefined) {
    return undefined;
  }
  if (update.mpUnreach === undefined) return 'ipv4-unicast';
  return update.mpUnreach.withdrawn.length === 0 ? update.mpUnreach.family : undefined;
}
