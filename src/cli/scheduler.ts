/** `pontoon scheduler`: binds pods without a node to the best feasible node. */
import type { Command } from 'commander';
import { clientFromFlags, type ClientFlags } from '../client/client.js';
import { PontoonError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { DEFAULT_SCHEDULER_NAME, Scheduler } from '../scheduler/scheduler.js';
import { Registry } from 'prom-client';
import { startTelemetry, stopOnSignals, TELEMETRY_DEFAULTS, withClientOptions, withTelemetryOption } from './daemon.js';

export class SchedulerFlagError extends PontoonError {}

interface SchedulerFlags extends ClientFlags {
  schedulerName: string;
  unschedulableRetry: string;
  logLevel: string;
  metricsBindAddress: string;
}

export function registerScheduler(program: Command): void {
  withTelemetryOption(withClientOptions(program.command('scheduler').description('schedule pods: filter (ready, resources, nodeSelector, taints), score (least allocated, spread), bind')), TELEMETRY_DEFAULTS.scheduler)
    .option('--scheduler-name <name>', 'schedule pods whose spec.schedulerName is this', DEFAULT_SCHEDULER_NAME)
    .option('--unschedulable-retry <seconds>', 'retry unschedulable pods at least this often', '60')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: SchedulerFlags) => {
      const log = createLogger('scheduler', { level: flags.logLevel });
      const retry = Number(flags.unschedulableRetry);
      if (!Number.isFinite(retry) || retry <= 0) throw new SchedulerFlagError(`--unschedulable-retry must be a positive number of seconds, got "${flags.unschedulableRetry}"`);
      const api = clientFromFlags(flags, 'pontoon-scheduler');
      const scheduler = new Scheduler({ api, log, schedulerName: flags.schedulerName, unschedulableRetrySeconds: retry, resyncSeconds: 600 });
      // Healthy once its informers listed: before that it cannot schedule anything.
      let started = false;
      const telemetry = await startTelemetry('scheduler', flags.metricsBindAddress, new Registry(), () => ({ healthy: started, detail: started ? 'ok' : 'informers not synced yet' }));
      stopOnSignals(log, 'stopping', async () => {
        telemetry?.close();
        await scheduler.stop();
      });
      // A daemon that fails to start must exit (and say why): the telemetry listener would
      // otherwise keep the process alive, serving metrics for a daemon that is not running.
      await scheduler.start().catch((err: unknown) => {
        telemetry?.close();
        throw err;
      });
      started = true;
    });
}
