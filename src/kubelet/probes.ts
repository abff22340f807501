/**
 * Container probes with the kubelet's semantics:
 *
 * - exec runs the command inside the container's mount, UTS and network namespaces (enter.ts)
 *   with the container's env and workingDir, so it sees the container's files and volumes;
 *   exit 0 is success, a timeout is failure.
 * - httpGet and tcpSocket connect from the kubelet's network namespace to the pod IP (or
 *   `host`), as the kubelet does from the node; named ports resolve through the container's
 *   `ports`. 200–399 is success; the body is not followed through redirects.
 * - A prober waits initialDelaySeconds, then probes every periodSeconds; the result flips
 *   after successThreshold consecutive successes or failureThreshold consecutive failures.
 *   Readiness starts as failure, liveness as success, startup as failure (not started).
 *
 * When the kubelet works on a node namespace other than its own (tests drive a node from
 * the root namespace), sockets are created inside that namespace: a socket keeps the
 * namespace it was made in, so connect() goes out through the node's routes.
 */
import { spawn } from 'node:child_process';
import { isIPv6, type Socket } from 'node:net';
import { request as httpRequest } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import type { Container, Probe } from '../api/types.js';
import { tcpSocketIn } from '../lib/netns.js';
import { enterContainerArgv } from './enter.js';

export type ProbeKind = 'readiness' | 'liveness' | 'startup';

export interface ProbeOutcome {
  ok: boolean;
  message: string;
}

export interface ProbeTarget {
  /** Namespace exec probes run in; the current one when undefined (hostNetwork). */
  sandbox: string | undefined;
  /** The container's main pid: exec probes join its namespaces. */
  pid?: number;
  podIP: string | undefined;
  container: Container;
  env: Readonly<Record<string, string>>;
  /** Namespace to connect from; the current one when undefined. */
  hostNetns?: string;
}

export const PROBE_DEFAULTS = { initialDelaySeconds: 0, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 } as const;
const USER_AGENT = 'kube-probe/1.32';
const MAX_BODY_BYTES = 10 * 1024;

export function resolvePort(port: number | string, container: Container): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

function execProbe(command: readonly string[], target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const workingDir = target.container.workingDir ?? '/';
    const argv =
      target.pid !== undefined ? enterContainerArgv(target.pid, command, { workingDir }) : target.sandbox === undefined ? [...command] : ['ip', 'netns', 'exec', target.sandbox, ...command];
    const [file, ...args] = argv;
    const child = spawn(file ?? '', args, {
      env: { ...target.env },
      // nsenter changes into workingDir inside the container; the node's copy may not exist.
      cwd: target.pid !== undefined ? '/' : workingDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const collect = (chunk: Buffer): void => {
      if (output.length < MAX_BODY_BYTES) output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, message: err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return resolve({ ok: false, message: `command timed out after ${timeoutMs / 1000}s` });
      const text = output.trim();
      resolve({ ok: code === 0, message: code === 0 ? text : `command failed with ${code === null ? `signal ${signal}` : `exit code ${code}`}${text ? `: ${text}` : ''}` });
    });
  });
}

function httpProbe(probe: NonNullable<Probe['httpGet']>, target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const host = probe.host ?? target.podIP;
  const port = resolvePort(probe.port, target.container);
  if (!host) return Promise.resolve({ ok: false, message: 'pod has no IP yet' });
  if (port === undefined) return Promise.resolve({ ok: false, message: `port "${probe.port}" is not a named port of container ${target.container.name}` });
  const https = probe.scheme === 'HTTPS';
  const path = probe.path ?? '/';
  const headers: Record<string, string> = { 'User-Agent': USER_AGENT, Accept: '*/*', Connection: 'close' };
  for (const header of probe.httpHeaders ?? []) headers[header.name] = header.value;
  const url = `${https ? 'https' : 'http'}://${isIPv6(host) ? `[${host}]` : host}:${port}${path}`;
  return new Promise((resolve) => {
    const socket = tcpSocketIn(target.hostNetns, isIPv6(host));
    socket.connect(port, host);
    const transport = https ? tlsConnect({ socket, servername: isIPv6(host) || /^[\d.]+$/.test(host) ? undefined : host, rejectUnauthorized: false }) : socket;
    const req = httpRequest({ method: 'GET', host, port, path, headers, createConnection: () => transport, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        if (body.length < MAX_BODY_BYTES) body += chunk.toString('utf8');
      });
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        const ok = code >= 200 && code < 400;
        resolve({ ok, message: ok ? body.trim() : `HTTP probe failed with statuscode: ${code}` });
      });
      res.on('error', (err) => resolve({ ok: false, message: `Get "${url}": ${err.message}` }));
    });
    const timer = setTimeout(() => req.destroy(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')));
    req.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, message: `Get "${url}": ${err.message}` });
    });
    req.end();
  });
}

