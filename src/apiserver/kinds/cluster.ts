/**
 * The cluster-scoped kinds: Namespace and Node.
 *
 * Design note: upstream puts the `kubernetes` finalizer into every new Namespace's
 * spec.finalizers and relies on the namespace controller to empty the namespace and remove
 * it. Pontoon deletes namespaces without that controller, so no finalizer is added here —
 * one would leave every deleted namespace Terminating forever.
 */
import type { KubeObject } from '../../api/meta.js';
import { labelKeyErrors, labelValueErrors } from '../../api/selectors.js';
import { isQuantity } from '../../api/quantity.js';
import { parseIpNet } from '../../lib/ip.js';
import { FieldPath, duplicate, forbidden, invalid, invalidEach, notSupported, required, tooMany, type FieldCause } from './field.js';
import { GenericStrategy } from './generic.js';
import { nameIsDnsLabel } from './names.js';
import { TAINT_EFFECTS } from './pod.js';
import { TypeChecker, asArray, asObject, asString, ensureObject, jsonEqual } from './values.js';

export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
/** Holds a deleted namespace until the apiserver's NamespaceLifecycle has emptied it. */
export const NAMESPACE_CONTENTS_FINALIZER = 'pontoon.dev/namespace-contents';
const UNDELETABLE = new Set(['default', 'kube-system', 'kube-public']);

