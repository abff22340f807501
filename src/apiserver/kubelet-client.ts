/**
 * How the apiserver reaches a node's kubelet for `pods/log`, `exec`, `attach` and
 * `portforward`, as upstream's kubelet client (pkg/kubelet/client):
 *
 *   - over TLS to the Node's InternalIP at `status.daemonEndpoints.kubeletEndpoint.Port`
 *     (10250), verifying the kubelet's serving certificate with `--kubelet-certificate-authority`
 *     and presenting `--kubelet-client-certificate`/`--kubelet-client-key`, so the kubelet
 *     knows the caller is the apiserver;
 *   - or, when the Node advertises no port (a single-host lab kubelet with only its socket),
 *     over the unix socket in its `pontoon.dev/kubelet-socket` annotation.
 *
 * The apiserver process lives in the root network namespace, which has no route to the
 * fabric (and must not get one). `--kubelet-netns` names the namespace to dial from (a lab's
 * `ctl`, where the apiserver also listens): the TCP socket is created inside it and keeps it
 * (see tcpSocketIn), so the connection leaves from 198.18.0.2 on the fabric.
 *
 * Plain requests (logs) go through a keep-alive agent, as upstream's pooled transport: a TLS
 * handshake per `kubectl logs` made the TLS path 3.2x the socket's (41 vs 13 ms median,
 * bench/kubelet-api.ts); pooled it is on a par (9.4 vs 9.5 ms). Upgrades (exec, attach, port-forward) take a connection of their
 * own, which is never reused.
 */
import { readFileSync } from 'node:fs';
import { type ClientRequest, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions, request as httpsRequest, type RequestOptions } from 'node:https';
import { isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connect as unixConnect, type Socket } from 'node:net';
import type { KubeObject } from '../api/meta.js';
import { RESOURCE } from '../api/resources.js';
import type { Node, Pod } from '../api/types.js';
import { describeError } from '../lib/errors.js';
import { tcpSocketIn } from '../lib/netns.js';
import type { Registry } from './registry.js';
import { badRequest, notFound, serviceUnavailable } from './status.js';

export const KUBELET_SOCKET_ANNOTATION = 'pontoon.dev/kubelet-socket';

/** Where one kubelet answers. */
export type KubeletEndpoint =
  | { nodeName: string; kind: 'tls'; host: string; port: number }
  | { nodeName: string; kind: 'socket'; socketPath: string };

export function describeEndpoint(endpoint: KubeletEndpoint): string {
  return endpoint.kind === 'tls' ? `https://${isIPv6(endpoint.host) ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}` : endpoint.socketPath;
}

/** Upstream's --kubelet-client-certificate, --kubelet-client-key, --kubelet-certificate-authority. */
export interface KubeletClientOptions {
  clientCertFile?: string;
  clientKeyFile?: string;
  certificateAuthorityFile?: string;
  /** The network namespace (path) connections to kubelets leave from. */
  netnsPath?: string;
}

/** An https agent whose TCP sockets are created in another network namespace. */
class NamespacedTlsAgent extends HttpsAgent {
  constructor(
    private readonly netnsPath: string | undefined,
    options: AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: RequestOptions): Duplex {
    const host = options.host ?? '';
    const raw = tcpSocketIn(this.netnsPath, isIPv6(host));
    raw.connect(Number(options.port), host);
    return tlsConnect({ ...(options as ConnectionOptions), socket: raw, host });
  }
}

export class KubeletClient {
  private readonly cert: Buffer | undefined;
  private readonly key: Buffer | undefined;
  private readonly ca: Buffer | undefined;
  private readonly agent: NamespacedTlsAgent;

