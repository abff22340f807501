/** A node namespace with a CNI conflist and a pod runtime acting on it, for kubelet tests. */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Container, Pod, PodStatus } from '../../src/api/types.js';
import { createLogger } from '../../src/lib/log.js';
import { PodRuntime, type PodRuntimeOptions } from '../../src/kubelet/runtime.js';
import { PONTOON_CNI_DIR, REFERENCE_CNI_DIR } from '../helpers/cni.js';
import type { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

export const BUSYBOX = '/bin/busybox';
export const NODE_IP = '198.18.0.11';

export interface KubeletNode {
  netns: string;
  rootDir: string;
  confDir: string;
  ipamDir: string;
  subnet: string;
  gateway: string;
  options: PodRuntimeOptions;
  runtime(extra?: Partial<PodRuntimeOptions>): PodRuntime;
}

/**
 * The reference plugins here speak CNI up to 1.0.0, so the list is 1.0.0: our bridge and IPAM
 * first, then portmap (hostPorts, through the portMappings capability) and tuning (a sysctl
 * in the pod) from /usr/lib/cni, to prove prevResult chaining both ways.
 */
export function kubeletNode(lab: Lab, tag: string, subnetOctet: number): KubeletNode {
  const netns = lab.netns(tag);
  const rootDir = lab.tempDir(`kubelet-${tag}`);
  const confDir = join(rootDir, 'net.d');
  const ipamDir = join(rootDir, 'ipam');
  mkdirSync(confDir, { recursive: true });
  const subnet = `10.${subnetOctet}.0.0/24`;
  const conflist = {
    cniVersion: '1.0.0',
    name: `pt${tag}`,
    plugins: [
      { type: 'pontoon-bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'pontoon-ipam', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: ipamDir } },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'tuning', sysctl: { 'net.core.somaxconn': '1234' } },
    ],
  };
  writeFileSync(join(confDir, '10-pontoon.conflist'), JSON.stringify(conflist));
  // A later name must not be picked: the kubelet takes the lexically first.
  writeFileSync(join(confDir, '99-ignored.conflist'), JSON.stringify({ ...conflist, plugins: [{ type: 'does-not-exist' }] }));
  const options: PodRuntimeOptions = {
    rootDir,
    nodeName: tag,
    nodeIP: NODE_IP,
    cniConfDir: confDir,
    cniBinDirs: [PONTOON_CNI_DIR, REFERENCE_CNI_DIR],
    netnsPrefix: `${lab.prefix}pod-`,
    hostNetns: netns,
    backoffBaseMs: 300,
    backoffCapMs: 2000,
    log: createLogger('kubelet-test', { level: process.env['PONTOON_TEST_LOG'] ?? 'silent' }),
  };
  return {
    netns,
    rootDir,
    confDir,
    ipamDir,
    subnet,
    gateway: `10.${subnetOctet}.0.1`,
    options,
    runtime: (extra = {}) => new PodRuntime({ ...options, ...extra }),
  };
}

export function makePod(name: string, containers: Container[], spec: Partial<Pod['spec']> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', uid: randomUUID(), labels: { app: name } },
    spec: { nodeName: 'n1', restartPolicy: 'Always', terminationGracePeriodSeconds: 2, ...spec, containers },
  };
}

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false, describe?: () => string): Promise<T> {
  return poll(what, probe, { timeoutMs, ...(describe ? { describe } : {}) });
}

/** Polls an async probe until it returns something (not undefined/false). */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  return poll(what, probe, { timeoutMs });
}

export async function waitForStatus(runtime: PodRuntime, uid: string, what: string, timeoutMs: number, check: (status: PodStatus) => boolean): Promise<PodStatus> {
  return waitFor(what, timeoutMs, () => {
    const status = runtime.status(uid);
    return status && check(status) ? status : undefined;
  }, () => JSON.stringify(runtime.status(uid), null, 1));
}

export function condition(status: PodStatus, type: string): string | undefined {
  return status.conditions?.find((c) => c.type === type)?.status;
}
