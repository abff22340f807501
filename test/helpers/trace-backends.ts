/**
 * The lab behind test/debug/trace-*.test.ts: `pontoon trace` on the backends trace-lab.test.ts
 * does not build (it runs vxlan + nftables). Each variant is its own test file so each lab gets
 * the runner's whole per-file time budget. In each lab every pod pair and pod → Service pair
 * must arrive, agree with `--probe` (a real packet captured on every hop), and show the
 * encapsulation the backend really uses between those two nodes — none for plain routing, IPIP
 * only between racks for cross-subnet.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify as toYaml } from 'yaml';
import type { IpipMode } from '../../src/bgp/node-agent.js';
import { type BackendName, clusterDown, type ClusterState, findNode, type ProxyChoice } from '../../src/cli/cluster/cluster.js';
import { testCluster, waitUntil } from './cluster.js';
import { ECHO, labKubectl, labTrace, type TraceResult } from './trace.js';

export interface TraceVariant {
  title: string;
  backend: BackendName;
  proxy: ProxyChoice;
  nodes: number;
  racks: number;
  ipip?: IpipMode;
  routeReflectors?: number;
  /** What the encap hop of a packet from `from` to `to` must say (undefined: no encap hop). */
  encap: (from: string, to: string, rackOf: (node: string) => number) => RegExp | undefined;
}

/** One lab for `variant`: every pod pair and pod → Service pair traced, with and against `--probe`. */
export function traceBackendSuite(variant: TraceVariant): void {
  describe(`pontoon trace in the lab (${variant.title})`, () => {
    let state: ClusterState;
    let home: string;
    /** pod name → node name */
    const placement = new Map<string, string>();

    const kubectl = (input: string | undefined, ...args: string[]): string => labKubectl(state, home, input, ...args);
    const trace = (...args: string[]): TraceResult => labTrace(state, ...args);

    before(async () => {
      home = mkdtempSync(join(tmpdir(), 'pontoon-trace-'));
      state = await testCluster(variant.backend, {
        nodes: variant.nodes,
        racks: variant.racks,
        pods: 0,
        controlPlane: true,
        proxy: variant.proxy,
        ...(variant.ipip ? { ipip: variant.ipip } : {}),
        ...(variant.routeReflectors !== undefined ? { routeReflectors: variant.routeReflectors } : {}),
      });
      // Two pods on n1 (same-node pair), one on each other node.
      const wanted: [string, string][] = [['a', 'n1'], ['c', 'n1'], ...state.nodes.slice(1).map((n, i): [string, string] => [`p${i + 2}`, n.name])];
      const objects: Record<string, unknown>[] = wanted.map(([name, node]) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, labels: { app: 'web', node } },
        spec: {
          nodeName: node,
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'echo', image: 'pontoon/echo', command: [process.execPath, ECHO, name, '8080'], ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }],
        },
      }));
      // web: every pod (the kernel picks one, local or remote, per probe); far: only n2's pod,
      // so every probe from n1 through a Service crosses the backend's encapsulation.
      const service = (name: string, selector: Record<string, string>): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } });
      objects.push(service('web', { app: 'web' }), service('far', { app: 'web', node: 'n2' }));
      kubectl(objects.map((o) => toYaml(o)).join('---\n'), 'apply', '-f', '-');
      kubectl(undefined, 'wait', '--for=condition=Ready', ...wanted.map(([name]) => `pod/${name}`), '--timeout=120s');
      for (const [name, node] of wanted) placement.set(name, node);
      // Routes are learned (BGP sessions up) and the proxy has the endpoints once these arrive.
      await waitUntil('every node reachable and the Services programmed', 60_000, () => [...placement.keys()].every((p) => p === 'a' || trace('pod/a', `pod/${p}`, '--port', '8080').code === 0) && trace('pod/a', 'svc/web').code === 0 && trace('pod/a', 'svc/far').code === 0);
    });

    after(async () => {
      if (state) await clusterDown(state.name);
      if (home) rmSync(home, { recursive: true, force: true });
    });

    test('every pod pair and pod → Service pair arrives, matches --probe, and shows the encapsulation the backend uses', () => {
      const rackOf = (node: string): number => findNode(state, node).rack;
      const pods = [...placement.keys()];
      const failures: string[] = [];
      for (const from of pods) {
        for (const to of [...pods.filter((p) => p !== from), 'svc/web', 'svc/far']) {
          const isService = to.startsWith('svc/');
          const target = isService ? to : `pod/${to}`;
          const result = trace(`pod/${from}`, target, '--probe', ...(isService ? [] : ['--port', '8080']));
          const label = `${from} → ${target}`;
          if (result.code !== 0 || result.json?.probe?.mismatch !== false) {
            failures.push(`${label}: exit ${result.code}, probe ${result.json?.probe?.mismatchDetail ?? JSON.stringify(result.json?.probe)}\n${result.stdout.slice(0, 2000)}${result.stderr}`);
            continue;
          }
          if (isService) continue; // the endpoint the probe took decides the path; pod pairs check encapsulation
          const encaps = (result.json?.hops ?? []).filter((h) => h.step === 'encap');
          const expected = variant.encap(placement.get(from) ?? '', placement.get(to) ?? '', rackOf);
          if (!expected && encaps.length > 0) failures.push(`${label}: expected no encapsulation, got ${encaps.map((h) => h.detail).join('; ')}`);
          if (expected && !(encaps.length === 1 && expected.test(encaps[0]?.detail ?? ''))) failures.push(`${label}: expected one encap hop matching ${String(expected)}, got ${JSON.stringify(encaps.map((h) => h.detail))}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  });
}
