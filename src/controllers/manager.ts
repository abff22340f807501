/**
 * The controller-manager: one process running the selected controllers over one set of
 * shared informers. Controllers are built first (so their handlers are on the informers
 * before the first list arrives), then the informers start, then every controller's workers.
 * `--controllers` takes upstream's syntax: a comma list of names, `*` for all, `-name` to
 * leave one out ("*,-node-lifecycle").
 */
import type { KubeApi } from '../client/api.js';
import { PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import type { Controller, ControllerContext } from './controller.js';
import { DaemonSetController } from './daemonset.js';
import { DeploymentController } from './deployment.js';
import { EndpointsController } from './endpoints.js';
import { EndpointSliceController } from './endpointslice.js';
import { GarbageCollector } from './garbage-collector.js';
import { JobController } from './job.js';
import { SharedInformers } from './informers.js';
import { NodeIpamController } from './node-ipam.js';
import { NodeLifecycleController } from './node-lifecycle.js';
import { PodGcController } from './pod-gc.js';
import { ReplicaSetController } from './replicaset.js';
import { RootCaPublisher } from './root-ca-publisher.js';
import { ServiceAccountTokenController } from './serviceaccount-tokens.js';
import { ServiceAccountController } from './serviceaccounts.js';
import type { SigningKey } from '../lib/jws.js';
import { BootstrapSigner } from './bootstrap-signer.js';
import { BootstrapTokenCleaner } from './bootstrap-token-cleaner.js';
import { CsrApprovingController } from './csr-approving.js';
import type { IpNet } from '../lib/ip.js';
import { CsrSigningController } from './csr-signing.js';

export const CONTROLLER_NAMES = [
  'replicaset',
  'deployment',
  'endpoints',
  'endpointslice',
  'node-ipam',
  'node-lifecycle',
  'garbage-collector',
  'pod-gc',
  'daemonset',
  'job',
  'serviceaccount',
  'serviceaccount-token',
  'root-ca-cert-publisher',
  'tokencleaner',
  'bootstrapsigner',
  'csrapproving',
  'csrsigning',
] as const;
export type ControllerName = (typeof CONTROLLER_NAMES)[number];

export class ControllerSelectionError extends PontoonError {}

/** Parses `--controllers`: "*" (all), "a,b", "*,-a". */
export function selectControllers(spec: string): Set<ControllerName> {
  const known = new Set<string>(CONTROLLER_NAMES);
  const selected = new Set<ControllerName>();
  const excluded = new Set<string>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (raw === '*') {
      for (const name of CONTROLLER_NAMES) selected.add(name);
      continue;
    }
    const name = raw.startsWith('-') ? raw.slice(1) : raw;
    if (!known.has(name)) {
      throw new ControllerSelectionError(`unknown controller "${name}" in --controllers; known: ${CONTROLLER_NAMES.join(', ')}`);
    }
    if (raw.startsWith('-')) excluded.add(name);
    else selected.add(name as ControllerName);
  }
  for (const name of excluded) selected.delete(name as ControllerName);
  return selected;
}

export interface ControllerManagerOptions {
  api: KubeApi;
  log: Logger;
  controllers?: Iterable<ControllerName>;
  clusterCidr?: string;
  nodeCidrMaskSize?: number;
  /** Dual-stack node subnet sizes (`--node-cidr-mask-size-ipv4/-ipv6`). */
  nodeCidrMaskSizeIpv4?: number;
  nodeCidrMaskSizeIpv6?: number;
  nodeMonitorGracePeriodMs?: number;
  podEvictionTimeoutMs?: number;
  /** How long a pod's node must be missing before pod-gc force-deletes it. */
  orphanPodQuarantineMs?: number;
  /** First delay before the Job controller replaces a failed pod (upstream 10 s, doubling). */
  jobPodFailureBackoffMs?: number;
  /** Re-deliver every cached object this often, so a missed edge is healed (0: never). */
  resyncSeconds?: number;
  /** Signs legacy token Secrets (--service-account-private-key-file); without it serviceaccount-token does not run. */
  serviceAccountSigningKey?: SigningKey;
  /** The cluster CA (--root-ca-file): published as kube-root-ca.crt and put into token Secrets. */
  rootCaPem?: string;
  /** The CA csrsigning issues certificates from (--cluster-signing-cert-file/-key-file); without it csrsigning does not run. */
  clusterSigning?: { caCertPath: string; caKeyPath: string; durationSeconds?: number };
  /** --kubelet-serving-approve-cidrs: csrapproving approves kubelet serving requests for these addresses. */
  kubeletServingApproveNets?: IpNet[];
}

