/**
 * The OPEN half of the FSM, kept apart from the state handlers because it is pure policy:
 * what our OPEN says, whether the peer's is acceptable (RFC 4271 §6.2), what the two sides
 * agreed on (RFC 5492 capability negotiation), and which of two colliding connections
 * survives (RFC 4271 §6.8, RFC 6286 §2.3).
 */
import {
  afiSafiOf,
  ERROR_CODE,
  type Capability,
  type Family,
  type NotificationMessage,
  OPEN_SUBCODE,
  type OpenMessage,
  type PeerType,
} from './types.js';

export const BGP_VERSION = 4;

export interface GracefulRestartOptions {
  /** how long the peer should keep our routes while we restart (RFC 4724 §3), ≤ 4095 */
  readonly restartTimeSeconds: number;
  /** set the R bit: we are a speaker that has just restarted (RFC 4724 §4.1) */
  readonly restarting?: boolean;
  /** set the F bit for every family: our forwarding state survived the restart */
  readonly forwardingPreserved?: boolean;
}

/** What our side of the session is, as far as the OPEN is concerned. */
export interface LocalSpeaker {
  readonly localAsn: number;
  readonly peerAsn: number;
  readonly routerId: number;
  readonly holdTimeSeconds: number;
  readonly families: readonly Family[];
  readonly gracefulRestart?: GracefulRestartOptions;
}

/** The peer's Graceful Restart capability, as the speaker needs it to keep routes stale. */
export interface PeerGracefulRestart {
  readonly restarting: boolean;
  readonly restartTimeSeconds: number;
  readonly families: readonly { readonly family: Family; readonly forwardingPreserved: boolean }[];
}

export type Direction = 'outgoing' | 'incoming';

/** What both OPENs together decided, fixed for the life of the session. */
export interface NegotiatedSession {
  readonly peerAsn: number;
  readonly peerRouterId: number;
  readonly peerType: PeerType;
  /** who opened the TCP connection that survived */
  readonly direction: Direction;
  /** min(ours, theirs); 0 means no hold timer and no keepalives */
  readonly holdTimeSeconds: number;
  readonly keepaliveMs: number;
  /** families both sides advertised (RFC 4760: no multiprotocol capability means IPv4 unicast) */
  readonly families: readonly Family[];
  /** both sides sent the 4-octet ASN capability (RFC 6793) */
  readonly fourOctetAsn: boolean;
  /** the peer accepts ROUTE-REFRESH (RFC 2918) */
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  /** the peer's GR capability; present only when we advertised GR too, i.e. GR is negotiated */
  readonly gracefulRestart?: PeerGracefulRestart;
  readonly peerOpen: OpenMessage;
}

export function buildOpen(local: LocalSpeaker): OpenMessage {
  const capabilities: Capability[] = local.families.map((family) => ({ code: 'multiprotocol', family }));
  capabilities.push({ code: 'route-refresh' }, { code: 'four-octet-asn', asn: local.localAsn });
  const gr = local.gracefulRestart;
  if (gr) {
    capabilities.push({
      code: 'graceful-restart',
      restarting: gr.restarting ?? false,
      restartTimeSeconds: gr.restartTimeSeconds,
      families: local.families.map((family) => ({ family, forwardingPreserved: gr.forwardingPreserved ?? false })),
    });
  }
  return { type: 'open', version: BGP_VERSION, asn: local.localAsn, holdTimeSeconds: local.holdTimeSeconds, routerId: local.routerId, capabilities };
}

export function notification(code: number, subcode: number, data: Uint8Array = new Uint8Array(0)): NotificationMessage {
  return { type: 'notification', code, subcode, data };
}

export type OpenCheck = { readonly ok: true; readonly negotiated: NegotiatedSession } | { readonly ok: false; readonly notification: NotificationMessage; readonly reason: string };

function refuse(subcode: number, reason: string, data?: Uint8Array): OpenCheck {
  return { ok: false, notification: notification(ERROR_CODE.OPEN_MESSAGE, subcode, data), reason };
}

/** Multiprotocol capabilities as they appear on the wire (RFC 4760 §8), for the 2/7 data field. */
function multiprotocolCapabilityBytes(families: readonly Family[]): Uint8Array {
  const bytes = new Uint8Array(families.length * 6);
  families.forEach((family, i) => {
    const { afi, safi } = afiSafiOf(family);
    bytes.set([1, 4, afi >> 8, afi & 0xff, 0, safi], i * 6);
  });
  return bytes;
}

