/**
 * A two-node network for proxy packet-flow tests, all in namespaces:
 *
 *   fabric bridge 198.18.0.0/24 ── n1 eth0 .11 ── cni0 10.244.1.1/24 ── pods (pontoon-bridge)
 *                               ├─ n2 eth0 .12 ── cni0 10.244.2.1/24 ── pods
 *                               └─ outside .100   (a client that is not part of the cluster)
 *
 * Nodes route each other's pod subnet (host-gw style). Pods run echo.mjs, which answers
 * "<pod> <client address>". The proxy under test programs n1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { type Socket } from 'node:net';
import { parseIp, parseIpNet } from '../../src/lib/ip.js';
import { openRtnl, tcpSocketIn } from '../../src/lib/netns.js';
import { makeFabric, plug } from '../../src/cli/cluster/topology.js';
import { writeSysctl } from '../../src/lib/sysctl.js';
import { withNetns } from '../../src/lib/netns.js';
import { cniOk, ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

export interface TestPod {
  name: string;
  node: 'n1' | 'n2';
  netns: string;
  ip: string;
}

const ECHO = join(ROOT, 'test', 'fixtures', 'proxy', 'echo.mjs');
export const UDP_CLIENT = join(ROOT, 'test', 'fixtures', 'proxy', 'udp-client.mjs');

export const SERVICE_RANGE = '10.96.0.0/12';

export class ProxyLab {
  readonly lab: Lab;
  readonly fabric: string;
  readonly n1: string;
  readonly n2: string;
  readonly outside: string;
  readonly pods = new Map<string, TestPod>();
  private readonly children: ChildProcess[] = [];
  private readonly dataDir: string;
  private podCount = 0;

  constructor(tag: string) {
    this.lab = new Lab(tag);
    this.fabric = this.lab.netns('fab');
    this.n1 = this.lab.netns('n1');
    this.n2 = this.lab.netns('n2');
    this.outside = this.lab.netns('out');
    this.dataDir = this.lab.tempDir('proxy-ipam');
    makeFabric(this.fabric, 1);
    plug(this.fabric, 0, 'n1', this.n1, 'eth0', parseIpNet('198.18.0.11/24'));
    plug(this.fabric, 0, 'n2', this.n2, 'eth0', parseIpNet('198.18.0.12/24'));
    plug(this.fabric, 0, 'out', this.outside, 'eth0', parseIpNet('198.18.0.100/24'));
    for (const [node, peer, peerSubnet] of [
      [this.n1, '198.18.0.12', '10.244.2.0/24'],
      [this.n2, '198.18.0.11', '10.244.1.0/24'],
    ] as const) {
      withNetns(this.lab.path(node), () => {
        writeSysctl('net.ipv4.ip_forward', '1');
        const rtnl = openRtnl();
        try {
          const eth0 = rtnl.linkByName('eth0');
          rtnl.addRoute({ family: 4, dst: parseIpNet(peerSubnet), gateway: parseIp(peer), oif: eth0?.index ?? 0 });
          // A real node has a default route; without any route to the Service range the
          // kernel refuses a cluster-IP packet before the DNAT hooks see it.
          rtnl.addRoute({ family: 4, dst: parseIpNet(SERVICE_RANGE), oif: eth0?.index ?? 0 });
        } finally {
          rtnl.close();
        }
      });
    }
  }

  nodeNetns(node: 'n1' | 'n2'): string {
    return node === 'n1' ? this.n1 : this.n2;
  }

  /** A pod on `node` running the echo server on `port` (TCP and UDP). */
  async addPod(name: string, node: 'n1' | 'n2', port = 8080): Promise<TestPod> {
    const netns = this.lab.netns(`p${this.podCount++}`);
    const subnet = node === 'n1' ? '10.244.1.0/24' : '10.244.2.0/24';
    const result = cniOk({
      plugin: 'pontoon-bridge',
      command: 'ADD',
      nodeNetns: this.nodeNetns(node),
      containerId: `${netns}-c`,
      netns: this.lab.path(netns),
      ifname: 'eth0',
      config: {
        cniVersion: '1.1.0',
        name: `proxy-${node}`,
        type: 'pontoon-bridge',
        bridge: 'cni0',
        isDefaultGateway: true,
        hairpinMode: true,
        ipam: { type: 'pontoon-ipam', ranges: [[{ subnet }]], dataDir: this.dataDir },
      },
    }) as { ips: { address: string }[] };
    const ip = result.ips[0]?.address.split('/')[0] ?? '';
    const pod: TestPod = { name, node, netns, ip };
    this.pods.set(name, pod);
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, ECHO, name, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`echo server of ${name} exited with ${code}`)));
    });
    return pod;
  }

  /** Stops a pod's server (the pod stays, as a crashed container would). */
  stopServer(pod: TestPod): void {
    for (const child of this.children) {
      if (child.spawnargs.includes(pod.netns)) child.kill('SIGKILL');
    }
  }

  /** A long-running process in a namespace, killed at cleanup. */
  spawnIn(netns: string, argv: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    return child;
  }

  cleanup(): void {
    for (const child of this.children) child.kill('SIGKILL');
    this.lab.cleanup();
  }
}

