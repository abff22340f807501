/**
 * The runtime side of CNI, as libcni does it for the kubelet (via containerd or CRI-O):
 *
 * - The network is the lexically first `*.conflist`, `*.conf` or `*.json` in the conf dir; a
 *   single-plugin `.conf` is read as a list of one.
 * - ADD runs the plugins in order, each getting the list's `name`/`cniVersion`, the previous
 *   plugin's raw result as `prevResult`, and `runtimeConfig` for the capabilities it declares
 *   (`portMappings` from the pod's hostPorts). The last result is the pod's.
 * - That result is cached on disk with the config that produced it (libcni's
 *   /var/lib/cni/results/<net>-<containerID>-<ifname>), so DEL and CHECK after a kubelet
 *   restart hand every plugin the same `prevResult`, and DEL uses the config the ADD used
 *   even if the conf dir changed since (what CRI-O does; a plugin removed from the list still
 *   gets to release what it made).
 * - DEL runs the plugins in reverse order; CHECK in order, skipped below 0.4.0 or with
 *   `disableCheck`.
 *
 * Plugins run asynchronously (the reference `execPlugin` in cni/invoke.ts blocks on
 * spawnSync, which would stall every other pod, probe and heartbeat during an ADD); the
 * lookup on the bin dirs is shared with it.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PontoonError } from '../lib/errors.js';
import { findPlugin } from '../cni/invoke.js';
import { CniError, CniErrorCode } from '../cni/errors.js';
import { CniServerVanishedError } from '../cni/thick.js';
import { parseResult, type Result, versionAtLeast } from '../cni/types.js';
import type { ThickPluginRunner } from './cni-helper.js';

export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const POD_IFNAME = 'eth0';

/** The pod's configuration files are missing or malformed. */
export class CniConfigError extends PontoonError {}

/** A plugin failed; `code`/`cniMessage`/`details` are the plugin's CNI error JSON. */
export class CniPluginError extends PontoonError {
  constructor(
    readonly plugin: string,
    readonly command: CniVerb,
    readonly code: number,
    readonly cniMessage: string,
    readonly details = '',
    options?: { cause?: unknown },
  ) {
    super(`failed to ${command} pod network with plugin "${plugin}": ${cniMessage} (CNI error ${code})`, options);
  }
}

export type CniVerb = 'ADD' | 'DEL' | 'CHECK';

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [field: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck: boolean;
  plugins: PluginConf[];
  /** The file it came from. */
  file: string;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

/** What the runtime knows about the pod when it calls CNI. */
export interface PodNetworkRef {
  namespace: string;
  name: string;
  uid: string;
  /** CNI_CONTAINERID: the sandbox's id (K8S_POD_INFRA_CONTAINER_ID). */
  sandboxId: string;
  /** CNI_NETNS: path of the sandbox namespace; may be gone on DEL. */
  netnsPath: string;
  portMappings?: PortMapping[];
}

interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  cniArgs: [string, string][];
  config: NetworkConfigList;
  result: unknown;
}

export interface CniNetworkOptions {
  confDir: string;
  binDirs: readonly string[];
  /** Where results are cached (`<root>/cni/results`). */
  cacheDir: string;
  /** Run plugins inside this named namespace (the node's) rather than the current one. */
  hostNetns?: string;
  timeoutMs?: number;
  /** Runs our own plugins without an exec per call (cni-helper.ts); others are always exec'd. */
  helper?: ThickPluginRunner;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CniConfigError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Parses a `.conflist` (or a single-plugin `.conf`) the way libcni does. */
export function parseNetworkConfig(text: string, file: string): NetworkConfigList {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CniConfigError(`failed to parse CNI config "${file}": ${(err as Error).message}`, { cause: err });
  }
  const source = object(parsed, `CNI config "${file}"`);
  const name = source['name'];
  if (typeof name !== 'string' || name === '') throw new CniConfigError(`CNI config "${file}" has no "name"`);
  const cniVersion = typeof source['cniVersion'] === 'string' ? source['cniVersion'] : '0.1.0';
  const rawPlugins = source['plugins'] ?? (source['type'] !== undefined ? [source] : undefined);
  if (!Array.isArray(rawPlugins) || rawPlugins.length === 0) throw new CniConfigError(`CNI config "${file}" has no "plugins" (or "type" for a single-plugin .conf)`);
  const plugins = rawPlugins.map((raw, i) => {
    const plugin = object(raw, `CNI config "${file}" plugins[${i}]`);
    if (typeof plugin['type'] !== 'string' || plugin['type'] === '') throw new CniConfigError(`CNI config "${file}" plugins[${i}] has no "type"`);
    return plugin as PluginConf;
  });
  return { cniVersion, name, disableCheck: source['disableCheck'] === true, plugins, file };
}