export class NamespaceStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: false, hasStatus: true, nameValidator: nameIsDnsLabel });
  }

  deletionRefusal(object: KubeObject): string | undefined {
    return UNDELETABLE.has(object.metadata.name ?? '') ? 'this namespace may not be deleted' : undefined;
  }

  /** Terminating until emptied: new content is refused meanwhile (the registry checks the phase's timestamp). */
  prepareForDeletion(object: KubeObject): void {
    object.metadata.finalizers = [...(object.metadata.finalizers ?? []), NAMESPACE_CONTENTS_FINALIZER];
    object['status'] = { ...(asObject(object['status']) ?? {}), phase: 'Terminating' };
  }

  override applyDefaults(object: KubeObject): void {
    // Upstream labels every namespace with its own name so selectors can pick namespaces.
    const name = object.metadata.name;
    if (name) object.metadata.labels = { ...(object.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    for (const finalizer of check.strings(spec?.['finalizers'], FieldPath.of('spec', 'finalizers'))) {
      causes.push(...invalidEach(FieldPath.of('spec', 'finalizers'), finalizer, labelKeyErrors(finalizer)));
    }
    const phase = check.string(asObject(object['status'])?.['phase'], FieldPath.of('status', 'phase'));
    if (phase !== undefined && phase !== 'Active' && phase !== 'Terminating') {
      causes.push(notSupported(FieldPath.of('status', 'phase'), phase, ['Active', 'Terminating']));
    }
    return causes;
  }

  protected override initialStatus(): unknown {
    return { phase: 'Active' };
  }

  override prepareForUpdate(object: KubeObject, old: KubeObject): void {
    super.prepareForUpdate(object, old);
    // spec.finalizers belong to the finalize subresource upstream, never to a plain update.
    const spec = asObject(object['spec']);
    const oldFinalizers = asObject(old['spec'])?.['finalizers'];
    if (spec) {
      if (oldFinalizers === undefined) delete spec['finalizers'];
      else spec['finalizers'] = structuredClone(oldFinalizers);
    }
  }
}

function cidrErrors(value: string): string[] {
  try {
    parseIpNet(value);
    return [];
  } catch {
    return ['must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'];
  }
}

export class NodeStrategy extends GenericStrategy {
  constructor() {
    super({ namespaced: false, hasStatus: true });
  }

  override applyDefaults(object: KubeObject): void {
    const spec = asObject(object['spec']);
    if (spec) {
      // podCIDR is podCIDRs[0] in a second field; node-ipam and flannel each read one of them.
      const single = asString(spec['podCIDR']);
      const plural = asArray(spec['podCIDRs']);
      if (single && (!plural || plural.length === 0)) spec['podCIDRs'] = [single];
      else if (!single && plural && typeof plural[0] === 'string') spec['podCIDR'] = plural[0];
    }
    const status = asObject(object['status']);
    if (status && status['capacity'] !== undefined && status['allocatable'] === undefined) {
      status['allocatable'] = structuredClone(status['capacity']);
    }
  }

  protected override validateBody(object: KubeObject): FieldCause[] {
    const causes: FieldCause[] = [];
    const check = new TypeChecker(causes);
    const spec = check.object(object['spec'], FieldPath.of('spec'));
    if (spec) {
      const podCIDR = check.string(spec['podCIDR'], FieldPath.of('spec', 'podCIDR'));
      const cidrs = check.strings(spec['podCIDRs'], FieldPath.of('spec', 'podCIDRs'));
      if (cidrs.length > 2) causes.push(tooMany(FieldPath.of('spec', 'podCIDRs'), cidrs.length, 2));
      const families = new Set<number>();
      for (const [i, cidr] of cidrs.entries()) {
        const errors = cidrErrors(cidr);
        causes.push(...invalidEach(FieldPath.of('spec', 'podCIDRs').index(i), cidr, errors));
        if (errors.length === 0) {
          const family = parseIpNet(cidr).family;
          if (families.has(family)) causes.push(invalid(FieldPath.of('spec', 'podCIDRs'), cidrs, 'may specify no more than one CIDR for each IP family'));
          families.add(family);
        }
      }
      if (podCIDR && cidrs.length > 0 && cidrs[0] !== podCIDR) causes.push(invalid(FieldPath.of('spec', 'podCIDRs'), cidrs, 'first value must match `podCIDR`'));
      check.boolean(spec['unschedulable'], FieldPath.of('spec', 'unschedulable'));
      const seen = new Set<string>();
      for (const [i, taint] of check.objects(spec['taints'], FieldPath.of('spec', 'taints'))) {
        const at = FieldPath.of('spec', 'taints').index(i);
        const key = check.string(taint['key'], at.child('key')) ?? '';
        if (!key) causes.push(required(at.child('key'), ''));
        else causes.push(...invalidEach(at.child('key'), key, labelKeyErrors(key)));
        const value = check.string(taint['value'], at.child('value')) ?? '';
        causes.push(...invalidEach(at.child('value'), value, labelValueErrors(value)));
        const effect = check.string(taint['effect'], at.child('effect')) ?? '';
        if (!effect) causes.push(required(at.child('effect'), ''));
        else if (!(TAINT_EFFECTS as readonly string[]).includes(effect)) causes.push(notSupported(at.child('effect'), effect, TAINT_EFFECTS));
        const identity = `${key}\u0000${effect}`;
        if (seen.has(identity)) causes.push(duplicate(at, taint));
        seen.add(identity);
      }
    }
    const status = check.object(object['status'], FieldPath.of('status'));
    if (status) {
      for (const field of ['capacity', 'allocatable']) {
        for (const [name, quantity] of Object.entries(check.object(status[field], FieldPath.of('status', field)) ?? {})) {
          if ((typeof quantity !== 'string' && typeof quantity !== 'number') || !isQuantity(quantity)) {
            causes.push(invalid(FieldPath.of('status', field).key(name), quantity, "must be a quantity, e.g. '4', '8Gi' or '110'"));
          }
        }
      }
      for (const [i, address] of check.objects(status['addresses'], FieldPath.of('status', 'addresses'))) {
        const at = FieldPath.of('status', 'addresses').index(i);
        if (!check.string(address['type'], at.child('type'))) causes.push(required(at.child('type'), ''));
        if (!check.string(address['address'], at.child('address'))) causes.push(required(at.child('address'), ''));
      }
    }
    return causes;
  }

  protected override validateBodyUpdate(object: KubeObject, old: KubeObject): FieldCause[] {
    // Pod CIDRs are handed out once by node-ipam; routes and leases are built on them.
    const before = asArray(asObject(old['spec'])?.['podCIDRs']) ?? [];
    const now = asArray(asObject(object['spec'])?.['podCIDRs']) ?? [];
    if (before.length > 0 && !jsonEqual(before, now)) {
      return [forbidden(FieldPath.of('spec', 'podCIDRs'), 'node updates may not change podCIDR except from "" to valid')];
    }
    return [];
  }

  override prepareForStatusUpdate(object: KubeObject, old: KubeObject): void {
    super.prepareForStatusUpdate(object, old);
    const status = ensureObject(object, 'status');
    if (status && status['capacity'] !== undefined && status['allocatable'] === undefined) {
      status['allocatable'] = structuredClone(status['capacity']);
    }
  }
}

