/**
 * Port-forward (protocol `portforward.k8s.io`) over a SPDY session: for every forwarded
 * connection the client opens two streams with the same `requestID` header — `streamType:
 * error` first, then `streamType: data` — both naming the `port`. Once the pair is there we
 * connect to localhost:<port> from inside the pod's network namespace (the socket is created
 * there; see tcpSocketIn) and copy bytes both ways; half-closes pass through (the client's
 * FIN ends our write side to the pod, the pod's FIN ends the data stream). A failed connect is
 * written as text on the error stream, which kubectl prints as "an error occurred forwarding".
 */
import type { Socket } from 'node:net';
import { describeError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { tcpSocketIn } from '../../lib/netns.js';
import { SpdyServerSession, type SpdyStream } from '../../lib/spdy/session.js';
import type { Duplex } from 'node:stream';
import type { PodNetworkTarget } from './target.js';

export const PORTFORWARD_PROTOCOL = 'portforward.k8s.io';
/** kubectl 1.31+ tunnels the SPDY session through a WebSocket with this subprotocol. */
export const PORTFORWARD_WEBSOCKET_PROTOCOL = `SPDY/3.1+${PORTFORWARD_PROTOCOL}`;

interface Pair {
  error?: SpdyStream;
  data?: SpdyStream;
}

function connectIn(netns: string | undefined, host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    try {
      socket = tcpSocketIn(netns, host.includes(':'));
    } catch (err) {
      reject(err);
      return;
    }
    socket.once('error', reject);
    socket.connect(port, host, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** localhost in the pod: IPv4 first, then IPv6, as upstream's runtimes dial "localhost". */
async function connectLocalhost(netns: string | undefined, port: number): Promise<Socket> {
  try {
    return await connectIn(netns, '127.0.0.1', port);
  } catch (v4) {
    try {
      return await connectIn(netns, '::1', port);
    } catch (v6) {
      throw new Error(`failed to connect to localhost:${port} inside namespace of the pod, IPv4: ${describeError(v4)} IPv6: ${describeError(v6)}`);
    }
  }
}

export function servePortForward(transport: Duplex, target: PodNetworkTarget, log: Logger): SpdyServerSession {
  const session = new SpdyServerSession(transport, (message) => log.debug({ pod: `${target.namespace}/${target.pod}`, message }, 'port-forward session failed'));
  const pairs = new Map<string, Pair>();
  session.on('stream', (stream) => {
    session.reply(stream);
    const type = stream.header('streamtype');
    const requestId = stream.header('requestid') ?? '';
    const port = Number(stream.header('port'));
    if ((type !== 'error' && type !== 'data') || !Number.isInteger(port) || port < 1 || port > 65535) {
      stream.end(`invalid port-forward stream: streamType ${type ?? '(none)'}, port ${stream.header('port') ?? '(none)'}`);
      return;
    }
    const pair = pairs.get(requestId) ?? {};
    pair[type] = stream;
    pairs.set(requestId, pair);
    // The error stream is only read by the client: drain whatever it sends (nothing; a FIN).
    if (type === 'error') stream.resume();
    if (!pair.error || !pair.data) return;
    pairs.delete(requestId);
    forward(pair.data, pair.error, target, port, log);
  });
  session.on('close', () => {
    for (const pair of pairs.values()) {
      pair.data?.destroy();
      pair.error?.destroy();
    }
    pairs.clear();
  });
  return session;
}

function forward(data: SpdyStream, error: SpdyStream, target: PodNetworkTarget, port: number, log: Logger): void {
  connectLocalhost(target.netns, port).then(
    (socket) => {
      socket.on('error', () => socket.destroy());
      data.on('error', () => socket.destroy());
      data.pipe(socket);
      socket.pipe(data);
      socket.on('close', () => {
        if (!data.writableEnded) data.end();
        error.end();
      });
      data.on('close', () => socket.destroy());
    },
    (err: unknown) => {
      log.debug({ pod: `${target.namespace}/${target.pod}`, port, err: describeError(err) }, 'port-forward connect failed');
      error.end(describeError(err));
      data.end();
    },
  );
}
