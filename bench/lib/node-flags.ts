/**
 * The node flags a deploy template runs a daemon with — its `command:
 * ["{{NODE}}", <flags>..., "{{PONTOON}}", "<subcommand>", ...]` — so a bench starts the
 * daemon the way a cluster does, and `--node-flags` overrides them for an A/B run.
 */
import { readDeployTemplate } from '../../src/cli/cluster/agents.js';
import { BenchError } from './run.js';

export function deployedNodeFlags(template: string, subcommand: string): string[] {
  for (const match of readDeployTemplate(template).matchAll(/command:\s*\["\{\{NODE\}\}",(.*?)"\{\{PONTOON\}\}",\s*"([^"]+)"/g)) {
    if (match[2] === subcommand) return [...(match[1] ?? '').matchAll(/"([^"]+)"/g)].map((m) => m[1] ?? '');
  }
  throw new BenchError(`deploy/${template} has no command: ["{{NODE}}", ..., "{{PONTOON}}", "${subcommand}", ...] to take node flags from`);
}

/** `--node-flags` as given (split on blanks; '' is none), else the deployed ones. */
export function nodeFlagsFor(override: string | undefined, template: string, subcommand: string): string[] {
  return override === undefined ? deployedNodeFlags(template, subcommand) : override.split(/\s+/).filter(Boolean);
}
