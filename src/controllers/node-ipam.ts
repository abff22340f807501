/**
 * Node IPAM controller: gives every Node without `spec.podCIDR` the next free subnet of the
 * cluster CIDR (`--cluster-cidr`, `--node-cidr-mask-size`), as both podCIDR and podCIDRs.
 * flanneld's apiserver subnet store and the kubelet's CNI config read it from there.
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
import { CidrSet, CidrSetFullError } from './cidr-set.js';
import { recorderFor, type Controller, type ControllerContext } from './controller.js';
import type { EventRecorder } from '../client/events.js';
import { Reconciler, type SyncResult } from './queue.js';

export interface NodeIpamOptions {
  clusterCidr: string;
  nodeCidrMaskSize: number;
}

const FULL_RETRY_MS = 30_000;

export class NodeIpamController implements Controller {
  readonly name = 'node-ipam';
  readonly cidrs: CidrSet;
  private readonly api: KubeApi;
  private readonly log: Logger;
  private readonly recorder: EventRecorder;
  private readonly nodes: Informer<Node>;
  private readonly reconciler: Reconciler;
  /** Node name → subnet assigned by us, not yet seen on the node. */
  private readonly pending = new Map<string, string>();

  constructor(context: ControllerContext, options: NodeIpamOptions) {
    this.api = context.api;
    this.log = context.log.child({ controller: this.name });
    this.recorder = recorderFor(context, 'node-ipam-controller');
    this.cidrs = new CidrSet(options.clusterCidr, options.nodeCidrMaskSize);
    this.nodes = context.informers.informer<Node>(RESOURCE.nodes);
    this.reconciler = new Reconciler({ name: this.name, sync: (key) => this.sync(key), log: this.log });
    this.nodes.on('add', (node) => this.observe(node));
    this.nodes.on('update', (_old, node) => this.observe(node));
    this.nodes.on('delete', (node) => this.released(node));
  }

  async start(): Promise<void> {
    this.log.info({ clusterCidr: formatIpNet(this.cidrs.cluster), used: this.cidrs.usedCount, subnets: this.cidrs.subnetCount }, 'node CIDRs rebuilt from nodes');
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
    const pending = this.pending.get(name);
    if (pending && !cidrs.includes(pending)) this.cidrs.release(pending); // someone else set it
    this.pending.delete(name);
    for (const cidr of cidrs) {
      if (!this.cidrs.occupy(cidr)) this.log.debug({ node: name, cidr }, 'node CIDR outside the cluster CIDR; not tracked');
    }
  }

  private released(node: Node): void {
    const name = node.metadata.name ?? '';
    const pending = this.pending.get(name);
    this.pending.delete(name);
    const gone = [...podCidrsOf(node), ...(pending ? [pending] : [])];
    // Only free what no remaining node still claims (a duplicate assignment made by hand).
    const stillUsed = new Set(this.nodes.list().flatMap(podCidrsOf));
    for (const cidr of gone) {
      if (stillUsed.has(cidr)) continue;
      this.cidrs.release(cidr);
      this.log.info({ node: name, cidr }, 'released node CIDR');
    }
  }

  private async sync(name: string): Promise<SyncResult | void> {
    const node = this.nodes.get(name);
    if (!node || podCidrsOf(node).length > 0) return;
    let cidr = this.pending.get(name);
    if (!cidr) {
      try {
        cidr = this.cidrs.allocateNext();
      } catch (err) {
        if (!(err instanceof CidrSetFullError)) throw err;
        this.log.warn({ node: name, err: err.message }, 'no pod CIDR available');
        this.recorder.record(node, 'Normal', 'CIDRNotAvailable', `Node ${name} status is now: CIDRNotAvailable`);
        return { requeueAfterMs: FULL_RETRY_MS };
      }
      this.pending.set(name, cidr);
    }
    try {
      await this.api.patch(RESOURCE.nodes, name, undefined, { spec: { podCIDR: cidr, podCIDRs: [cidr] } }, 'merge');
    } catch (err) {
      if (isNotFound(err)) {
        this.pending.delete(name);
        this.cidrs.release(cidr);
        return;
      }
      throw err;
    }
    this.log.info({ node: name, cidr }, 'assigned pod CIDR');
  }
}

export function podCidrsOf(node: Node): string[] {
  const cidrs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  return [...new Set(cidrs)];
}
