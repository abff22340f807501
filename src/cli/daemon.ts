/**
 * What the long-running commands that talk to the apiserver share: the client flags
 * (`--kubeconfig`, or `--server` with a token; read by `clientFromFlags`) and stopping on
 * SIGTERM or SIGINT.
 */
import type { Command } from 'commander';
import { PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';

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