function tcpProbe(probe: NonNullable<Probe['tcpSocket']>, target: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  const host = probe.host ?? target.podIP;
  const port = resolvePort(probe.port, target.container);
  if (!host) return Promise.resolve({ ok: false, message: 'pod has no IP yet' });
  if (port === undefined) return Promise.resolve({ ok: false, message: `port "${probe.port}" is not a named port of container ${target.container.name}` });
  return new Promise((resolve) => {
    const socket = tcpSocketIn(target.hostNetns, isIPv6(host));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, message: `dial tcp ${host}:${port}: i/o timeout` });
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: true, message: '' });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: false, message: `dial tcp ${host}:${port}: ${err.message}` });
    });
    socket.connect(port, host);
  });
}

/** Runs one probe attempt. */
export function runProbe(probe: Probe, target: ProbeTarget): Promise<ProbeOutcome> {
  const timeoutMs = (probe.timeoutSeconds ?? PROBE_DEFAULTS.timeoutSeconds) * 1000;
  if (probe.exec) {
    const command = probe.exec.command ?? [];
    if (command.length === 0) return Promise.resolve({ ok: false, message: 'exec probe has no command' });
    return execProbe(command, target, timeoutMs);
  }
  if (probe.httpGet) return httpProbe(probe.httpGet, target, timeoutMs);
  if (probe.tcpSocket) return tcpProbe(probe.tcpSocket, target, timeoutMs);
  return Promise.resolve({ ok: false, message: 'probe has no handler (exec, httpGet or tcpSocket)' });
}

export interface ProberOptions {
  kind: ProbeKind;
  probe: Probe;
  target: () => ProbeTarget;
  /** Called when the result flips; `message` is the last attempt's. */
  onResult: (ok: boolean, message: string) => void;
  /** Called after every failed attempt (the kubelet's Unhealthy events). */
  onFailure?: (message: string) => void;
  /**
   * The result to hold until the probes say otherwise: what the previous kubelet reported
   * for an adopted container. Without it a kubelet restart turned every ready pod unready
   * until its first probe, and the Service proxies dropped and re-added its endpoints.
   */
  initial?: boolean;
}

/** Probes one container on a timer until stopped. */
export class Prober {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private successes = 0;
  private failures = 0;
  private current: boolean;

  constructor(private readonly options: ProberOptions) {
    this.current = options.initial ?? options.kind === 'liveness';
  }

  get ok(): boolean {
    return this.current;
  }

  start(): void {
    const delayMs = (this.options.probe.initialDelaySeconds ?? PROBE_DEFAULTS.initialDelaySeconds) * 1000;
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const { probe } = this.options;
    const outcome = await runProbe(probe, this.options.target());
    if (this.stopped) return;
    if (outcome.ok) {
      this.failures = 0;
      this.successes++;
      // Liveness and startup need one success whatever successThreshold says (API validation).
      const threshold = this.options.kind === 'readiness' ? (probe.successThreshold ?? PROBE_DEFAULTS.successThreshold) : 1;
      if (!this.current && this.successes >= threshold) this.flip(true, outcome.message);
    } else {
      this.successes = 0;
      this.failures++;
      this.options.onFailure?.(outcome.message);
      if (this.current && this.failures >= (probe.failureThreshold ?? PROBE_DEFAULTS.failureThreshold)) this.flip(false, outcome.message);
      // A startup probe that never succeeds fails once failureThreshold attempts are spent.
      else if (this.options.kind === 'startup' && this.failures === (probe.failureThreshold ?? PROBE_DEFAULTS.failureThreshold)) this.options.onResult(false, outcome.message);
    }
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), (probe.periodSeconds ?? PROBE_DEFAULTS.periodSeconds) * 1000);
  }

  private flip(ok: boolean, message: string): void {
    this.current = ok;
    this.options.onResult(ok, message);
  }
}
