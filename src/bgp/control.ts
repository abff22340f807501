/**
 * The speaker's control socket, what `pontoon bgp status` and `pontoon bgp routes` talk to
 * (birdc's socket, calicoctl's node status). A unix stream socket; one JSON request per line
 * (`{"command":"status"}`), one JSON reply per line (`{"ok":true,"result":…}` or
 * `{"ok":false,"error":"…"}`). The socket file is created mode 0600: it is root's interface.
 */
import { rmSync } from 'node:fs';
import { createConnection, type Server } from 'node:net';
import { PontoonError } from '../lib/errors.js';
import { serveLines } from '../lib/line-socket.js';

export interface PeerStatus {
  readonly address: string;
  readonly asn: number;
  readonly type: 'ibgp' | 'ebgp';
  /** how the peer relates to us: mesh, rr-client, rr (we are its client), tor, or a description */
  readonly role: string;
  readonly state: string;
  /** ISO time of the last state change */
  readonly since: string;
  readonly prefixesReceived: number;
  readonly prefixesAccepted: number;
  readonly prefixesSent: number;
  readonly updatesIn: number;
  readonly updatesOut: number;
  readonly lastError: string;
  /** routes kept stale through the peer's graceful restart */
  readonly staleRoutes: number;
}

export interface SpeakerStatus {
  readonly asn: number;
  readonly routerId: string;
  readonly clusterId?: string;
  readonly listen?: string;
  readonly peers: readonly PeerStatus[];
  readonly rib: { readonly ipv4: number; readonly ipv6: number };
}

export interface RouteView {
  readonly prefix: string;
  readonly nextHop: string;
  readonly asPath: string;
  readonly origin: string;
  readonly localPref?: number;
  readonly med?: number;
  readonly from: string;
  readonly communities?: readonly string[];
  readonly originatorId?: string;
  readonly clusterList?: readonly string[];
  readonly stale?: boolean;
}

export type ControlHandlers = Record<string, () => unknown>;

export class ControlError extends PontoonError {}

export class ControlServer {
  private server: Server | undefined;

  constructor(
    readonly path: string,
    private readonly handlers: ControlHandlers,
  ) {}

  async listen(): Promise<void> {
    this.server = await serveLines(this.path, (line) => JSON.stringify(answer(line, this.handlers)), { maxLineBytes: 65536 });
  }

  close(): void {
    this.server?.close();
    rmSync(this.path, { force: true });
  }
}

function answer(line: string, handlers: ControlHandlers): { ok: true; result: unknown } | { ok: false; error: string } {
  let command: unknown;
  try {
    command = (JSON.parse(line) as { command?: unknown }).command;
  } catch {
    return { ok: false, error: 'request is not JSON' };
  }
  const handler = typeof command === 'string' && Object.hasOwn(handlers, command) ? handlers[command] : undefined;
  if (!handler) return { ok: false, error: `unknown command ${JSON.stringify(command)} (known: ${Object.keys(handlers).join(', ')})` };
  try {
    return { ok: true, result: handler() };
  } catch (err) {
    return { ok: false, error: String(err) };
  }
}

/** One request to a running speaker. */
export function controlRequest(path: string, command: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlError(`failed to query BGP speaker at "${path}": no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(new ControlError(`failed to reach BGP speaker at "${path}": ${err.message} (is \`pontoon bgp\` running with this controlSocket?)`));
    });
    socket.on('connect', () => socket.write(`${JSON.stringify({ command })}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const at = buffered.indexOf('\n');
      if (at < 0) return;
      clearTimeout(timer);
      socket.end();
      const reply = JSON.parse(buffered.slice(0, at)) as { ok: boolean; result?: unknown; error?: string };
      if (reply.ok) resolve(reply.result);
      else reject(new ControlError(`BGP speaker refused "${command}": ${reply.error ?? 'unknown error'}`));
    });
  });
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/** `pontoon bgp status`, in the spirit of `birdc show protocols` and `calicoctl node status`. */
export function formatStatus(status: SpeakerStatus): string {
  const established = status.peers.filter((p) => p.state === 'Established').length;
  const head = `BGP speaker AS ${status.asn}, router id ${status.routerId}${status.clusterId ? `, route reflector (cluster id ${status.clusterId})` : ''}${status.listen ? `, listening on ${status.listen}` : ''}\n` + `${status.peers.length} peer(s), ${established} established; Loc-RIB ${status.rib.ipv4} IPv4 and ${status.rib.ipv6} IPv6 prefixes\n`;
  const rows = [['PEER', 'ASN', 'TYPE', 'ROLE', 'STATE', 'SINCE', 'RECEIVED', 'ACCEPTED', 'SENT', 'LAST ERROR']];
  for (const p of status.peers) {
    rows.push([p.address, String(p.asn), p.type, p.role, p.state, p.since, String(p.prefixesReceived), `${p.prefixesAccepted}${p.staleRoutes ? ` (${p.staleRoutes} stale)` : ''}`, String(p.prefixesSent), p.lastError || '-']);
  }
  return `${head}\n${table(rows)}\n`;
}

/** `pontoon bgp routes`: the Loc-RIB, best route per prefix. */
export function formatRoutes(routes: readonly RouteView[]): string {
  const rows = [['PREFIX', 'NEXT HOP', 'AS PATH', 'ORIGIN', 'LOCAL PREF', 'MED', 'FROM', 'REFLECTED']];
  for (const r of routes) {
    const reflected = r.originatorId ? `originator ${r.originatorId}, clusters ${(r.clusterList ?? []).join(' ')}` : '-';
    rows.push([r.prefix, r.nextHop, r.asPath || '(local)', r.origin, r.localPref === undefined ? '-' : String(r.localPref), r.med === undefined ? '-' : String(r.med), `${r.from}${r.stale ? ' (stale)' : ''}`, reflected]);
  }
  return `${table(rows)}\n`;
}
