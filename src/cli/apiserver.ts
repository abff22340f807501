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
  authorizationMode: string;
  listenNetns?: string;
  advertiseAddress?: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCaFile?: string;
  serviceCidr: string;
  serviceNodePortRange: string;
  eventTtl: string;
  serviceAccountSigningKeyFile?: string;
  serviceAccountKeyFile: string[];
  serviceAccountIssuer?: string;
  apiAudiences?: string;
  disableAdmissionPlugins: string;
  kubeletClientCertificate?: string;
  kubeletClientKey?: string;
  kubeletCertificateAuthority?: string;
  kubeletNetns?: string;
  logLevel: string;
}

const ADMISSION_PLUGINS = ['ServiceAccount'];

export function registerApiserver(program: Command): void {
  program
    .command('apiserver')
    .description('Kubernetes API server: REST, watch and discovery over a SQLite or etcd store')
    .option('--store <url>', 'sqlite:/path.db, sqlite::memory:, memory: or etcd://host:port[,host:port]', DEFAULT_APISERVER_STORE)
    .option('--listen <host:port>', 'TCP address (HTTPS with --tls-cert/--tls-key, else HTTP); "none" for the socket only', DEFAULT_APISERVER_LISTEN)
    .option('--socket <path>', 'also serve plain HTTP on this unix socket (reachable from node network namespaces)')
    .option('--listen-netns <path:port>', 'also serve on every address of this network namespace (e.g. /run/netns/lab-ctl:6443), the socket bound inside it')
    .option('--advertise-address <ip:port>', 'the endpoint of the default/kubernetes Service: an address pods reach this apiserver at')
    .option('--tokens-file <path>', 'static bearer tokens (token,user,uid,"groups"); without it a request without a token is the admin')
    .option('--authorization-mode <mode>', 'Node,RBAC (Node authorizer, then RBAC) or AlwaysAllow', 'Node,RBAC')
    .option('--tls-cert <path>', 'server certificate (PEM)')
    .option('--tls-key <path>', 'server private key (PEM)')
    .option('--client-ca-file <path>', 'CA bundle (PEM): a client certificate it verifies authenticates as CN (user) and O (groups)')
    .option('--service-cidr <cidrs>', 'range(s) Service cluster IPs come from: one CIDR, or v4,v6 / v6,v4 for dual-stack (primary first)', DEFAULT_SERVICE_CIDR)
    .option('--service-node-port-range <first-last>', 'range NodePort Services use', DEFAULT_NODE_PORT_RANGE)
    .option('--event-ttl <seconds>', 'how long Events are kept', String(DEFAULT_EVENT_TTL_SECONDS))
    .option('--service-account-signing-key-file <path>', 'PEM private key (EC P-256 or RSA) service-account tokens are signed with; without it an in-memory key')
    .option(
      '--service-account-key-file <path>',
      'PEM file with keys tokens may be signed with (the controller-manager\'s); repeatable',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--service-account-issuer <url>', 'iss claim of service-account tokens', 'https://kubernetes.default.svc.cluster.local')
    .option('--api-audiences <list>', 'comma list of audiences a token must name (default: the issuer)')
    .option('--disable-admission-plugins <list>', `admission plugins to turn off: ${ADMISSION_PLUGINS.join(', ')}`, '')
    .option('--kubelet-client-certificate <path>', 'client certificate (PEM) presented to kubelets on their TLS port (pods/log, exec, attach, port-forward)')
    .option('--kubelet-client-key <path>', 'its private key (PEM)')
    .option('--kubelet-certificate-authority <path>', 'CA (PEM) that kubelets\' serving certificates are checked against')
    .option('--kubelet-netns <path>', 'network namespace connections to kubelets leave from (e.g. the lab\'s ctl namespace, /run/netns/lab-ctl)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (flags: ApiserverFlags) => {
      const log = createLogger('apiserver', { level: flags.logLevel });
      if (!!flags.tlsCert !== !!flags.tlsKey) throw new FlagError('--tls-cert and --tls-key go together');
      if (!!flags.kubeletClientCertificate !== !!flags.kubeletClientKey) throw new FlagError('--kubelet-client-certificate and --kubelet-client-key go together');
      const eventTtlSeconds = Number(flags.eventTtl);
      if (!Number.isFinite(eventTtlSeconds) || eventTtlSeconds <= 0) throw new FlagError(`--event-ttl must be a positive number of seconds, got "${flags.eventTtl}"`);
      const disabled = flags.disableAdmissionPlugins.split(',').map((p) => p.trim()).filter(Boolean);
      for (const plugin of disabled) {
        if (!ADMISSION_PLUGINS.includes(plugin)) throw new FlagError(`unknown admission plugin "${plugin}" in --disable-admission-plugins; known: ${ADMISSION_PLUGINS.join(', ')}`);
      }
      const modes = new Map<string, 'RBAC' | 'AlwaysAllow'>([['Node,RBAC', 'RBAC'], ['RBAC,Node', 'RBAC'], ['RBAC', 'RBAC'], ['AlwaysAllow', 'AlwaysAllow']]);
      const authorizationMode = modes.get(flags.authorizationMode.replace(/\s+/g, ''));
      if (!authorizationMode) throw new FlagError(`--authorization-mode must be Node,RBAC or AlwaysAllow, got "${flags.authorizationMode}"`);
      const server = await startApiServer({
        store: flags.store,
        authorizationMode,
        listen: flags.listen === 'none' ? false : flags.listen,
        serviceCidr: flags.serviceCidr,
        nodePortRange: flags.serviceNodePortRange,
        eventTtlSeconds,
        log,
        serviceAccountAdmission: !disabled.includes('ServiceAccount'),
        serviceAccountKeyFiles: flags.serviceAccountKeyFile,
        ...(flags.serviceAccountSigningKeyFile ? { serviceAccountSigningKeyFile: flags.serviceAccountSigningKeyFile } : {}),
        ...(flags.serviceAccountIssuer ? { serviceAccountIssuer: flags.serviceAccountIssuer } : {}),
        ...(flags.apiAudiences ? { apiAudiences: flags.apiAudiences.split(',').map((a) => a.trim()).filter(Boolean) } : {}),
        ...(flags.socket ? { socketPath: flags.socket } : {}),
        ...(flags.listenNetns ? { netnsListen: parseNetnsListen(flags.listenNetns) } : {}),
        ...(flags.advertiseAddress ? { advertise: parseEndpoint(flags.advertiseAddress, '--advertise-address') } : {}),
        ...(flags.tokensFile ? { tokensFile: flags.tokensFile } : {}),
        ...(flags.tlsCert && flags.tlsKey ? { tlsCertFile: flags.tlsCert, tlsKeyFile: flags.tlsKey } : {}),
        kubeletClient: {
          ...(flags.kubeletClientCertificate ? { clientCertFile: flags.kubeletClientCertificate } : {}),
          ...(flags.kubeletClientKey ? { clientKeyFile: flags.kubeletClientKey } : {}),
          ...(flags.kubeletCertificateAuthority ? { certificateAuthorityFile: flags.kubeletCertificateAuthority } : {}),
          ...(flags.kubeletNetns ? { netnsPath: flags.kubeletNetns } : {}),
        },
        ...(flags.clientCaFile ? { clientCaFile: flags.clientCaFile } : {}),
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

function parseEndpoint(text: string, flag: string): { address: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) throw new FlagError(`${flag} must be ip:port, got "${text}"`);
  return { address: match[1] ?? match[2] ?? '', port };
}

function parseNetnsListen(text: string): { netnsPath: string; port: number } {
  const at = text.lastIndexOf(':');
  const port = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new FlagError(`--listen-netns must be <netns path>:<port>, got "${text}"`);
  return { netnsPath: text.slice(0, at), port };
}
