/**
 * What the kubelet keeps on disk per pod, `<root>/pods/<uid>/state.json`: enough for a
 * restarted kubelet to adopt the pod's containers, or to tear the pod down when the
 * apiserver no longer has it (sandbox name and id for CNI DEL, pids for the kill). It is
 * written before the sandbox is created, so a sandbox without a record was never ours.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Pod } from '../api/types.js';
import type { ContainerRecord } from './containers.js';

export interface PodRecord {
  version: 1;
  uid: string;
  namespace: string;
  name: string;
  /** The pod object as last seen (spec for adoption, grace period for orphan kills). */
  pod: Pod;
  sandbox: string;
  sandboxId: string;
  /** CNI ADD succeeded and DEL has not run since. */
  networkReady: boolean;
  podIPs: string[];
  startTime: string;
  /**
   * Init containers as they last were. Absent in records from before init containers ran;
   * all terminated with exit 0 means the pod is initialized and they never run again.
   */
  initContainers?: ContainerRecord[];
  containers: ContainerRecord[];
}

export function podsDir(rootDir: string): string {
  return join(rootDir, 'pods');
}

export function podDir(rootDir: string, uid: string): string {
  return join(podsDir(rootDir), uid);
}

export function containerLogDir(rootDir: string, uid: string, container: string): string {
  return join(podDir(rootDir, uid), container);
}

export function writePodRecord(rootDir: string, record: PodRecord): void {
  const dir = podDir(rootDir, record.uid);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'state.json');
  writeFileSync(`${path}.tmp`, JSON.stringify(record));
  renameSync(`${path}.tmp`, path);
}

export function readPodRecords(rootDir: string): PodRecord[] {
  let uids: string[];
  try {
    uids = readdirSync(podsDir(rootDir));
  } catch {
    return [];
  }
  const records: PodRecord[] = [];
  for (const uid of uids) {
    try {
      const record = JSON.parse(readFileSync(join(podDir(rootDir, uid), 'state.json'), 'utf8')) as PodRecord;
      if (record.version === 1 && record.uid === uid) records.push(record);
    } catch {
      // a directory without a readable record holds nothing we started
    }
  }
  return records;
}

export function removePodDir(rootDir: string, uid: string): void {
  rmSync(podDir(rootDir, uid), { recursive: true, force: true });
}