export class ControllerManager {
  readonly informers: SharedInformers;
  readonly controllers: Controller[] = [];

  constructor(options: ControllerManagerOptions) {
    this.informers = new SharedInformers(options.api, options.log, options.resyncSeconds ?? 0);
    const context: ControllerContext = { api: options.api, informers: this.informers, log: options.log };
    const wanted = new Set(options.controllers ?? CONTROLLER_NAMES);
    for (const name of CONTROLLER_NAMES) {
      if (!wanted.has(name)) continue;
      switch (name) {
        case 'replicaset':
          this.controllers.push(new ReplicaSetController(context));
          break;
        case 'deployment':
          this.controllers.push(new DeploymentController(context));
          break;
        case 'endpoints':
          this.controllers.push(new EndpointsController(context));
          break;
        case 'endpointslice':
          this.controllers.push(new EndpointSliceController(context));
          break;
        case 'node-ipam':
          this.controllers.push(
            new NodeIpamController(context, {
              clusterCidr: options.clusterCidr ?? '10.244.0.0/16',
              nodeCidrMaskSize: options.nodeCidrMaskSize ?? 24,
              ...(options.nodeCidrMaskSizeIpv4 !== undefined ? { nodeCidrMaskSizeIpv4: options.nodeCidrMaskSizeIpv4 } : {}),
              ...(options.nodeCidrMaskSizeIpv6 !== undefined ? { nodeCidrMaskSizeIpv6: options.nodeCidrMaskSizeIpv6 } : {}),
            }),
          );
          break;
        case 'node-lifecycle':
          this.controllers.push(
            new NodeLifecycleController(context, {
              nodeMonitorGracePeriodMs: options.nodeMonitorGracePeriodMs ?? 40_000,
              podEvictionTimeoutMs: options.podEvictionTimeoutMs ?? 300_000,
            }),
          );
          break;
        case 'garbage-collector':
          this.controllers.push(new GarbageCollector(context));
          break;
        case 'pod-gc':
          this.controllers.push(new PodGcController(context, options.orphanPodQuarantineMs));
          break;
        case 'daemonset':
          this.controllers.push(new DaemonSetController(context));
          break;
        case 'job':
          this.controllers.push(new JobController(context, { ...(options.jobPodFailureBackoffMs !== undefined ? { podFailureBackoffMs: options.jobPodFailureBackoffMs } : {}) }));
          break;
        case 'serviceaccount':
          this.controllers.push(new ServiceAccountController(context));
          break;
        case 'serviceaccount-token':
          // Upstream starts it only with a key to sign with.
          if (options.serviceAccountSigningKey) this.controllers.push(new ServiceAccountTokenController(context, options.serviceAccountSigningKey, options.rootCaPem));
          else options.log.info('no --service-account-private-key-file: not starting serviceaccount-token');
          break;
        case 'root-ca-cert-publisher':
          if (options.rootCaPem !== undefined) this.controllers.push(new RootCaPublisher(context, options.rootCaPem));
          else options.log.info('no --root-ca-file: not starting root-ca-cert-publisher');
          break;
        case 'tokencleaner':
          this.controllers.push(new BootstrapTokenCleaner(context));
          break;
        case 'bootstrapsigner':
          this.controllers.push(new BootstrapSigner(context));
          break;
        case 'csrapproving':
          this.controllers.push(new CsrApprovingController(context, options.kubeletServingApproveNets));
          break;
        case 'csrsigning':
          if (options.clusterSigning) this.controllers.push(new CsrSigningController(context, options.clusterSigning));
          else options.log.info('no --cluster-signing-cert-file/--cluster-signing-key-file: not starting csrsigning');
          break;
      }
    }
  }

  controller<T extends Controller>(name: ControllerName): T | undefined {
    return this.controllers.find((c) => c.name === name) as T | undefined;
  }

  /** Resolves once every informer has its first list and every controller's workers run. */
  async start(): Promise<void> {
    await this.informers.start();
    for (const controller of this.controllers) await controller.start();
  }

  async stop(): Promise<void> {
    this.informers.stop();
    await Promise.all(this.controllers.map((c) => c.stop()));
  }
}