/** The network a kubelet uses: the lexically first config file in `confDir`. */
export async function loadNetworkConfig(confDir: string): Promise<NetworkConfigList> {
  let names: string[];
  try {
    names = await readdir(confDir);
  } catch (err) {
    throw new CniConfigError(`failed to read CNI conf dir "${confDir}": ${(err as Error).message}`, { cause: err });
  }
  const file = names.filter((n) => /\.(conflist|conf|json)$/.test(n)).sort()[0];
  if (!file) throw new CniConfigError(`no CNI network config in "${confDir}": install a *.conflist there (cni plugin not initialized)`);
  const path = join(confDir, file);
  return parseNetworkConfig(await readFile(path, 'utf8'), path);
}

export function cniArgsOf(ref: PodNetworkRef): [string, string][] {
  return [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', ref.namespace],
    ['K8S_POD_NAME', ref.name],
    ['K8S_POD_INFRA_CONTAINER_ID', ref.sandboxId],
    ['K8S_POD_UID', ref.uid],
  ];
}

/** A finished plugin call as CNI reads it: output on exit 0, else its error JSON (or what it printed). */
async function pluginOutcome(plugin: PluginConf, command: CniVerb, run: { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timeoutMs: number }): Promise<string> {
  const { status, signal, stdout: out } = run;
  if (status === 0) return out;
  let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  try {
    parsed = JSON.parse(out) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed.code === 'number' && typeof parsed.msg === 'string') {
    throw new CniPluginError(plugin.type, command, parsed.code, parsed.msg, typeof parsed.details === 'string' ? parsed.details : '');
  }
  const text = (run.stderr || out).trim();
  const how = signal ? `was killed by ${signal}${signal === 'SIGKILL' ? ` (timeout ${run.timeoutMs} ms?)` : ''}` : `exited with code ${status}`;
  throw new CniPluginError(plugin.type, command, CniErrorCode.Internal, `${how}${text ? `: ${text}` : ''}`);
}

export class CniNetwork {
  private readonly timeoutMs: number;

  constructor(private readonly options: CniNetworkOptions) {
    this.timeoutMs = options.timeoutMs ?? 120_000;
  }
  /**
   * The runtime's NetworkReady: a parsable network config in the conf dir. Undefined when
   * ready, else why not (CRI's NetworkPluginNotReady "cni config uninitialized").
   */
  async networkProblem(): Promise<string | undefined> {
    try {
      await loadNetworkConfig(this.options.confDir);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }


  /** Sets up the pod's network; returns the final result (in the list's version). */
  async add(ref: PodNetworkRef): Promise<Result> {
    const config = await loadNetworkConfig(this.options.confDir);
    let prevResult: unknown;
    for (const plugin of config.plugins) {
      const output = await this.exec('ADD', config, plugin, ref, prevResult);
      try {
        prevResult = JSON.parse(output) as unknown;
      } catch (err) {
        throw new CniPluginError(plugin.type, 'ADD', CniErrorCode.DecodingFailure, `result is not JSON: ${output.slice(0, 200)}`, '', { cause: err });
      }
    }
    const entry: CacheEntry = { kind: 'cniCacheV1', containerId: ref.sandboxId, ifName: POD_IFNAME, networkName: config.name, cniArgs: cniArgsOf(ref), config, result: prevResult };
    await this.writeCache(entry);
    return this.parse(prevResult, config.plugins.at(-1)?.type ?? config.name);
  }

  /**
   * Tears the network down. Without a cached ADD (it failed half-way) the current config is
   * used so plugins release what they made; with neither there is nothing to call.
   */
  async del(ref: PodNetworkRef): Promise<void> {
    const cached = await this.readCache(ref.sandboxId);
    let config = cached?.config;
    if (!config) {
      try {
        config = await loadNetworkConfig(this.options.confDir);
      } catch (err) {
        if (err instanceof CniConfigError) return;
        throw err;
      }
    }
    const prevResult = versionAtLeast(config.cniVersion, '0.4.0') ? cached?.result : undefined;
    for (const plugin of [...config.plugins].reverse()) await this.exec('DEL', config, plugin, ref, prevResult);
    await rm(this.cachePath(config.name, ref.sandboxId), { force: true });
  }

  /** Asks every plugin whether the pod's network is still as ADD left it. */
  async check(ref: PodNetworkRef): Promise<void> {
    const cached = await this.readCache(ref.sandboxId);
    if (!cached) throw new CniPluginError('(cache)', 'CHECK', CniErrorCode.UnknownContainer, `no cached result for sandbox ${ref.sandboxId}: it was never added`);
    if (cached.config.disableCheck || !versionAtLeast(cached.config.cniVersion, '0.4.0')) return;
    for (const plugin of cached.config.plugins) await this.exec('CHECK', cached.config, plugin, ref, cached.result);
  }

  /** The result ADD cached for this sandbox, if any. */
  async cachedResult(sandboxId: string): Promise<Result | undefined> {
    const cached = await this.readCache(sandboxId);
    return cached ? this.parse(cached.result, cached.networkName) : undefined;
  }

  private parse(result: unknown, plugin: string): Result {
    try {
      return parseResult(result, `result of plugin "${plugin}"`);
    } catch (err) {
      if (err instanceof CniError) throw new CniPluginError(plugin, 'ADD', err.code, err.message, err.details, { cause: err });
      throw err;
    }
  }

  private pluginConfig(config: NetworkConfigList, plugin: PluginConf, ref: PodNetworkRef, prevResult: unknown): string {
    const conf: Record<string, unknown> = { ...plugin, name: config.name, cniVersion: config.cniVersion };
    if (prevResult !== undefined) conf['prevResult'] = prevResult;
    const runtimeConfig: Record<string, unknown> = {};
    if (plugin.capabilities?.['portMappings'] && ref.portMappings && ref.portMappings.length > 0) runtimeConfig['portMappings'] = ref.portMappings;
    if (Object.keys(runtimeConfig).length > 0) conf['runtimeConfig'] = { ...(plugin['runtimeConfig'] as object | undefined), ...runtimeConfig };
    return JSON.stringify(conf);
  }

  private exec(command: CniVerb, config: NetworkConfigList, plugin: PluginConf, ref: PodNetworkRef, prevResult: unknown): Promise<string> {
    let binary: string;
    try {
      binary = findPlugin(plugin.type, this.options.binDirs);
    } catch (err) {
      const cni = err instanceof CniError ? err : undefined;
      return Promise.reject(new CniPluginError(plugin.type, command, cni?.code ?? CniErrorCode.InvalidEnvironment, (err as Error).message, '', { cause: err }));
    }
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: ref.sandboxId,
      CNI_NETNS: ref.netnsPath,
      CNI_IFNAME: POD_IFNAME,
      CNI_PATH: this.options.binDirs.join(':'),
      CNI_ARGS: cniArgsOf(ref)
        .map(([k, v]) => `${k}=${v}`)
        .join(';'),
    };
    const stdin = this.pluginConfig(config, plugin, ref, prevResult);
    const helper = this.options.helper;
    if (helper?.serves(plugin.type)) return this.viaHelper(helper, command, plugin, binary, env, stdin);
    return this.spawnPlugin(command, plugin, binary, env, stdin);
  }

