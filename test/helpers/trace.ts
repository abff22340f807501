/** Running kubectl and `pontoon trace --json` against a test lab (test/debug/trace-*.test.ts). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { cliPath, type ClusterState } from '../../src/cli/cluster/cluster.js';
import type { Hop } from '../../src/debug/trace/packet.js';
import { ROOT } from './cni.js';

/** The echo server the lab's pods run (name, port). */
export const ECHO = join(ROOT, 'test', 'fixtures', 'proxy', 'echo.mjs');

export interface TraceJson {
  arrived: boolean;
  hops: Hop[];
  probe?: { supported: boolean; mismatch?: boolean; mismatchDetail?: string };
}

export interface TraceResult {
  code: number | null;
  json?: TraceJson;
  stdout: string;
  stderr: string;
}

/** kubectl against the lab's control plane (HOME: a scratch directory); asserts it succeeded. */
export function labKubectl(state: ClusterState, home: string, input: string | undefined, ...args: string[]): string {
  const result = spawnSync('/usr/bin/kubectl', args, { encoding: 'utf8', input, timeout: 120_000, env: { ...process.env, KUBECONFIG: state.controlPlane?.kubeconfig ?? '', HOME: home } });
  assert.equal(result.status, 0, `kubectl ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** `pontoon trace ARGS --cluster NAME --json`: its exit code, output, and JSON when it printed some. */
export function labTrace(state: ClusterState, ...args: string[]): TraceResult {
  const result = spawnSync(process.execPath, [cliPath(), 'trace', ...args, '--cluster', state.name, '--json'], { encoding: 'utf8', timeout: 60_000 });
  let json: TraceJson | undefined;
  try {
    json = JSON.parse(result.stdout) as TraceJson;
  } catch {
    // no JSON (bad arguments): the failure is in stderr
  }
  return { code: result.status, ...(json ? { json } : {}), stdout: result.stdout, stderr: result.stderr };
}
