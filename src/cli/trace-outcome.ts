/** What a trace computed, shared by the trace command and its --probe. */
import type { L4Proto, TraceResult } from '../debug/trace/packet.js';

export interface Resolved {
  label: string;
  kind: 'pod' | 'svc' | 'node' | 'ip';
  ip: string;
  /** The node the address lives on (pods, nodes). */
  node?: string;
  /** pods: the name for messages */
  name?: string;
  port?: number;
  proto?: L4Proto;
  /** svc: endpoints (ready addresses) and their nodes */
  endpoints?: { ip: string; node?: string }[];
}

export interface TraceOutcome {
  result: TraceResult;
  src: Resolved;
  dst: Resolved;
  sources: Record<string, string>;
  fetchMs: number;
  walkMs: number;
  request: { proto: L4Proto; dport?: number };
  /** A Service: the path through each other candidate endpoint (the kernel picks at random). */
  variants: { endpoint: string; result: TraceResult }[];
  /** The destination pod's sandbox namespace, when the destination is a pod on a read node. */
  dstPodNetns?: string;
}