  constructor(private readonly options: KubeletClientOptions = {}) {
    this.cert = options.clientCertFile ? readFileSync(options.clientCertFile) : undefined;
    this.key = options.clientKeyFile ? readFileSync(options.clientKeyFile) : undefined;
    this.ca = options.certificateAuthorityFile ? readFileSync(options.certificateAuthorityFile) : undefined;
    // Idle connections close after a while: kubelets come and go, and a pool must not pin them.
    this.agent = new NamespacedTlsAgent(options.netnsPath, {
      keepAlive: true,
      maxSockets: 32,
      timeout: 30_000,
      ...(this.ca ? { ca: this.ca } : {}),
      ...(this.cert && this.key ? { cert: this.cert, key: this.key } : {}),
    });
  }

  /**
   * A GET to the kubelet on a pooled connection. Connection and TLS failures arrive as the
   * request's 'error' event, as any http request's.
   */
  get(endpoint: KubeletEndpoint, path: string, onResponse: (answer: IncomingMessage) => void): ClientRequest {
    if (endpoint.kind === 'socket') return httpRequest({ socketPath: endpoint.socketPath, path, method: 'GET', headers: { Host: 'kubelet' } }, onResponse);
    if (!this.ca) throw serviceUnavailable(`failed to reach the kubelet of node ${endpoint.nodeName} at ${describeEndpoint(endpoint)}: the apiserver has no --kubelet-certificate-authority to verify the kubelet with`);
    return httpsRequest({ agent: this.agent, host: endpoint.host, port: endpoint.port, path, method: 'GET' }, onResponse);
  }

  /** Closes pooled connections (the apiserver is stopping). */
  close(): void {
    this.agent.destroy();
  }

  /** The node a pod is bound to and how its kubelet is reached. */
  async endpointOf(registry: Registry, pod: Pod): Promise<KubeletEndpoint> {
    const nodeName = pod.spec?.nodeName;
    if (!nodeName) throw badRequest(`pod ${pod.metadata.name ?? ''} does not have a host assigned`);
    let node: KubeObject;
    try {
      node = await registry.get(RESOURCE.nodes, undefined, nodeName);
    } catch {
      throw notFound(RESOURCE.nodes, nodeName);
    }
    const status = (node as Node).status;
    const port = status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 0;
    const internalIP = status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    if (port > 0 && internalIP) return { nodeName, kind: 'tls', host: internalIP, port };
    const socketPath = node.metadata.annotations?.[KUBELET_SOCKET_ANNOTATION];
    if (socketPath) return { nodeName, kind: 'socket', socketPath };
    throw serviceUnavailable(`node ${nodeName} advertises no kubelet endpoint (status.daemonEndpoints.kubeletEndpoint.Port with an InternalIP, or annotation ${KUBELET_SOCKET_ANNOTATION})`);
  }

  /**
   * A connected stream to the kubelet, TLS established and the kubelet's certificate checked
   * against the CA and its InternalIP. Failures are 503s naming the endpoint.
   */
  async dial(endpoint: KubeletEndpoint): Promise<Socket | TLSSocket> {
    const fail = (err: unknown): never => {
      throw serviceUnavailable(`failed to reach the kubelet of node ${endpoint.nodeName} at ${describeEndpoint(endpoint)}: ${describeError(err)}`);
    };
    if (endpoint.kind === 'socket') {
      const socket = unixConnect(endpoint.socketPath);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }).catch(fail);
      return socket;
    }
    if (!this.ca) fail(new Error('the apiserver has no --kubelet-certificate-authority to verify the kubelet with'));
    let raw: Socket;
    try {
      raw = tcpSocketIn(this.options.netnsPath, isIPv6(endpoint.host));
    } catch (err) {
      return fail(err);
    }
    raw.connect(endpoint.port, endpoint.host);
    // `host` (not servername: SNI takes no IP) is what the certificate's IP SAN is checked against.
    const socket = tlsConnect({ socket: raw, host: endpoint.host, ca: this.ca, ...(this.cert && this.key ? { cert: this.cert, key: this.key } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    }).catch((err: unknown) => {
      socket.destroy();
      fail(err);
    });
    return socket;
  }
}
