/**
 * `pontoon trace <src> <dst>`: resolves both ends through the apiserver, fetches the
 * NetStates of the nodes involved from their agents (in parallel), and walks the packet
 * through them (src/debug/trace). Exit 0 when it arrives, 1 when it dies, 2 on bad arguments.
 *
 * `pontoon debug netstate`: one NetState, gathered here (the agent's answer without the
 * agent), for fixtures and for a lab node whose agent is stopped.
 *
 * Reaching the agents: on real hosts the agent listens on the node's address (hostNetwork),
 * so `<InternalIP>:10271`. In the namespace lab the fabric is not reachable from the root
 * namespace, so the request goes out on a socket created inside the node's namespace; and
 * when that node's agent is down (a test stopped flanneld to break its state) the lab reads
 * the namespace directly and says so.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { RESOURCE } from '../api/resources.js';
import type { EndpointSlice, Node, Pod, Service } from '../api/types.js';
import { clientFromFlags, type KubeClient } from '../client/client.js';
import { fetchNetState, type NodeEndpoint } from '../debug/client.js';
import { gatherNetState } from '../debug/gather.js';
import { BGP_DEBUG_PORT, FLANNELD_DEBUG_PORT, type NetState } from '../debug/netstate.js';
import type { L4Proto } from '../debug/trace/packet.js';
import { renderTrace } from '../debug/trace/render.js';
import { type NodeFacts, tracePath, type TraceRequest } from '../debug/trace/walk.js';
import { describeError, PontoonError } from '../lib/errors.js';
import { tryParseIp } from '../lib/ip.js';
import { tcpSocketIn } from '../lib/netns.js';
import { type ClusterState, labPodNetnsPrefix, loadState, STATE_ROOT } from './cluster/state.js';
import { probePath } from './trace-probe.js';
import type { Resolved, TraceOutcome } from './trace-outcome.js';

export type { Resolved, TraceOutcome } from './trace-outcome.js';

/** Bad arguments: exit 2 with one line. */
export class TraceArgumentError extends PontoonError {}

interface TraceFlags {
  port?: string;
  proto: string;
  size?: string;
  json: boolean;
  probe: boolean;
  namespace: string;
  kubeconfig?: string;
  cluster?: string;
  agentPort: string;
}


interface ClusterView {
  nodes: Node[];
  pods: Pod[];
  ipv4: boolean;
}

function internalIp(node: Node): string | undefined {
  return node.status?.addresses?.find((a) => a.type === 'InternalIP' && !a.address.includes(':'))?.address;
}

async function loadView(api: KubeClient): Promise<ClusterView> {
  const [nodes, pods] = await Promise.all([api.list<Node>(RESOURCE.nodes), api.list<Pod>(RESOURCE.pods)]);
  const cidrs = nodes.items.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []));
  return { nodes: nodes.items, pods: pods.items, ipv4: cidrs.length === 0 || cidrs.some((c) => !c.includes(':')) };
}

