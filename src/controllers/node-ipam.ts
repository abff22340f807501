/**
 * Node IPAM controller: gives every Node without `spec.podCIDR` the next free subnet of the
 * cluster CIDR (`--cluster-cidr`, `--node-cidr-mask-size`), as both podCIDR and podCIDRs.
 * flanneld's apiserver subnet store and the kubelet's CNI config read it from there.
 *
 * Dual-stack (`--cluster-cidr v4,v6`, either order) works as upstream's range allocator: one
 * CIDR set per family, each node gets one subnet from every set in the flag's order
 * (`podCIDRs: [v4, v6]`, `podCIDR` = the first), sized by `--node-cidr-mask-size-ipv4`
 * (default 24) and `--node-cidr-mask-size-ipv6` (default 64). A node that carries any
 * podCIDRs is left alone, and a node's subnets are taken all or none.
 *
 *   desired  = every node has a distinct subnet
 *   observed = the podCIDRs nodes already carry (the informer's first list rebuilds the used
 *              set before any worker runs, so a restarted controller never hands out a subnet
 *              twice) plus the ones we assigned and have not seen back yet
 *   apply    = a merge patch of spec.podCIDR(s)
 *
 * A subnet is released when its node is deleted. One patched but not yet seen in the cache
 * stays reserved for that node (`pending`), so a retry or a second event re-sends the same
 * subnet instead of taking another.
 */
import { RESOURCE } from '../api/resources.js';
import type { Node } from '../api/types.js';
import { isNotFound, type KubeApi } from '../client/api.js';
import type { Informer } from '../client/informer.js';
import { formatIpNet } from '../lib/ip.js';
import type { Logger } from '../lib/log.js';
import { CidrSet, CidrSetError, CidrSetFullError } from './cidr-set.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import type { EventRecorder } from '../client/events.js';
import { Reconciler, type SyncResult } from '../client/workqueue.js';

export interface NodeIpamOptions {
  /** One CIDR, or one per family (comma-separated; the first is the primary). */
  clusterCidr: string;
  /** The mask size of a single-stack cluster (`--node-cidr-mask-size`). */
  nodeCidrMaskSize: number;
  /** Dual-stack mask sizes; a single-stack cluster uses nodeCidrMaskSize. */
  nodeCidrMaskSizeIpv4?: number;
  nodeCidrMaskSizeIpv6?: number;
}

export class NodeIpamConfigError extends CidrSetError {}

/** The CIDR sets of `--cluster-cidr`, in the flag's order. */
export function cidrSetsFor(options: NodeIpamOptions): CidrSet[] {
  const texts = options.clusterCidr.split(',').map((text) => text.trim()).filter(Boolean);
  if (texts.length === 0 || texts.length > 2) throw new NodeIpamConfigError(`--cluster-cidr "${options.clusterCidr}": want one CIDR, or one per IP family`);
  const families = texts.map((text) => (text.includes(':') ? 6 : 4));
  if (texts.length === 2 && families[0] === families[1]) throw new NodeIpamConfigError(`--cluster-cidr "${options.clusterCidr}": a dual-stack cluster needs one IPv4 and one IPv6 CIDR`);
  return texts.map((text, i) => {
    const mask = texts.length === 1 ? options.nodeCidrMaskSize : families[i] === 4 ? (options.nodeCidrMaskSizeIpv4 ?? 24) : (options.nodeCidrMaskSizeIpv6 ?? 64);
    return new CidrSet(text, mask);
  });
}

const FULL_RETRY_MS = 30_000;

export class NodeIpamController implements Controller {
  readonly name = 'node-ipam';
  /** The primary family's set. */
  readonly cidrs: CidrSet;
  /** Every family's set, primary first. */
  readonly cidrSets: readonly CidrSet[];
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly nodes: Informer<Node>;
  private readonly reconciler: Reconciler;
  /** Node name → subnets (one per set) assigned by us, not yet seen on the node. */
  private readonly pending = new Map<string, string[]>();

  constructor(context: ControllerContext, options: NodeIpamOptions) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'node-ipam-controller');
    this.cidrSets = cidrSetsFor(options);
    this.cidrs = this.cidrSets[0]!;
    this.nodes = context.informers.informer<Node>(RESOURCE.nodes);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    this.nodes.on('add', (node) => this.observe(node));
    this.nodes.on('update', (_old, node) => this.observe(node));
    this.nodes.on('delete', (node) => this.released(node));
  }

  async start(): Promise<void> {
    for (const set of this.cidrSets) {
      this.log.info({ clusterCidr: formatIpNet(set.cluster), used: set.usedCount, subnets: set.subnetCount }, 'node CIDRs rebuilt from nodes');
    }
    this.reconciler.start();
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.recorder.flush();
  }

  private observe(node: Node): void {
    const name = node.metadata.name ?? '';
    const cidrs = podCidrsOf(node);
    if (cidrs.length === 0) {
      this.reconciler.enqueue(name);
      return;
    }
    for (const cidr of this.pending.get(name) ?? []) if (!cidrs.includes(cidr)) this.release(cidr); // someone else set it
    this.pending.delete(name);
    for (const cidr of cidrs) {
      if (!this.cidrSets.some((set) => set.occupy(cidr))) this.log.debug({ node: name, cidr }, 'node CIDR outside the cluster CIDR; not tracked');
    }
  }

  private released(node: Node): void {
    const name = node.metadata.name ?? '';
    const pending = this.pending.get(name);
    this.pending.delete(name);
    const gone = [...podCidrsOf(node), ...(pending ?? [])];
    // Only free what no remaining node still claims (a duplicate assignment made by hand).
    const stillUsed = new Set(this.nodes.list().flatMap(podCidrsOf));
    for (const cidr of gone) {
      if (stillUsed.has(cidr)) continue;
      this.release(cidr);
      this.log.info({ node: name, cidr }, 'released node CIDR');
    }
  }

  /** Releases a subnet from whichever set holds it. */
  private release(cidr: string): void {
    for (const set of this.cidrSets) if (set.isUsed(cidr)) set.release(cidr);
  }

  private async sync(name: string): Promise<SyncResult | void> {
    const node = this.nodes.get(name);
    if (!node || podCidrsOf(node).length > 0) return;
    let cidrs = this.pending.get(name);
    if (!cidrs) {
      const taken: string[] = [];
      try {
        for (const set of this.cidrSets) taken.push(set.allocateNext());
      } catch (err) {
        for (const cidr of taken) this.release(cidr); // all families or none
        if (!(err instanceof CidrSetFullError)) throw err;
        this.log.warn({ node: name, err: err.message }, 'no pod CIDR available');
        this.recorder.record(node, 'Normal', 'CIDRNotAvailable', `Node ${name} status is now: CIDRNotAvailable`);
        return { requeueAfterMs: FULL_RETRY_MS };
      }
      cidrs = taken;
      this.pending.set(name, cidrs);
    }
    try {
      await this.api.patch(RESOURCE.nodes, name, undefined, { spec: { podCIDR: cidrs[0], podCIDRs: cidrs } }, 'merge');
    } catch (err) {
      if (isNotFound(err)) {
        this.pending.delete(name);
        for (const cidr of cidrs) this.release(cidr);
        return;
      }
      throw err;
    }
    this.log.info({ node: name, cidrs }, 'assigned pod CIDRs');
  }
}

export function podCidrsOf(node: Node): string[] {
  const cidrs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  return [...new Set(cidrs)];
}
