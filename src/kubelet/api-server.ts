/**
 * The kubelet's API on TCP (upstream's `--port` 10250, `--address`), over TLS with a serving
 * certificate the cluster CA signed for the node's InternalIP. It serves what the unix
 * socket serves (containerLogs, exec/attach/portForward upgrades, /healthz) plus /pods and
 * /metrics, behind upstream's kubelet authn/authz answers:
 *
 *   - authentication: a client certificate that verifies against `--client-ca-file`; its CN
 *     is the user and its O entries the groups (x509 request authenticator). Nothing else
 *     authenticates — no anonymous access and no bearer tokens (upstream with
 *     --anonymous-auth=false and no token webhook): 401 "Unauthorized".
 *   - authorization: the caller must hold the API's admin rights, which here means group
 *     system:masters (the apiserver's kubelet-client certificate has it, as kubeadm's did);
 *     anyone else gets upstream's 403 text, "Forbidden (user=…, verb=…, resource=nodes,
 *     subresource=…)".
 *
 * The handshake requests a certificate but does not require one, as Go's
 * tls.RequestClientCert: a client without one, or with one no CA vouches for, reaches the
 * HTTP layer and is told 401 instead of seeing a failed handshake.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../lib/log.js';

export const DEFAULT_KUBELET_PORT = 10250;
/** The group whose members may use the kubelet API (the apiserver's kubelet-client identity). */
export const KUBELET_API_ADMIN_GROUP = 'system:masters';

export interface KubeletServingOptions {
  /** `--address`: the IP to listen on (0.0.0.0: every address of the node's namespace). */
  address: string;
  /** `--port`: 10250. */
  port: number;
  /** `--tls-cert-file`, `--tls-private-key-file`: the serving certificate and its key (PEM). */
  certFile: string;
  keyFile: string;
  /** `--client-ca-file`: the CA client certificates must chain to. */
  clientCaFile: string;
}

export interface KubeletUser {
  name: string;
  groups: string[];
}

export type KubeletAuth = { ok: true; user: KubeletUser } | { ok: false; code: 401 | 403; message: string };

/** The x509 request authenticator: the verified peer certificate's CN and O entries. */
export function authenticate(req: IncomingMessage): KubeletUser | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return undefined;
  const subject = socket.getPeerCertificate().subject as Record<string, string | string[] | undefined> | undefined;
  const name = subject?.['CN'];
  if (typeof name !== 'string' || name === '') return undefined;
  const organizations = subject?.['O'];
  return { name, groups: organizations === undefined ? [] : Array.isArray(organizations) ? organizations : [organizations] };
}

/** Upstream's attributes for a kubelet request (pkg/kubelet/server/auth.go): verb from the method, subresource from the path. */
export function requestAttributes(method: string, path: string): { verb: string; subresource: string } {
  const verbs: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  const under = (prefix: string): boolean => path === prefix || path.startsWith(`${prefix}/`);
  const subresource = under('/stats') ? 'stats' : under('/metrics') ? 'metrics' : under('/logs') ? 'log' : under('/checkpoint') ? 'checkpoint' : under('/healthz') ? 'healthz' : 'proxy';
  return { verb: verbs[method.toUpperCase()] ?? method.toLowerCase(), subresource };
}

export function authorizeRequest(req: IncomingMessage): KubeletAuth {
  const user = authenticate(req);
  if (!user) return { ok: false, code: 401, message: 'Unauthorized' };
  if (user.groups.includes(KUBELET_API_ADMIN_GROUP)) return { ok: true, user };
  const path = new URL(req.url ?? '/', 'https://kubelet').pathname;
  const { verb, subresource } = requestAttributes(req.method ?? 'GET', path);
  return { ok: false, code: 403, message: `Forbidden (user=${user.name}, verb=${verb}, resource=nodes, subresource=${subresource})` };
}

export class KubeletApiServer {
  private server: Server | undefined;

  constructor(
    private readonly options: KubeletServingOptions,
    private readonly handlers: {
      request: (req: IncomingMessage, res: ServerResponse) => void;
      upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
    },
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { options } = this;
    const server = createServer(
      {
        cert: readFileSync(options.certFile),
        key: readFileSync(options.keyFile),
        ca: readFileSync(options.clientCaFile),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        const auth = authorizeRequest(req);
        if (!auth.ok) {
          this.log.debug({ url: req.url, code: auth.code, why: auth.message }, 'kubelet API request refused');
          res.writeHead(auth.code, { 'Content-Type': 'text/plain; charset=utf-8' });
          return void res.end(auth.message);
        }
        this.handlers.request(req, res);
      },
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const auth = authorizeRequest(req);
      if (!auth.ok) {
        socket.on('error', () => socket.destroy());
        const text = auth.code === 401 ? 'Unauthorized' : 'Forbidden';
        return void socket.end(`HTTP/1.1 ${auth.code} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(auth.message)}\r\nConnection: close\r\n\r\n${auth.message}`);
      }
      this.handlers.upgrade(req, socket, head);
    });
    // Exec sessions and followed logs are long-lived; only idle keep-alive connections time out.
    server.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.log.info({ address: options.address, port: this.port() }, 'kubelet API serving over TLS');
  }

  /** The bound port (the configured one, or the kernel's pick for port 0). */
  port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