export async function resolveEnd(api: KubeClient, view: ClusterView, text: string, namespace: string, role: 'source' | 'destination'): Promise<Resolved> {
  const slash = text.indexOf('/');
  const kind = slash > 0 ? text.slice(0, slash) : 'ip';
  const name = slash > 0 ? text.slice(slash + 1) : text;
  if (kind === 'pod' || kind === 'po') {
    const pod = await api.get<Pod>(RESOURCE.pods, name, namespace);
    if (!pod) throw new TraceArgumentError(`pod "${name}" not found in namespace "${namespace}"`);
    const ip = pod.status?.podIPs?.map((p) => p.ip).find((a) => !a.includes(':')) ?? pod.status?.podIP;
    if (!ip || !pod.spec.nodeName) throw new TraceArgumentError(`pod "${namespace}/${name}" has no IPv4 address yet (phase ${pod.status?.phase ?? 'unknown'})`);
    if (pod.spec.hostNetwork) return { label: text, kind: 'node', ip, node: pod.spec.nodeName };
    return { label: text, kind: 'pod', ip, node: pod.spec.nodeName, name: `${namespace}/${name}` };
  }
  if (kind === 'svc' || kind === 'service') {
    if (role === 'source') throw new TraceArgumentError('a Service cannot be the source: give a pod, a node or an IP');
    const [svcName = '', portText] = name.split(':');
    const svc = await api.get<Service>(RESOURCE.services, svcName, namespace);
    if (!svc) throw new TraceArgumentError(`service "${svcName}" not found in namespace "${namespace}"`);
    const ip = (svc.spec.clusterIPs ?? [svc.spec.clusterIP ?? '']).find((a) => a && a !== 'None' && !a.includes(':'));
    if (!ip) throw new TraceArgumentError(`service "${namespace}/${svcName}" has no IPv4 ClusterIP (headless?)`);
    const ports = svc.spec.ports ?? [];
    const port = portText === undefined ? (ports.length === 1 ? ports[0] : undefined) : ports.find((p) => p.name === portText || String(p.port) === portText);
    if (!port) throw new TraceArgumentError(portText === undefined ? `service "${namespace}/${svcName}" has ${ports.length} ports: name one (svc/${svcName}:PORT)` : `service "${namespace}/${svcName}" has no port ${portText} (ports: ${ports.map((p) => p.name ?? p.port).join(', ')})`);
    const slices = await api.list<EndpointSlice>(RESOURCE.endpointslices, namespace, { labelSelector: `kubernetes.io/service-name=${svcName}` });
    const endpoints = slices.items
      .filter((s) => s.addressType === 'IPv4')
      .flatMap((s) => s.endpoints.filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses.map((a) => ({ ip: a, ...(e.nodeName ? { node: e.nodeName } : {}) }))));
    return { label: text, kind: 'svc', ip, port: port.port, proto: (port.protocol ?? 'TCP').toLowerCase() as L4Proto, endpoints, name: `${namespace}/${svcName}` };
  }
  if (kind === 'node' || kind === 'no') {
    const node = view.nodes.find((n) => n.metadata.name === name);
    if (!node) throw new TraceArgumentError(`node "${name}" not found`);
    const ip = internalIp(node);
    if (!ip) throw new TraceArgumentError(`node "${name}" has no IPv4 InternalIP`);
    return { label: text, kind: 'node', ip, node: name };
  }
  if (kind !== 'ip') throw new TraceArgumentError(`cannot trace "${text}": want pod/NAME, svc/NAME[:PORT], node/NAME or an IP address`);
  const ip = tryParseIp(name);
  if (!ip) throw new TraceArgumentError(`"${text}" is not an IP address (or pod/NAME, svc/NAME[:PORT], node/NAME)`);
  if (ip.family === 6 && view.ipv4) throw new TraceArgumentError(`${name} is an IPv6 address and this cluster is IPv4`);
  const pod = view.pods.find((p) => p.status?.podIP === name && !p.spec.hostNetwork);
  if (pod?.spec.nodeName) return { label: text, kind: 'pod', ip: name, node: pod.spec.nodeName, name: `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}` };
  const node = view.nodes.find((n) => n.status?.addresses?.some((a) => a.address === name));
  if (node?.metadata.name) return { label: text, kind: 'node', ip: name, node: node.metadata.name };
  if (role === 'source') throw new TraceArgumentError(`no pod or node has address ${name}: the source must be in the cluster`);
  return { label: text, kind: 'ip', ip: name };
}

/** How to reach each node's agent: over the network, or inside a lab node's namespace. */
export interface AgentAccess {
  endpoints(node: string, nodeIp: string | undefined): NodeEndpoint[];
  /** Lab only: read the node namespace directly when the agent does not answer. */
  direct?: (node: string) => Promise<NetState>;
}

function labAccess(state: ClusterState, agentPort: number): AgentAccess {
  const netnsOf = (node: string): string => {
    const found = state.nodes.find((n) => n.name === node);
    if (!found) throw new TraceArgumentError(`node "${node}" is not a node of lab cluster "${state.name}"`);
    return found.netns;
  };
  return {
    endpoints: (node) => {
      const netns = netnsOf(node);
      return [agentPort, BGP_DEBUG_PORT].map((port) => ({ host: '127.0.0.1', port, createSocket: () => tcpSocketIn(netns, false) }));
    },
    direct: (node) => gatherNetState({ node, netns: netnsOf(node), podNetnsPrefix: labPodNetnsPrefix(state.name, node) }),
  };
}

