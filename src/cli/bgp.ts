/**
 * `pontoon bgp --config FILE`: a standalone BGP speaker (our codec, FSM and RIB) that peers
 * with any router and installs its best routes into this namespace's kernel.
 * `pontoon bgp status` / `pontoon bgp routes` ask a running speaker over its control socket.
 */
import { type DebugFlags, startDebugEndpoint } from './debug-endpoint.js';
import { BGP_DEBUG_PORT } from '../debug/netstate.js';
import type { Command } from 'commander';
import { DEFAULT_CONTROL_SOCKET, isValidHoldTime, loadBgpConfig } from '../bgp/config.js';
import { controlRequest, formatRoutes, formatStatus, type RouteView, type SpeakerStatus } from '../bgp/control.js';
import { KernelRoutes } from '../bgp/kernel.js';
import { serveIpipControl } from '../bgp/ipip/daemon.js';
import { IpipTunnel } from '../bgp/ipip/index.js';
import { networkOf, parseIp, parseIpNet, tryParseIp } from '../lib/ip.js';
import { Speaker } from '../bgp/speaker.js';
import { createLogger } from '../lib/log.js';
import { Rtnl } from '../lib/netlink/rtnl.js';
import { BGP_TOPOLOGIES, type BgpTopology, DEFAULT_TOR_ASN, IPIP_MODES, type IpipMode, NodeAgent } from '../bgp/node-agent.js';
import { clientFromFlags, type ClientFlags } from '../client/client.js';
import { FlagError, stopOnSignals, withClientOptions } from './daemon.js';
import { parseBindAddress } from './proxy.js';

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

  withClientOptions(
    bgp
      .command('node')
      .description('the speaker as the cluster backend: peers, announcements and routes from Node objects (Calico-style)'),
  )
    .requiredOption('--node-name <name>', 'this node')
    .option('--ipip <mode>', `encapsulation towards other nodes: ${IPIP_MODES.join(', ')}`, 'cross-subnet')
    .option('--control-socket <path>', 'control socket for `pontoon bgp status`', DEFAULT_CONTROL_SOCKET)
    .option('--ipip-socket <path>', 'socket of the IPIP tunnel process (started when missing; it outlives this agent)', '/run/pontoon/ipip.sock')
    .option('--metrics-bind-address <host:port>', 'Prometheus /metrics (empty: off)', '127.0.0.1:9179')
    .option('--hold-time <seconds>', 'BGP hold time', '90')
    .option('--topology <kind>', `peering: ${BGP_TOPOLOGIES.join(', ')} (mesh: full mesh or route reflectors by Node label; tor: eBGP with the rack's router only)`, 'mesh')
    .option('--tor-peer <ip>', "topology tor: the rack router's address (it connects to us)")
    .option('--tor-asn <asn>', 'topology tor: the rack router\'s AS number', String(DEFAULT_TOR_ASN))
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .option('--debug-address <host:port>', `read-only GET /debug/netstate for pontoon trace ("off" disables)`, `0.0.0.0:${BGP_DEBUG_PORT}`)
    .option('--pod-netns-prefix <prefix>', 'only namespaces with this name prefix are this node’s pods, for /debug/netstate')
    .action(async (flags: ClientFlags & DebugFlags & { nodeName: string; ipip: string; controlSocket: string; ipipSocket: string; metricsBindAddress: string; holdTime: string; topology: string; torPeer?: string; torAsn: string; logLevel: string }) => {
      if (!(IPIP_MODES as readonly string[]).includes(flags.ipip)) throw new FlagError(`--ipip must be one of ${IPIP_MODES.join(', ')}, got "${flags.ipip}"`);
      if (!(BGP_TOPOLOGIES as readonly string[]).includes(flags.topology)) throw new FlagError(`--topology must be one of ${BGP_TOPOLOGIES.join(', ')}, got "${flags.topology}"`);
      const torAsn = Number(flags.torAsn);
      if (!Number.isInteger(torAsn) || torAsn < 1 || torAsn > 0xffffffff) throw new FlagError(`--tor-asn must be an integer in 1..4294967295, got "${flags.torAsn}"`);
      const torAddress = flags.torPeer === undefined ? undefined : tryParseIp(flags.torPeer);
      if (flags.torPeer !== undefined && !torAddress) throw new FlagError(`--tor-peer must be an IP address, got "${flags.torPeer}"`);
      if (flags.topology === 'tor' && !torAddress) throw new FlagError('--topology tor needs --tor-peer <ip> (the rack router)');
      const holdTimeSeconds = Number(flags.holdTime);
      if (!isValidHoldTime(holdTimeSeconds)) throw new FlagError(`--hold-time must be 0 or 3..65535 seconds, got "${flags.holdTime}"`);
      const log = createLogger('bgp', { level: flags.logLevel });
      const agent = new NodeAgent({
        api: clientFromFlags(flags, `pontoon-bgp/${flags.nodeName}`),
        nodeName: flags.nodeName,
        rtnl: new Rtnl(),
        ipip: flags.ipip as IpipMode,
        controlSocket: flags.controlSocket,
        ipipSocket: flags.ipipSocket,
        cli: process.argv[1] ?? '',
        ...(flags.metricsBindAddress ? { metricsAddress: parseBindAddress(flags.metricsBindAddress, '--metrics-bind-address') } : {}),
        holdTimeSeconds,
        topology: flags.topology as BgpTopology,
        ...(torAddress ? { torPeer: { address: torAddress, asn: torAsn } } : {}),
        log,
      });
      await agent.start();
      const debug = await startDebugEndpoint(flags, flags.nodeName, log);
      stopOnSignals(log, 'stopping the BGP node agent (graceful restart: routes stay)', () => (debug?.close(), agent.stop(true)));
    });

  bgp
    .command('ipip')
    .description('the userspace IPIP tunnel (TUN + raw sockets) for kernels without ipip; `bgp node` starts it and feeds it peers')
    .requiredOption('--underlay <ip>', "this node's underlay address (the outer source)")
    .requiredOption('--block <cidr>', "this node's pod block (the tunnel device's address is its first)")
    .requiredOption('--socket <path>', 'where the node agent sends the peer table')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: { underlay: string; block: string; socket: string; logLevel: string }) => {
      const log = createLogger('ipip', { level: flags.logLevel });
      const tunnel = new IpipTunnel({ underlayAddress: parseIp(flags.underlay), block: networkOf(parseIpNet(flags.block)) });
      await tunnel.start();
      const server = await serveIpipControl(flags.socket, tunnel);
      log.info({ device: tunnel.deviceName, mtu: tunnel.mtu, underlay: flags.underlay, block: flags.block }, 'IPIP tunnel running');
      stopOnSignals(log, 'stopping the IPIP tunnel', async () => {
        server.close();
        await tunnel.stop();
      });
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
