/**
 * A real apiserver (in this process, on a unix socket so the namespace can reach it), a
 * `pontoon dns` process inside a fresh network namespace, and the clients users have —
 * dig (bind9-dnsutils) and busybox nslookup — run in that namespace.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Service } from '../../src/api/types.js';
import type { RunningApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { startServer } from '../client/harness.js';
import { ROOT } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';
import { poll } from '../helpers/wait.js';

const run = promisify(execFile);
export const CLI = join(ROOT, 'build', 'src', 'cli', 'main.js');
export const PROBE = join(ROOT, 'test', 'fixtures', 'dns', 'probe.mjs');

export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface DigAnswer {
  status: string;
  flags: string[];
  question: string;
  answers: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** `udp: N` of the OPT pseudosection, when the answer had one. */
  ednsUdp?: number;
  raw: string;
}

export function parseDig(text: string): DigAnswer {
  const status = /status: ([A-Z]+)/.exec(text)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]*);/.exec(text)?.[1] ?? '').split(' ').filter(Boolean);
  const udp = /; EDNS: version: \d+, flags:[^;]*; udp: (\d+)/.exec(text)?.[1];
  const sections: Record<string, DigRecord[]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] };
  let question = '';
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const header = /^;; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (header) {
      current = header[1];
      continue;
    }
    if (line.trim() === '') {
      current = undefined;
      continue;
    }
    if (current === 'QUESTION') {
      question = line.replace(/^;/, '').split(/\s+/)[0] ?? '';
      continue;
    }
    const list = current ? sections[current] : undefined;
    if (!list) continue;
    const [name = '', ttl = '0', , type = '', ...data] = line.split(/\s+/);
    list.push({ name, ttl: Number(ttl), type, data: data.join(' ') });
  }
  return { status, flags, question, answers: sections['ANSWER'] ?? [], authority: sections['AUTHORITY'] ?? [], additional: sections['ADDITIONAL'] ?? [], ...(udp ? { ednsUdp: Number(udp) } : {}), raw: text };
}

export class DnsLab {
  readonly lab = new Lab('dns');
  readonly netns: string;
  api!: RunningApiServer;
  client!: KubeClient;
  private child: ChildProcess | undefined;
  private log = '';
  private readonly extra: ChildProcess[] = [];

  constructor() {
    this.netns = this.lab.netns('dns');
  }

  /** Starts the apiserver and `pontoon dns --listen 127.0.0.1:53 <args>`, then waits for /ready. */
  async start(dnsArgs: string[] = []): Promise<void> {
    const socketPath = join(this.lab.tempDir('dns-api'), 'api.sock');
    this.api = await startServer({ store: 'memory:', listen: false, socketPath });
    this.client = new KubeClient({ server: `unix:${socketPath}` });
    this.child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, CLI, 'dns', '--server', `unix:${socketPath}`, '--listen', '127.0.0.1:53', '--log-level', 'warn', ...dnsArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (chunk: Buffer) => (this.log = (this.log + chunk.toString()).slice(-4000)));
    await poll('pontoon dns ready', async () => (await this.http(8181, '/ready')).status === 200 && (await this.dig(['kubernetes.default.svc.cluster.local'])).status === 'NOERROR', {
      timeoutMs: 20_000,
      retryErrors: true,
      describe: () => this.log,
    });
  }

  get logTail(): string {
    return this.log;
  }

  /** dig in the namespace against the server (or `server`), one try, no retries over other transports unless asked. */
  async dig(args: string[], server = '127.0.0.1'): Promise<DigAnswer> {
    const { stdout } = await run('ip', ['netns', 'exec', this.netns, 'dig', `@${server}`, '+tries=1', '+time=2', '+nocookie', ...args], { encoding: 'utf8' }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    return parseDig(stdout);
  }

  async nslookup(name: string, type?: string): Promise<string> {
    const args = ['netns', 'exec', this.netns, '/usr/bin/busybox', 'nslookup', ...(type ? [`-type=${type}`] : []), name, '127.0.0.1'];
    const { stdout, stderr } = await run('ip', args, { encoding: 'utf8' }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
    return `${stdout}${stderr}`;
  }

  /** Sends raw messages with test/fixtures/dns/probe.mjs; returns one reply (hex) or "timeout" per message. */
  async probe(mode: 'udp' | 'tcp', hexMessages: string[], port = 53): Promise<string[]> {
    const { stdout } = await run('ip', ['netns', 'exec', this.netns, process.execPath, PROBE, mode, '127.0.0.1', String(port), ...hexMessages], { encoding: 'utf8' });
    return stdout.trim().split('\n');
  }

  async http(port: number, path: string): Promise<{ status: number; text: string }> {
    const script = `fetch('http://127.0.0.1:${port}${path}').then(async (r) => console.log(r.status + ' ' + (await r.text()).replace(/\\n/g, '\\\\n'))).catch(() => console.log('0 '))`;
    const { stdout } = await run('ip', ['netns', 'exec', this.netns, process.execPath, '-e', script], { encoding: 'utf8' });
    const [status = '0', ...rest] = stdout.trim().split(' ');
    return { status: Number(status), text: rest.join(' ').replace(/\\n/g, '\n') };
  }

  /** Runs a helper (dnsmasq) in the namespace for the test's lifetime. */
  spawnExtra(command: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.netns, command, ...args], { stdio: 'ignore' });
    this.extra.push(child);
    return child;
  }

  async createService(service: Service): Promise<Service> {
    return this.client.create(RESOURCE.services, { apiVersion: 'v1', kind: 'Service', ...service });
  }

  async createSlice(slice: EndpointSlice): Promise<EndpointSlice> {
    return this.client.create(RESOURCE.endpointslices, { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', ...slice });
  }

  async createNamespace(name: string): Promise<void> {
    await this.client.create(RESOURCE.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }

  async stop(): Promise<void> {
    for (const child of [this.child, ...this.extra]) {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    }
    await this.api?.close();
    this.lab.cleanup();
  }
}

export function headlessSlice(service: string, namespace: string, name: string, endpoints: { ip: string; hostname?: string; ready?: boolean }[], ports: { name: string; port: number; protocol?: 'TCP' | 'UDP' }[] = [], addressType: 'IPv4' | 'IPv6' = 'IPv4'): EndpointSlice {
  return {
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service } },
    addressType,
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.hostname ? { hostname: e.hostname } : {}) })),
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' })),
  } as EndpointSlice;
}