function networkAccess(agentPort: number): AgentAccess {
  return { endpoints: (_node, ip) => (ip ? [agentPort, BGP_DEBUG_PORT].map((port) => ({ host: ip, port })) : []) };
}

/** The lab cluster a kubeconfig belongs to (/run/pontoon/<name>/kubeconfig), if any. */
function labClusterOf(kubeconfig: string | undefined): string | undefined {
  if (!kubeconfig || dirname(dirname(kubeconfig)) !== STATE_ROOT) return undefined;
  const name = basename(dirname(kubeconfig));
  return existsSync(join(STATE_ROOT, name, 'state.json')) ? name : undefined;
}

export interface Fetched {
  state: NetState;
  how: string;
}

export async function fetchSnapshot(access: AgentAccess, node: string, nodeIp: string | undefined): Promise<Fetched> {
  const failures: string[] = [];
  for (const endpoint of access.endpoints(node, nodeIp)) {
    try {
      return { state: await fetchNetState(endpoint, node, 3000), how: `agent ${endpoint.host}:${endpoint.port}` };
    } catch (err) {
      failures.push(describeError(err));
    }
  }
  if (access.direct) return { state: await access.direct(node), how: 'read directly in the lab namespace: the agent did not answer' };
  throw new PontoonError(`no agent answered for node "${node}": ${failures.join('; ')}`);
}


export async function runTrace(options: { api: KubeClient; access: AgentAccess; src: string; dst: string; namespace: string; port?: number; proto?: L4Proto; size?: number }): Promise<TraceOutcome> {
  const { api } = options;
  const view = await loadView(api);
  const src = await resolveEnd(api, view, options.src, options.namespace, 'source');
  const dst = await resolveEnd(api, view, options.dst, options.namespace, 'destination');
  const proto = options.proto ?? dst.proto ?? 'tcp';
  const port = options.port ?? dst.port ?? (proto === 'icmp' ? undefined : 80);
  if (dst.kind === 'svc' && options.port !== undefined && options.port !== dst.port) throw new TraceArgumentError(`--port ${options.port} differs from the Service port ${dst.port ?? '?'} (name it svc/NAME:PORT)`);
  // Nodes involved: the source's, the destination's, every endpoint's (the walk follows the first).
  const involved = new Set<string>([src.node ?? '', dst.node ?? '', ...(dst.endpoints ?? []).map((e) => e.node ?? view.pods.find((p) => p.status?.podIP === e.ip)?.spec.nodeName ?? '')].filter(Boolean));
  if (dst.kind === 'ip') for (const n of view.nodes) if (n.metadata.name) involved.add(n.metadata.name);
  const started = performance.now();
  const byName = new Map(view.nodes.map((n) => [n.metadata.name ?? '', n]));
  const fetched = await Promise.all(
    [...involved].map(async (name) => {
      const node = byName.get(name);
      return [name, await fetchSnapshot(options.access, name, node ? internalIp(node) : undefined)] as const;
    }),
  );
  const fetchMs = performance.now() - started;
  const nodes = new Map<string, { state: NetState; facts: NodeFacts }>();
  for (const [name, { state }] of fetched) {
    const node = byName.get(name);
    const podCidr = node?.spec?.podCIDR;
    const publicIp = node?.metadata.annotations?.['flannel.alpha.coreos.com/public-ip'] ?? (node ? internalIp(node) : undefined);
    nodes.set(name, { state, facts: { name, ...(podCidr ? { podCidr } : {}), ...(publicIp ? { publicIp } : {}) } });
  }
  const request: TraceRequest = {
    nodes,
    from: src.kind === 'pod' ? { kind: 'pod', node: src.node ?? '', ip: src.ip, name: src.name ?? src.label } : { kind: 'node', node: src.node ?? '' },
    dst: dst.ip,
    proto,
    dstLabel: dst.label,
    podNames: new Map(view.pods.filter((p) => p.status?.podIP && !p.spec.hostNetwork).map((p) => [p.status?.podIP ?? '', `${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}`])),
    ...(port !== undefined && proto !== 'icmp' ? { dport: port } : {}),
    ...(options.size !== undefined ? { size: options.size } : {}),
    ...(dst.kind === 'svc' ? { service: { name: dst.name ?? dst.label, endpoints: (dst.endpoints ?? []).map((e) => e.ip) } } : {}),
  };
  const walkStarted = performance.now();
  const result = tracePath(request);
  const walkMs = performance.now() - walkStarted;
  const candidates = result.hops.find((h) => h.candidates)?.candidates ?? [];
  const chosen = result.hops.find((h) => h.candidates) ? `${result.final.dst}:${result.final.dport ?? ''}` : undefined;
  const variants = [
    ...(chosen ? [{ endpoint: chosen, result }] : []),
    ...candidates.filter((c) => c !== chosen).map((endpoint) => ({ endpoint, result: tracePath({ ...request, preferEndpoint: endpoint }) })),
  ];
  const dstPod = dst.node ? nodes.get(dst.node)?.state.pods.find((p) => p.addresses.some((a) => a.dev === 'eth0' && a.address.split('/')[0] === dst.ip)) : undefined;
  return { variants, request: { proto, ...(request.dport !== undefined ? { dport: request.dport } : {}) }, result, src, dst, sources: Object.fromEntries(fetched.map(([name, f]) => [name, f.how])), fetchMs, walkMs, ...(dstPod ? { dstPodNetns: dstPod.netns } : {}) };
}

