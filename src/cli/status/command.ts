/** Registers `pontoon status` and `pontoon topology`. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FlagError } from '../daemon.js';
import { renderDot } from './dot.js';
import { renderStatus } from './render.js';
import { gatherSnapshot, problemsOf } from './snapshot.js';
import { sourceFor } from './sources.js';
import { renderSvg } from './svg.js';
import { topologyOf } from './topology-model.js';

interface SourceFlags {
  kubeconfig?: string;
  cluster?: string;
  controlPlaneHost?: string;
  timeout: string;
}

function withSourceOptions(command: Command): Command {
  return command
    .option('--kubeconfig <path>', 'the cluster’s kubeconfig (default $KUBECONFIG); a lab’s (/run/pontoon/NAME/kubeconfig) means that lab')
    .option('--cluster <name>', 'a namespace lab by name (pontoon cluster up --name)')
    .option('--control-plane-host <ip>', 'real clusters: where the controller-manager and scheduler listen (default: the apiserver’s host)')
    .option('--timeout <ms>', 'per-daemon answer timeout', '2000');
}

function timeoutOf(text: string): number {
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms <= 0) throw new FlagError(`--timeout must be a positive number of milliseconds, got "${text}"`);
  return ms;
}

export function registerStatus(program: Command): void {
  withSourceOptions(program.command('status').description('one screen: every node’s lease, backend, daemon health, BGP peers, proxy sync; the control plane'))
    .option('--json', 'print the snapshot as JSON')
    .action(async (flags: SourceFlags & { json?: boolean }) => {
      const snapshot = await gatherSnapshot(sourceFor({ ...flags, timeout: timeoutOf(flags.timeout) }));
      process.stdout.write(flags.json ? `${JSON.stringify(snapshot, null, 2)}\n` : renderStatus(snapshot));
      // Scripts and probes can act on it: 1 when anything is not healthy.
      process.exitCode = problemsOf(snapshot).length === 0 ? 0 : 1;
    });

  withSourceOptions(program.command('topology').description('racks, nodes, subnets, tunnels, BGP sessions, Services → endpoints, as Graphviz dot or SVG'))
    .option('--dot', 'print Graphviz dot on stdout')
    .option('--svg <file>', 'write an SVG drawing to FILE ("-": stdout)')
    .option('--graphviz', 'with --svg: lay out with `dot -Tsvg` (Graphviz) instead of the built-in grid')
    .option('--json', 'print the topology model as JSON')
    .action(async (flags: SourceFlags & { dot?: boolean; svg?: string; graphviz?: boolean; json?: boolean }) => {
      if (!flags.dot && !flags.svg && !flags.json) throw new FlagError('pontoon topology needs --dot, --svg FILE or --json');
      const model = topologyOf(await gatherSnapshot(sourceFor({ ...flags, timeout: timeoutOf(flags.timeout) })));
      if (flags.json) process.stdout.write(`${JSON.stringify(model, null, 2)}\n`);
      if (flags.dot) process.stdout.write(renderDot(model));
      if (flags.svg) {
        let svg: string;
        if (flags.graphviz) {
          const result = spawnSync('dot', ['-Tsvg'], { input: renderDot(model), encoding: 'utf8', maxBuffer: 64 << 20 });
          if (result.error || result.status !== 0) throw new FlagError(`--graphviz: dot -Tsvg failed (is graphviz installed?): ${result.error ? String(result.error) : result.stderr}`);
          svg = result.stdout;
        } else {
          svg = renderSvg(model);
        }
        if (flags.svg === '-') process.stdout.write(svg);
        else writeFileSync(flags.svg, svg);
      }
    });
}
