/** `pontoon apiserver`: the Kubernetes API over a SQLite or etcd store. */
import type { Command } from 'commander';
import { createLogger } from '../lib/log.js';
import { FlagError } from './daemon.js';
import { DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR } from '../apiserver/kinds/service-ips.js';
import { DEFAULT_EVENT_TTL_SECONDS } from '../apiserver/event-ttl.js';
import { startApiServer } from '../apiserver/server.js';

export const DEFAULT_APISERVER_STORE = 'sqlite:/var/lib/pontoon/apiserver.db';
export const DEFAULT_APISERVER_LISTEN = '127.0.0.1:6443';

interface ApiserverFlags {
  store: string;
  listen: string;
  socket?: string;
  tokensFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  serviceCidr: string;
  serviceNodePortRange: string;
  eventTtl: string;
  logLevel: string;
}

export function registerApiserver(program: Command): void {
  program
    .command('apiserver')
    .description('Kubernetes API server: REST, watch and discovery over a SQLite or etcd store')
    .option('--store <url>', 'sqlite:/path.db, sqlite::memory:, memory: or etcd://host:port[,host:port]', DEFAULT_APISERVER_STORE)
    .option('--listen <host:port>', 'TCP address (HTTPS with --tls-cert/--tls-key, else HTTP); "none" for the socket only', DEFAULT_APISERVER_LISTEN)
    .option('--socket <path>', 'also serve plain HTTP on this unix socket (reachable from node network namespaces)')
    .option('--tokens-file <path>', 'static bearer tokens (token,user,uid,"groups"); without it every request is allowed')
    .option('--tls-cert <path>', 'server certificate (PEM)')
    .option('--tls-key <path>', 'server private key (PEM)')
    .option('--service-cidr <cidr>', 'range Service cluster IPs come from', DEFAULT_SERVICE_CIDR)
    .option('--service-node-port-range <first-last>', 'range NodePort Services use', DEFAULT_NODE_PORT_RANGE)
    .option('--event-ttl <seconds>', 'how long Events are kept', String(DEFAULT_EVENT_TTL_SECONDS))
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: ApiserverFlags) => {
      const log = createLogger('apiserver', { level: flags.logLevel });
      if (!!flags.tlsCert !== !!flags.tlsKey) throw new FlagError('--tls-cert and --tls-key go together');
      const eventTtlSeconds = Number(flags.eventTtl);
      if (!Number.isFinite(eventTtlSeconds) || eventTtlSeconds <= 0) throw new FlagError(`--event-ttl must be a positive number of seconds, got "${flags.eventTtl}"`);
      const server = await startApiServer({
        store: flags.store,
        listen: flags.listen === 'none' ? false : flags.listen,
        serviceCidr: flags.serviceCidr,
        nodePortRange: flags.serviceNodePortRange,
        eventTtlSeconds,
        log,
        ...(flags.socket ? { socketPath: flags.socket } : {}),
        ...(flags.tokensFile ? { tokensFile: flags.tokensFile } : {}),
        ...(flags.tlsCert && flags.tlsKey ? { tlsCertFile: flags.tlsCert, tlsKeyFile: flags.tlsKey } : {}),
      });
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'stopping');
        server.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'unclean shutdown');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
}