function positiveInt(text: string | undefined, flag: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new TraceArgumentError(`${flag} must be an integer 1-${max}, got "${text}"`);
  return value;
}

export function registerTrace(program: Command): void {
  const trace = program
    .command('trace <src> <dst>')
    .description('walk a packet from src to dst through every node’s kernel state and say where and why it dies (pod/NAME, svc/NAME[:PORT], node/NAME or an IP)')
    .option('--port <n>', 'destination port (default: the Service port, else 80)')
    .option('--proto <proto>', 'tcp, udp or icmp (default: the Service port’s, else tcp)')
    .option('--size <bytes>', 'IP packet size checked against every MTU (default: the source pod’s eth0 MTU)')
    .option('--json', 'print the hops as JSON', false)
    .option('--probe', 'also send a real packet and report where it was seen', false)
    .option('-n, --namespace <ns>', 'namespace of pod/ and svc/ names', 'default')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG)')
    .option('--cluster <name>', 'a `pontoon cluster` lab: reach agents inside its node namespaces (default: the lab the kubeconfig belongs to)')
    .option('--agent-port <port>', 'the node agents’ debug port', String(FLANNELD_DEBUG_PORT))
    .action(async (srcText: string, dstText: string, flags: TraceFlags) => {
      try {
        const proto = flags.proto === undefined ? undefined : flags.proto.toLowerCase();
        if (proto !== undefined && proto !== 'tcp' && proto !== 'udp' && proto !== 'icmp') throw new TraceArgumentError(`--proto must be tcp, udp or icmp, got "${flags.proto}"`);
        const port = positiveInt(flags.port, '--port', 65535);
        // --probe sends a SYN (60 bytes), a ping (84) or a small datagram: the computed path it is
        // compared with is that packet's, unless --size says otherwise.
        const probeSize = proto === 'icmp' ? 84 : proto === 'udp' ? 33 : 60;
        const size = positiveInt(flags.size, '--size', 65535) ?? (flags.probe ? probeSize : undefined);
        const agentPort = positiveInt(flags.agentPort, '--agent-port', 65535) ?? FLANNELD_DEBUG_PORT;
        const kubeconfig = flags.kubeconfig ?? process.env['KUBECONFIG'];
        const labName = flags.cluster ?? labClusterOf(kubeconfig);
        const lab = labName ? loadState(labName) : undefined;
        const api = clientFromFlags({ kubeconfig: kubeconfig ?? lab?.controlPlane?.kubeconfig }, 'pontoon-trace');
        const access = lab ? labAccess(lab, agentPort) : networkAccess(agentPort);
        const outcome = await runTrace({ api, access, src: srcText, dst: dstText, namespace: flags.namespace, ...(port !== undefined ? { port } : {}), ...(proto ? { proto: proto as L4Proto } : {}), ...(size !== undefined ? { size } : {}) });
        const probe = flags.probe ? (lab ? await probePath(lab, outcome) : { supported: false as const, why: '--probe needs a lab cluster (it captures in node namespaces)' }) : undefined;
        // Shown is the computed path through the endpoint the kernel really chose.
        const probed = probe?.supported ? outcome.variants.find((v) => v.endpoint === probe.endpoint) : undefined;
        if (probed) outcome.result = probed.result;
        if (flags.json) {
          process.stdout.write(JSON.stringify({ src: outcome.src, dst: outcome.dst, arrived: outcome.result.arrived, hops: outcome.result.hops, endpoints: outcome.variants.map((v) => ({ endpoint: v.endpoint, arrived: v.result.arrived, ...(v.result.arrived ? {} : { died: v.result.hops.at(-1) }) })), final: outcome.result.final, snapshots: outcome.sources, timing: { fetchMs: Math.round(outcome.fetchMs), walkMs: Math.round(outcome.walkMs * 10) / 10 }, ...(probe ? { probe } : {}) }, null, 2) + '\n');
        } else {
          const title = `trace ${outcome.src.label} (${outcome.src.ip}) → ${outcome.dst.label} (${outcome.dst.ip}${outcome.request.dport !== undefined ? `:${outcome.request.dport}` : ''}) ${outcome.request.proto}`;
          process.stdout.write(renderTrace(title, outcome.result));
          for (const [node, how] of Object.entries(outcome.sources)) if (how.startsWith('read directly')) process.stdout.write(`note: ${node}: ${how}\n`);
          if (probe) process.stdout.write(renderProbe(probe));
          if (outcome.variants.length > 1) {
            process.stdout.write(`every endpoint (the kernel picks one per connection):\n`);
            for (const v of outcome.variants) {
              const last = v.result.hops.at(-1);
              process.stdout.write(`  ${v.endpoint.padEnd(22)} ${v.result.arrived ? 'arrives' : `DROPPED on ${last?.node ?? '?'} at ${last?.step ?? '?'}: ${last?.reason ?? ''}`}\n`);
            }
          }
        }
        // A Service works only if every endpoint is reachable: one dead path fails 1/N of the connections.
        const allArrive = outcome.result.arrived && outcome.variants.every((v) => v.result.arrived);
        process.exitCode = allArrive && (!probe || !('mismatch' in probe) || !probe.mismatch) ? 0 : 1;
      } catch (err) {
        if (err instanceof TraceArgumentError) {
          process.stderr.write(`pontoon trace: ${err.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
    });
  trace.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

  const debug = program.command('debug').description('read-only debugging helpers');
  debug
    .command('netstate')
    .description('print this namespace’s (or --netns’s) NetState, the snapshot node agents serve at /debug/netstate')
    .option('--netns <name>', 'read this named network namespace')
    .option('--node <name>', 'node name to record', '')
    .option('--pod-netns-prefix <prefix>', 'namespaces with this prefix are the node’s pods')
    .action(async (flags: { netns?: string; node: string; podNetnsPrefix?: string }) => {
      const state = await gatherNetState({ node: flags.node || flags.netns || 'local', ...(flags.netns ? { netns: flags.netns } : {}), ...(flags.podNetnsPrefix !== undefined ? { podNetnsPrefix: flags.podNetnsPrefix } : {}) });
      process.stdout.write(JSON.stringify(state, null, 2) + '\n');
    });
}

function renderProbe(probe: Awaited<ReturnType<typeof probePath>>): string {
  if (!probe.supported) return `probe: not run (${probe.why})\n`;
  const lines = [`probe: a real packet was sent${probe.endpoint ? ` (the kernel chose endpoint ${probe.endpoint})` : ''}; seen at:`];
  for (const seen of probe.seen) lines.push(`  ${seen.node.padEnd(8)} ${seen.iface.padEnd(14)} ${seen.seen ? 'seen' : '-'}  (computed: ${seen.expected ? 'on path' : 'not on path'})`);
  lines.push(probe.mismatch ? `probe: MISMATCH with the computed path: ${probe.mismatchDetail}` : 'probe: matches the computed path');
  return lines.join('\n') + '\n';
}