/** RFC 4271 §6.2 checks, then capability negotiation. */
export function checkOpen(local: LocalSpeaker, open: OpenMessage, direction: Direction): OpenCheck {
  if (open.version !== BGP_VERSION) {
    // The data is the largest version we support, so the peer can retry with it.
    return refuse(OPEN_SUBCODE.UNSUPPORTED_VERSION, `peer speaks BGP version ${open.version}, we speak ${BGP_VERSION}`, new Uint8Array([0, BGP_VERSION]));
  }
  if (open.asn !== local.peerAsn) return refuse(OPEN_SUBCODE.BAD_PEER_AS, `peer says it is AS ${open.asn}, configured as AS ${local.peerAsn}`);
  const peerType: PeerType = open.asn === local.localAsn ? 'ibgp' : 'ebgp';
  if (open.routerId === 0) return refuse(OPEN_SUBCODE.BAD_BGP_IDENTIFIER, 'peer BGP identifier is 0.0.0.0');
  // RFC 6286 §2.2: identifiers must differ within an AS; across ASes they may be equal.
  if (peerType === 'ibgp' && open.routerId === local.routerId) return refuse(OPEN_SUBCODE.BAD_BGP_IDENTIFIER, 'iBGP peer has our own BGP identifier');
  if (open.holdTimeSeconds === 1 || open.holdTimeSeconds === 2) return refuse(OPEN_SUBCODE.UNACCEPTABLE_HOLD_TIME, `peer hold time ${open.holdTimeSeconds} s is neither 0 nor ≥ 3 (RFC 4271 §4.2)`);

  const caps = open.capabilities;
  const advertised = caps.flatMap((cap) => (cap.code === 'multiprotocol' ? [cap.family] : []));
  const peerFamilies: readonly Family[] = advertised.length > 0 ? advertised : ['ipv4-unicast'];
  const families = local.families.filter((family) => peerFamilies.includes(family));
  if (families.length === 0) {
    return refuse(OPEN_SUBCODE.UNSUPPORTED_CAPABILITY, `no address family in common (ours ${local.families.join(', ')}; peer's ${peerFamilies.join(', ')})`, multiprotocolCapabilityBytes(local.families));
  }
  const holdTimeSeconds = Math.min(local.holdTimeSeconds, open.holdTimeSeconds);
  const peerGr = caps.find((cap): cap is Extract<Capability, { code: 'graceful-restart' }> => cap.code === 'graceful-restart');
  const negotiated: NegotiatedSession = {
    peerAsn: open.asn,
    peerRouterId: open.routerId,
    peerType,
    direction,
    holdTimeSeconds,
    // RFC 4271 §4.4: a third of the hold time; ms keeps e.g. hold 10 s from rounding to 3 s.
    keepaliveMs: Math.floor((holdTimeSeconds * 1000) / 3),
    families,
    fourOctetAsn: caps.some((cap) => cap.code === 'four-octet-asn'),
    routeRefresh: caps.some((cap) => cap.code === 'route-refresh' || cap.code === 'enhanced-route-refresh'),
    enhancedRouteRefresh: caps.some((cap) => cap.code === 'enhanced-route-refresh'),
    ...(peerGr && local.gracefulRestart
      ? { gracefulRestart: { restarting: peerGr.restarting, restartTimeSeconds: peerGr.restartTimeSeconds, families: peerGr.families } }
      : {}),
    peerOpen: open,
  };
  return { ok: true, negotiated };
}

/**
 * RFC 4271 §6.8: of two connections with one peer, keep the one opened by the speaker with the
 * higher BGP identifier. RFC 6286 §2.3 breaks a tie (legal between ASes) by the higher AS
 * number. Both sides apply the same rule, so both close the same connection.
 */
export function collisionSurvivor(local: { routerId: number; asn: number }, peer: { routerId: number; asn: number }): Direction {
  if (local.routerId !== peer.routerId) return local.routerId > peer.routerId ? 'outgoing' : 'incoming';
  return local.asn > peer.asn ? 'outgoing' : 'incoming';
}