export type Reply = { pod: string; client: string } | { error: string };

/** One TCP request from `netns` to `host:port`: who answered and whom it saw, or the error code. */
export function request(netns: string, host: string, port: number, timeoutMs = 3000): Promise<Reply> {
  const socket: Socket = tcpSocketIn(netns, host.includes(':'));
  return new Promise((resolve) => {
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ error: 'ETIMEDOUT' });
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ error: err.code ?? String(err) });
    });
    socket.on('end', () => {
      clearTimeout(timer);
      const [pod = '', client = ''] = data.trim().split(' ');
      resolve({ pod, client });
      socket.destroy();
    });
    socket.connect(port, host);
  });
}

/** True once a TCP connection from `netns` to `host:port` is accepted (the server may say nothing). */
export function connects(netns: string, host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  const socket: Socket = tcpSocketIn(netns, host.includes(':'));
  return new Promise((resolve) => {
    const done = (value: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.connect(port, host);
  });
}

/** An HTTP/1.0 GET from `netns`: status code and body ('' and 0 when it could not connect). */
export function httpGet(netns: string, host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  const socket: Socket = tcpSocketIn(netns, host.includes(':'));
  return new Promise((resolve) => {
    let data = '';
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.split('\r\n\r\n').slice(1).join('\r\n\r\n') });
    });
    socket.connect(port, host, () => socket.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
  });
}

/** `count` requests; the set of pods that answered (errors throw). */
export async function spread(netns: string, host: string, port: number, count: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const reply = await request(netns, host, port);
    if ('error' in reply) throw new Error(`request ${i} to ${host}:${port} from ${netns} failed: ${reply.error}`);
    seen.set(reply.pod, (seen.get(reply.pod) ?? 0) + 1);
  }
  return seen;
}

/**
 * Requests until every one of `names` has answered (rules and endpoints converge
 * asynchronously: a new endpoint reaches each node's proxy a little after it is Ready).
 * Fails on an error after the first answer, on an answer from a pod not in `names`, or if
 * some endpoint never answers.
 */
export async function answersFromAll(netns: string, host: string, port: number, names: readonly string[], what: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  await poll(
    what,
    async () => {
      const reply = await request(netns, host, port);
      if ('error' in reply) throw new Error(`a request to ${host}:${port} from ${netns} failed: ${reply.error}`);
      if (!names.includes(reply.pod)) throw new Error(`${reply.pod} answered ${host}:${port}, not one of ${names.join(', ')}`);
      seen.set(reply.pod, (seen.get(reply.pod) ?? 0) + 1);
      return names.every((n) => seen.has(n)) ? seen : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 0, describe: () => `answered so far: ${JSON.stringify(Object.fromEntries(seen))}` },
  );
  return seen;
}

/** Waits until a request gets the wanted kind of answer (rules are applied asynchronously). */
export function eventually(netns: string, host: string, port: number, accept: (reply: Reply) => boolean, what: string): Promise<Reply> {
  let last: Reply | undefined;
  return poll(
    what,
    async () => {
      last = await request(netns, host, port, 1000);
      return accept(last) ? last : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, describe: () => `last reply: ${JSON.stringify(last)}` },
  );
}
