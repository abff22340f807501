/**
 * `pontoon bgp --config FILE`: a standalone BGP speaker (our codec, FSM and RIB) that peers
 * with any router and installs its best routes into this namespace's kernel.
 * `pontoon bgp status` / `pontoon bgp routes` ask a running speaker over its control socket.
 */
import type { Command } from 'commander';
import { loadBgpConfig, DEFAULT_CONTROL_SOCKET } from '../bgp/config.js';
import { controlRequest, formatRoutes, formatStatus, type RouteView, type SpeakerStatus } from '../bgp/control.js';
import { KernelRoutes } from '../bgp/kernel.js';
import { Speaker } from '../bgp/speaker.js';
import { createLogger } from '../lib/log.js';
import { Rtnl } from '../lib/netlink/rtnl.js';
import { stopOnSignals } from './daemon.js';

interface SocketFlags {
  config?: string;
  socket?: string;
  json?: boolean;
}

function socketOf(flags: SocketFlags): string {
  if (flags.socket) return flags.socket;
  if (flags.config) return loadBgpConfig(flags.config).controlSocket;
  return DEFAULT_CONTROL_SOCKET;
}

export function registerBgp(program: Command): void {
  const bgp = program
    .command('bgp')
    .description('BGP speaker: peers with routers (BIRD, GoBGP, FRR, ToR switches), reflects routes, installs best routes')
    .option('--config <file>', 'speaker configuration (YAML; see the README)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: { config?: string; logLevel: string }) => {
      if (!flags.config) {
        bgp.help({ error: true });
        return;
      }
      const config = loadBgpConfig(flags.config);
      const log = createLogger('bgp', { level: flags.logLevel });
      const rtnl = config.kernelSync ? new Rtnl() : undefined;
      // Routes of ours in the kernel at start mean we restarted with forwarding state kept.
      const restarting = rtnl !== undefined && config.gracefulRestart.enabled && new KernelRoutes(rtnl, { log }).dump().length > 0;
      const speaker = new Speaker({ config, log, ...(rtnl ? { rtnl } : {}), restarting });
      await speaker.start();
      // SIGTERM: a restart is expected (systemd, a DaemonSet rollout), so leave without Cease and
      // keep our routes: peers that negotiated graceful restart keep forwarding to us.
      stopOnSignals(log, 'stopping the BGP speaker (graceful restart: routes stay)', () => speaker.stop(config.gracefulRestart.enabled));
    });

  bgp
    .command('status')
    .description('peers of a running speaker, like `birdc show protocols`')
    .option('--config <file>', 'read the control socket path from this configuration')
    .option('--socket <path>', `control socket (default ${DEFAULT_CONTROL_SOCKET})`)
    .option('--json', 'print JSON')
    .action(async (flags: SocketFlags) => {
      const status = (await controlRequest(socketOf(flags), 'status')) as SpeakerStatus;
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    });

  bgp
    .command('routes')
    .description('the Loc-RIB of a running speaker: the best route per prefix')
    .option('--config <file>', 'read the control socket path from this configuration')
    .option('--socket <path>', `control socket (default ${DEFAULT_CONTROL_SOCKET})`)
    .option('--json', 'print JSON')
    .action(async (flags: SocketFlags) => {
      const routes = (await controlRequest(socketOf(flags), 'routes')) as RouteView[];
      process.stdout.write(flags.json ? `${JSON.stringify(routes, null, 2)}\n` : formatRoutes(routes));
    });
}
