/**
 * The userspace IPIP tunnel as a process of its own (`pontoon bgp ipip`), apart from the BGP
 * speaker that feeds it, the way kernel IPIP is apart from BIRD: restarting the speaker (an
 * upgrade, a graceful restart) must not stop the data path, and a userspace tunnel dies with
 * its process. The speaker tells the tunnel its peer table over a unix socket, one JSON line
 * per full table: `{"peers":[["10.244.2.0/24","198.18.1.12"],…]}` → `{"ok":true}`.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createConnection, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { PontoonError } from '../../lib/errors.js';
import { serveLines } from '../../lib/line-socket.js';
import { formatIp, formatIpNet, type Ip, type IpNet, parseIp, parseIpNet } from '../../lib/ip.js';
import type { IpipTunnel } from './tunnel.js';

export class IpipDaemonError extends PontoonError {}

type PeerLine = { peers: [string, string][] };

/** Serves a running tunnel's peer table on `path`. */
export function serveIpipControl(path: string, tunnel: IpipTunnel): Promise<Server> {
  return serveLines(path, (line) => {
    try {
      const request = JSON.parse(line) as PeerLine;
      tunnel.setPeers(request.peers.map(([block, underlay]) => ({ block: parseIpNet(block), underlay: parseIp(underlay) })));
      return JSON.stringify({ ok: true, peers: request.peers.length });
    } catch (err) {
      return JSON.stringify({ ok: false, error: String(err) });
    }
  });
}

/** The speaker's side: one connection to the tunnel process, full tables written to it. */
export class IpipControlClient {
  private constructor(private readonly socket: Socket) {}

  static connect(path: string, timeoutMs = 2000): Promise<IpipControlClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      const timer = setTimeout(() => socket.destroy(new Error('timeout')), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.on('error', () => undefined);
        socket.on('data', () => undefined);
        resolve(new IpipControlClient(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  setPeers(peers: ReadonlyMap<string, { block: IpNet; underlay: Ip }>): void {
    const line: PeerLine = { peers: [...peers.values()].map((p) => [formatIpNet(p.block), formatIp(p.underlay)]) };
    this.socket.write(`${JSON.stringify(line)}\n`);
  }

  close(): void {
    this.socket.end();
  }
}

/**
 * Connects to the tunnel process at `path`, starting it (detached, in this namespace, its
 * output in ipip.log beside the socket) when none answers.
 */
export async function ensureIpipDaemon(path: string, args: { cli: string; underlay: Ip; block: IpNet }): Promise<IpipControlClient> {
  try {
    return await IpipControlClient.connect(path);
  } catch {
    // not running: start it
  }
  mkdirSync(dirname(path), { recursive: true });
  const log = openSync(join(dirname(path), 'ipip.log'), 'a');
  const child = spawn(process.execPath, [args.cli, 'bgp', 'ipip', '--underlay', formatIp(args.underlay), '--block', formatIpNet(args.block), '--socket', path], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await IpipControlClient.connect(path);
    } catch (err) {
      if (child.exitCode !== null) throw new IpipDaemonError(`failed to start the IPIP tunnel process: it exited with ${child.exitCode} (see ${join(dirname(path), 'ipip.log')})`);
      if (Date.now() > deadline) throw new IpipDaemonError(`failed to reach the IPIP tunnel process at "${path}": ${String(err)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
