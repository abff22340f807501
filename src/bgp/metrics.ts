/**
 * The speaker's Prometheus metrics: sessions by state, prefixes per peer, UPDATEs in and
 * out, Loc-RIB size. Gauges are collected from the speaker's own counters at scrape time
 * (`collect`), so the packet path never touches prom-client.
 */
import { Gauge, Registry } from 'prom-client';
import type { SpeakerStatus } from './control.js';

export class BgpMetrics {
  readonly registry = new Registry();

  constructor(status: () => SpeakerStatus) {
    const registers = [this.registry];
    new Gauge({
      name: 'pontoon_bgp_sessions',
      help: 'BGP sessions by FSM state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const state of ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established']) counts.set(state, 0);
        for (const peer of status().peers) counts.set(peer.state, (counts.get(peer.state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
    const perPeer = (name: string, help: string, pick: (p: SpeakerStatus['peers'][number]) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers,
        collect() {
          this.reset();
          for (const peer of status().peers) this.set({ peer: peer.address }, pick(peer));
        },
      });
    };
    // One series per peer with its state as a label (like kube_pod_status_phase), so a
    // dashboard or `pontoon status` reads state, role and since without the control socket.
    new Gauge({
      name: 'pontoon_bgp_peer_info',
      help: 'Always 1 per configured peer; labels: address, AS, ibgp/ebgp, role and FSM state',
      labelNames: ['peer', 'asn', 'type', 'role', 'state'],
      registers,
      collect() {
        this.reset();
        for (const peer of status().peers) this.set({ peer: peer.address, asn: String(peer.asn), type: peer.type, role: peer.role, state: peer.state }, 1);
      },
    });
    perPeer('pontoon_bgp_peer_state_change_timestamp_seconds', 'When the session last changed state', (p) => Date.parse(p.since) / 1000 || 0);
    perPeer('pontoon_bgp_prefixes_received', 'Prefixes in the Adj-RIB-In of a peer', (p) => p.prefixesReceived);
    perPeer('pontoon_bgp_prefixes_accepted', 'Prefixes of a peer accepted by import policy', (p) => p.prefixesAccepted);
    perPeer('pontoon_bgp_prefixes_advertised', 'Prefixes advertised to a peer', (p) => p.prefixesSent);
    perPeer('pontoon_bgp_updates_received', 'UPDATE messages received from a peer in this process (a counter read at scrape time)', (p) => p.updatesIn);
    perPeer('pontoon_bgp_updates_sent', 'UPDATE messages sent to a peer in this process (a counter read at scrape time)', (p) => p.updatesOut);
    new Gauge({
      name: 'pontoon_bgp_rib_prefixes',
      help: 'Prefixes in the Loc-RIB by address family',
      labelNames: ['family'],
      registers,
      collect() {
        const rib = status().rib;
        this.set({ family: 'ipv4' }, rib.ipv4);
        this.set({ family: 'ipv6' }, rib.ipv6);
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