  /** Our plugin through the helper; exec'd when the helper does not take the call. */
  private async viaHelper(helper: ThickPluginRunner, command: CniVerb, plugin: PluginConf, binary: string, env: Record<string, string>, stdin: string): Promise<string> {
    let reply;
    try {
      reply = await helper.call({ plugin: plugin.type, env, stdin: Buffer.from(stdin) }, this.timeoutMs);
    } catch (err) {
      // It may or may not have run: running it again could double an ADD. The pod worker
      // retries the whole sandbox, as after any failed ADD.
      if (err instanceof CniServerVanishedError) throw new CniPluginError(plugin.type, command, CniErrorCode.TryAgainLater, err.message, '', { cause: err });
      throw err;
    }
    if (!reply) return this.spawnPlugin(command, plugin, binary, env, stdin);
    return pluginOutcome(plugin, command, { status: reply.code, signal: null, stdout: reply.stdout, stderr: '', timeoutMs: this.timeoutMs });
  }

  private spawnPlugin(command: CniVerb, plugin: PluginConf, binary: string, env: Record<string, string>, stdin: string): Promise<string> {
    const [file, argv] = this.options.hostNetns ? ['ip', ['netns', 'exec', this.options.hostNetns, binary]] : [binary, []];
    return new Promise((resolve, reject) => {
      const child = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new CniPluginError(plugin.type, command, CniErrorCode.IoFailure, `failed to run ${binary}: ${err.message}`, '', { cause: err }));
      });
      child.on('close', (status, signal) => {
        clearTimeout(timer);
        pluginOutcome(plugin, command, { status, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), timeoutMs: this.timeoutMs }).then(resolve, reject);
      });
      child.stdin.end(stdin);
    });
  }

  private cachePath(networkName: string, containerId: string): string {
    return join(this.options.cacheDir, `${networkName}-${containerId}-${POD_IFNAME}`);
  }

  private async writeCache(entry: CacheEntry): Promise<void> {
    await mkdir(this.options.cacheDir, { recursive: true });
    const path = this.cachePath(entry.networkName, entry.containerId);
    await writeFile(`${path}.tmp`, JSON.stringify(entry));
    await rename(`${path}.tmp`, path);
  }

  private async readCache(containerId: string): Promise<CacheEntry | undefined> {
    let names: string[];
    try {
      names = await readdir(this.options.cacheDir);
    } catch {
      return undefined;
    }
    // The network name is part of the file name and may have changed since ADD.
    const suffix = `-${containerId}-${POD_IFNAME}`;
    const file = names.find((n) => n.endsWith(suffix));
    if (!file) return undefined;
    try {
      const entry = JSON.parse(await readFile(join(this.options.cacheDir, file), 'utf8')) as CacheEntry;
      return entry.kind === 'cniCacheV1' && entry.containerId === containerId ? entry : undefined;
    } catch {
      return undefined;
    }
  }
}
