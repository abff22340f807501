/** `pontoon scheduler`: binds pods without a node to the best feasible node. */
import type { Command } from 'commander';
import { clientFromFlags } from '../client/client.js';
import { PontoonError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { DEFAULT_SCHEDULER_NAME, Scheduler } from '../scheduler/scheduler.js';

export class SchedulerFlagError extends PontoonError {}

interface SchedulerFlags {
  kubeconfig?: string;
  server?: string;
  token?: string;
  tokenFile?: string;
  schedulerName: string;
  unschedulableRetry: string;
  logLevel: string;
}

export function registerScheduler(program: Command): void {
  program
    .command('scheduler')
    .description('schedule pods: filter (ready, resources, nodeSelector, taints), score (least allocated, spread), bind')
    .option('--kubeconfig <path>', 'kubeconfig with the apiserver address and credentials')
    .option('--server <url>', 'apiserver URL (http://, https:// or unix:/path) when no kubeconfig is given')
    .option('--token <token>', 'bearer token')
    .option('--token-file <path>', 'file holding the bearer token')
    .option('--scheduler-name <name>', 'schedule pods whose spec.schedulerName is this', DEFAULT_SCHEDULER_NAME)
    .option('--unschedulable-retry <seconds>', 'retry unschedulable pods at least this often', '60')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: SchedulerFlags) => {
      const log = createLogger('scheduler', { level: flags.logLevel });
      const retry = Number(flags.unschedulableRetry);
      if (!Number.isFinite(retry) || retry <= 0) throw new SchedulerFlagError(`--unschedulable-retry must be a positive number of seconds, got "${flags.unschedulableRetry}"`);
      const api = clientFromFlags(
        { kubeconfig: flags.kubeconfig, server: flags.server, token: flags.token, tokenFile: flags.tokenFile },
        'pontoon-scheduler',
      );
      const scheduler = new Scheduler({ api, log, schedulerName: flags.schedulerName, unschedulableRetrySeconds: retry, resyncSeconds: 600 });
      const shutdown = (signal: string): void => {
        log.info({ signal }, 'stopping');
        void scheduler.stop().finally(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      await scheduler.start();
    });
}
