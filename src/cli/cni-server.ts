/** `pontoon cni-server`: serves pontoon-bridge-shim's invocations (src/cni-plugin/server.ts). */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CNI_SOCKET, startCniServer } from '../cni-plugin/server.js';
import { createLogger } from '../lib/log.js';
import { stopOnSignals } from './daemon.js';

export function registerCniServer(program: Command): void {
  program
    .command('cni-server')
    .description('run the bridge CNI plugin for pontoon-bridge-shim over a unix socket (a "thick" plugin: no Node start per ADD)')
    .option('--socket <path>', 'unix socket the shim connects to (the shim reads PONTOON_CNI_SOCKET)', DEFAULT_CNI_SOCKET)
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: { socket: string; logLevel: string }) => {
      const log = createLogger('cni-server', { level: flags.logLevel });
      mkdirSync(dirname(flags.socket), { recursive: true });
      const server = await startCniServer({ socketPath: flags.socket, log });
      stopOnSignals(log, 'stopping', () => server.close());
      log.info({ socket: flags.socket }, 'serving');
    });
}
