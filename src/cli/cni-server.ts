/** `pontoon cni-server`: serves pontoon-bridge-shim's invocations (src/cni-plugin/server.ts). */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { startCniServer } from '../cni-plugin/server.js';
import { DEFAULT_CNI_SOCKET } from '../cni/thick.js';
import { createLogger } from '../lib/log.js';
import { stopOnSignals } from './daemon.js';

export function registerCniServer(program: Command): void {
  program
    .command('cni-server')
    .description('run our CNI plugins (pontoon-bridge, pontoon-flannel) for their shims and the kubelet over a unix socket (a "thick" plugin: no Node start per ADD)')
    .option('--socket <path>', 'unix socket the shims connect to (a shim reads the network config\'s "serverSocket", else PONTOON_CNI_SOCKET)', DEFAULT_CNI_SOCKET)
    .option('--exit-with-stdin', 'exit when standard input closes (a parent that holds the other end, like the kubelet, died)', false)
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: { socket: string; exitWithStdin: boolean; logLevel: string }) => {
      const log = createLogger('cni-server', { level: flags.logLevel });
      mkdirSync(dirname(flags.socket), { recursive: true });
      const server = await startCniServer({ socketPath: flags.socket, log });
      stopOnSignals(log, 'stopping', () => server.close());
      if (flags.exitWithStdin) {
        process.stdin.on('data', () => undefined);
        process.stdin.once('close', () => {
          log.info('standard input closed: the parent is gone; stopping');
          void server.close().finally(() => process.exit(0));
        });
      }
      log.info({ socket: flags.socket }, 'serving');
    });
}
