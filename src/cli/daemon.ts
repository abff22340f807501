/**
 * What the long-running commands that talk to the apiserver share: the client flags
 * (`--kubeconfig`, or `--server` with a token; read by `clientFromFlags`) and stopping on
 * SIGTERM or SIGINT.
 */
import type { Command } from 'commander';
import { hasErrno, PontoonError } from '../lib/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../lib/log.js';
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { addProcessMetrics, type HealthReport, parseListenAddress, serveTelemetry } from '../lib/telemetry.js';

/** A command-line flag with a value the command cannot use; the message names the flag. */
export class FlagError extends PontoonError {}

/** Adds the apiserver client flags to `command`, in the order `--help` lists them. */
export function withClientOptions(command: Command): Command {
  return command
    .option('--kubeconfig <path>', 'kubeconfig with the apiserver address and credentials')
    .option('--server <url>', 'apiserver URL (http://, https:// or unix:/path) when no kubeconfig is given')
    .option('--token <token>', 'bearer token')
    .option('--token-file <path>', 'file holding the bearer token');
}

/** On SIGTERM or SIGINT: logs `message`, then exits 0 once `stop` settles, fulfilled or not. */
export function stopOnSignals(log: Logger, message: string, stop: () => Promise<void>): void {
  const shutdown = (signal: NodeJS.Signals): void => {
    log.info({ signal }, message);
    void stop().finally(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

/** The default `/metrics` + `/healthz` address of each daemon (docs/metrics.md has the table). */
export const TELEMETRY_DEFAULTS = {
  'controller-manager': '0.0.0.0:10257',
  scheduler: '0.0.0.0:10259',
  kubelet: '127.0.0.1:10248',
  flanneld: '0.0.0.0:8471',
  bgp: '127.0.0.1:9179',
} as const;

/** Adds `--metrics-bind-address` (serving /metrics and /healthz) with `defaultAddress`. */
export function withTelemetryOption(command: Command, defaultAddress: string): Command {
  return command.option('--metrics-bind-address <address>', '/metrics and /healthz: host:port or unix:/path ("" turns them off)', defaultAddress);
}

/**
 * Serves /metrics and /healthz at `address` (nothing when empty) with the process metrics
 * added to `registry`; a taken address is a startup error naming the flag.
 */
export async function startTelemetry(daemon: string, address: string, registry: Registry, health?: () => HealthReport): Promise<Server | undefined> {
  if (address === '') return undefined;
  const parsed = parseListenAddress(address, '--metrics-bind-address');
  addProcessMetrics(registry, daemon);
  // A predecessor being replaced (a restart, a DaemonSet pod recreated) may hold the port
  // for a moment yet: retry a few seconds before calling the address taken.
  for (let attempt = 0; ; attempt++) {
    try {
      return await serveTelemetry({ address: parsed, registry, ...(health ? { health } : {}) });
    } catch (err) {
      if (attempt < 10 && hasErrno(err, 'EADDRINUSE')) {
        await sleep(500);
        continue;
      }
      throw new FlagError(`cannot listen on --metrics-bind-address ${address}: ${String(err)}`, { cause: err });
    }
  }
}
