/**
 * `pontoon token create|list|delete`: bootstrap tokens on the control plane, as `kubeadm
 * token`. `create --print-join-command` prints the one line a new node runs. The address in
 * it is where nodes reach the apiserver: the `default/kubernetes` endpoint the apiserver
 * advertises (--advertise-address), else the kubeconfig's server; --join-server overrides.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { RESOURCE } from '../api/resources.js';
import type { Endpoints } from '../api/types.js';
import type { KubeApi } from '../client/api.js';
import { KubeClient, loadKubeconfig } from '../client/client.js';
import { FlagError } from './daemon.js';
import { createBootstrapToken, DEFAULT_TOKEN_TTL_SECONDS, deleteBootstrapToken, joinCommand, listBootstrapTokens, parseTtl } from './bootstrap-tokens.js';
import { formatTable } from './table.js';

interface TokenClientFlags {
  kubeconfig?: string;
}

function adminFrom(flags: TokenClientFlags): { api: KubeClient; server: string; caPem?: string } {
  const path = flags.kubeconfig ?? process.env['KUBECONFIG']?.split(':')[0];
  if (!path) throw new FlagError('no kubeconfig: pass --kubeconfig or set KUBECONFIG (the admin kubeconfig `pontoon cluster up` prints)');
  const config = loadKubeconfig(path);
  return { api: new KubeClient({ ...config, userAgent: 'pontoon-token' }), server: config.server, ...(config.ca ? { caPem: config.ca } : {}) };
}

/** `https://<advertised ip>:<port>` from the kubernetes Endpoints, or undefined. */
export async function advertisedServer(api: KubeApi): Promise<string | undefined> {
  const endpoints = await api.get<Endpoints>(RESOURCE.endpoints, 'kubernetes', 'default');
  const subset = endpoints?.subsets?.[0];
  const ip = subset?.addresses?.[0]?.ip;
  const port = subset?.ports?.[0]?.port;
  if (!ip || !port) return undefined;
  return `https://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('bootstrap tokens nodes join with (kubeadm token)');
  token
    .command('create')
    .description('create a bootstrap token (a Secret in kube-system) and publish kube-public/cluster-info')
    .option('--kubeconfig <path>', 'admin kubeconfig (default $KUBECONFIG)')
    .option('--ttl <duration>', 'lifetime, e.g. 24h or 30m; 0 never expires', '24h')
    .option('--description <text>', 'what the token is for')
    .option('--print-join-command', 'print the whole `pontoon join` command, not only the token')
    .option('--join-server <url>', 'the apiserver address nodes use (default: the advertised kubernetes endpoint)')
    .option('--ca-file <path>', 'the cluster CA (default: the kubeconfig\'s)')
    .action(async (flags: TokenClientFlags & { ttl: string; description?: string; printJoinCommand?: boolean; joinServer?: string; caFile?: string }) => {
      const { api, server, caPem: kubeconfigCa } = adminFrom(flags);
      const caPem = flags.caFile ? readFileSync(flags.caFile, 'utf8') : kubeconfigCa;
      if (!caPem) throw new FlagError('the kubeconfig carries no CA: pass --ca-file');
      const joinServer = flags.joinServer ?? (await advertisedServer(api)) ?? server;
      const ttlSeconds = flags.ttl === undefined ? DEFAULT_TOKEN_TTL_SECONDS : parseTtl(flags.ttl);
      const created = await createBootstrapToken(api, {
        ttlSeconds,
        ...(flags.description ? { description: flags.description } : {}),
        clusterInfo: { server: joinServer, caPem },
      });
      console.log(flags.printJoinCommand ? joinCommand(joinServer, created.token, caPem) : created.token);
    });
  token
    .command('list')
    .description('the bootstrap tokens: id, expiry, usages, groups')
    .option('--kubeconfig <path>', 'admin kubeconfig (default $KUBECONFIG)')
    .action(async (flags: TokenClientFlags) => {
      const rows = await listBootstrapTokens(adminFrom(flags).api);
      console.log(formatTable(['TOKEN ID', 'EXPIRES', 'USAGES', 'DESCRIPTION', 'EXTRA GROUPS'], rows.map((r) => [r.id, r.expires, r.usages, r.description || '<none>', r.extraGroups])));
    });
  token
    .command('delete')
    .description('delete bootstrap tokens by id (or whole token)')
    .option('--kubeconfig <path>', 'admin kubeconfig (default $KUBECONFIG)')
    .argument('<tokens...>', 'token ids or tokens')
    .action(async (ids: string[], flags: TokenClientFlags) => {
      const api = adminFrom(flags).api;
      for (const id of ids) {
        const deleted = await deleteBootstrapToken(api, id);
        if (!deleted) throw new FlagError(`bootstrap token "${id.split('.')[0]}" not found`);
        console.log(`bootstrap token "${id.split('.')[0]}" deleted`);
      }
    });
}
