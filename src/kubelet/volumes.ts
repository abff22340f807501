/**
 * A pod's volumes on the node, laid out as upstream's kubelet does:
 * `<pod dir>/volumes/kubernetes.io~<plugin>/<volume>` (empty-dir, configmap, secret,
 * downward-api, projected); hostPath volumes are a path under --host-path-root instead.
 *
 * - setUp() makes every volume or none: the first failure (a missing ConfigMap, a hostPath
 *   type check) removes what this call made and throws a VolumeMountError whose message is
 *   upstream's FailedMount text; the pod retries with backoff and starts no container
 *   meanwhile. A volume made by an earlier setUp (a kubelet restart adopting the pod) keeps
 *   its last contents when its source cannot be read now, as upstream keeps a mounted volume.
 * - refresh() rewrites the projected volumes (configMap, secret, downwardAPI, projected)
 *   from their sources through the atomic `..data` swap; it runs on every pod sync (the
 *   kubelet's resync), and renews ServiceAccount tokens once 80% of their lifetime passed.
 * - emptyDir medium Memory is a tmpfs (size=sizeLimit) on the node, unmounted by teardown().
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Container, DownwardAPIVolumeFile, KeyToPath, Pod, Quantity, Volume, VolumeProjection } from '../api/types.js';
import { quantityValue } from '../api/quantity.js';
import { describeError, PontoonError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { mountPoints } from '../lib/mounts.js';
import { type Payload, writeAtomically } from './atomic-writer.js';
import { ContainerConfigError, fieldValue, nodeAllocatable } from './env.js';
import { resourceFieldValue } from './resource-field.js';
import type { BindMount } from './mounts.js';
import type { IssuedToken, PodObjectSource } from './sources.js';

const run = promisify(execFile);

/** A volume could not be set up (Kubernetes: a FailedMount event, the pod waits). */
export class VolumeMountError extends PontoonError {
  constructor(
    readonly volume: string,
    readonly detail: string,
  ) {
    super(`MountVolume.SetUp failed for volume "${volume}" : ${detail}`);
  }
}

export const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const DEFAULT_MODE = 0o644;
const DEFAULT_TOKEN_SECONDS = 3600;
/** Upstream's token manager renews at 80% of the lifetime. */
const TOKEN_REFRESH_FRACTION = 0.8;

type Plugin = 'empty-dir' | 'configmap' | 'secret' | 'downward-api' | 'projected';

/** Volumes whose content the kubelet writes: always mounted read-only, as upstream. */
const READ_ONLY_PLUGINS = new Set<Plugin>(['configmap', 'secret', 'downward-api', 'projected']);

function pluginOf(volume: Volume): Plugin | 'host-path' | undefined {
  if (volume.emptyDir) return 'empty-dir';
  if (volume.configMap) return 'configmap';
  if (volume.secret) return 'secret';
  if (volume.downwardAPI) return 'downward-api';
  if (volume.projected) return 'projected';
  if (volume.hostPath) return 'host-path';
  return undefined;
}

/** A byte Quantity (`64Mi`, `1G`) as a number of bytes. */
export function quantityBytes(quantity: Quantity): number {
  try {
    return quantityValue(quantity);
  } catch (err) {
    throw new ContainerConfigError(describeError(err));
  }
}

function isMountPoint(path: string): boolean {
  return mountPoints().includes(path);
}

/** upstream fieldpath.FormatMap: sorted `key="value"` lines, no newline after the last. */
function formatMap(map: Record<string, string> | undefined): string {
  return Object.keys(map ?? {})
    .sort()
    .map((key) => `${key}=${JSON.stringify(map?.[key] ?? '')}`)
    .join('\n');
}

function downwardValue(item: DownwardAPIVolumeFile, pod: Pod): string {
  if (item.resourceFieldRef) {
    const ref = item.resourceFieldRef;
    const container = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].find((c) => c.name === ref.containerName);
    return resourceFieldValue(ref, container, nodeAllocatable());
  }
  const path = item.fieldRef?.fieldPath;
  if (!path) throw new PontoonError(`downwardAPI item "${item.path}": needs fieldRef or resourceFieldRef`);
  if (path === 'metadata.labels') return formatMap(pod.metadata.labels);
  if (path === 'metadata.annotations') return formatMap(pod.metadata.annotations);
  if (!/^metadata\.(name|namespace|uid|labels\[.+\]|annotations\[.+\])$/.test(path)) throw new PontoonError(`downwardAPI item "${item.path}": unsupported fieldPath "${path}"`);
  return fieldValue(path, { pod, podIPs: [], hostIPs: [], nodeName: '' });
}

export interface PodVolumesOptions {
  podDir: string;
  /** --host-path-root: hostPath paths resolve under it. */
  hostPathRoot: string;
  objects?: PodObjectSource;
  log: Logger;
}

interface CachedToken extends IssuedToken {
  refreshAtMs: number;
}

/** The volumes of one pod. */
export class PodVolumes {
  private pod: Pod;
  private readonly tokens = new Map<string, CachedToken>();
  private ready = false;

  constructor(
    pod: Pod,
    private readonly options: PodVolumesOptions,
  ) {
    this.pod = pod;
  }

  private get namespace(): string {
    return this.pod.metadata.namespace ?? 'default';
  }

  /** Whether setUp has succeeded (mounts can be planned). */
  get isReady(): boolean {
    return this.ready;
  }

  private dirOf(volume: Volume): string {
    const plugin = pluginOf(volume);
    if (plugin === 'host-path') return join(this.options.hostPathRoot, volume.hostPath?.path ?? '');
    return join(this.options.podDir, 'volumes', `kubernetes.io~${plugin ?? 'unknown'}`, volume.name);
  }

  /** Makes every volume of the pod, or none (see the module note). */
  async setUp(pod: Pod): Promise<void> {
    this.pod = pod;
    const createdNow: Volume[] = [];
    for (const volume of pod.spec.volumes ?? []) {
      const existed = existsSync(this.dirOf(volume));
      try {
        await this.setUpOne(volume);
        if (!existed) createdNow.push(volume);
      } catch (err) {
        // Written by an earlier setUp (an adopted pod): its last contents beat an empty view.
        const writtenBefore = existed && pluginOf(volume) !== 'host-path' && pluginOf(volume) !== 'empty-dir';
        if (writtenBefore) {
          this.options.log.warn({ volume: volume.name, err: describeError(err) }, 'cannot refresh a volume made before; keeping its contents');
          continue;
        }
        // Undo only what this call created: an existing emptyDir holds the pod's data.
        for (const done of createdNow) await this.removeOne(done);
        if (!existed) await this.removeOne(volume);
        throw err instanceof VolumeMountError ? err : new VolumeMountError(volume.name, err instanceof Error ? err.message : String(err));
      }
    }
    this.ready = true;
  }

  /** Rewrites the kubelet-written volumes whose sources changed; errors keep old contents. */
  async refresh(pod: Pod): Promise<void> {
    this.pod = pod;
    if (!this.ready) return;
    for (const volume of pod.spec.volumes ?? []) {
      const plugin = pluginOf(volume);
      if (plugin === 'host-path' || plugin === 'empty-dir') continue;
      try {
        await this.setUpOne(volume);
      } catch (err) {
        this.options.log.warn({ volume: volume.name, err: describeError(err) }, 'failed to refresh a volume; keeping its contents');
      }
    }
  }

  private async setUpOne(volume: Volume): Promise<void> {
    const plugin = pluginOf(volume);
    const dir = this.dirOf(volume);
    switch (plugin) {
      case 'empty-dir':
        return this.emptyDir(volume, dir);
      case 'host-path':
        return this.hostPath(volume, dir);
      case 'configmap':
      case 'secret':
      case 'downward-api':
      case 'projected': {
        const payload = await this.payload(volume);
        // Secrets and tokens never touch the node's disk: upstream backs these with tmpfs.
        if (plugin === 'secret' || plugin === 'projected') await this.ensureTmpfs(volume.name, dir, ['mode=0755']);
        if (writeAtomically(dir, payload)) this.options.log.debug({ volume: volume.name }, 'volume contents written');
        return;
      }
      default:
        throw new VolumeMountError(volume.name, 'volume type is not supported by this kubelet');
    }
  }

  private async emptyDir(volume: Volume, dir: string): Promise<void> {
    // World-writable as upstream's emptyDir (0777), so any user in the container can write.
    mkdirSync(dir, { recursive: true });
    if (volume.emptyDir?.medium !== 'Memory') return;
    const options = ['mode=0777'];
    if (volume.emptyDir.sizeLimit !== undefined) options.push(`size=${quantityBytes(volume.emptyDir.sizeLimit)}`);
    await this.ensureTmpfs(volume.name, dir, options);
  }

  private async ensureTmpfs(volumeName: string, dir: string, options: readonly string[]): Promise<void> {
    mkdirSync(dir, { recursive: true });
    if (isMountPoint(dir)) return;
    try {
      await run('mount', ['-t', 'tmpfs', '-o', options.join(','), 'tmpfs', dir]);
    } catch (err) {
      throw new VolumeMountError(volumeName, `mount tmpfs on ${dir}: ${(err as { stderr?: string }).stderr?.trim() || describeError(err)}`);
    }
  }

  /** upstream hostPath type checks (pkg/volume/hostpath), paths under --host-path-root. */
  private hostPath(volume: Volume, path: string): void {
    const type = volume.hostPath?.type ?? '';
    const stat = statSync(path, { throwIfNoEntry: false });
    const fail = (what: string): never => {
      throw new VolumeMountError(volume.name, `hostPath type check failed: ${volume.hostPath?.path ?? ''} is not ${what}`);
    };
    switch (type) {
      case '':
        // No check; like containerd, a missing source becomes a directory so the bind succeeds.
        if (!stat) mkdirSync(path, { recursive: true, mode: 0o755 });
        return;
      case 'DirectoryOrCreate':
        if (!stat) mkdirSync(path, { recursive: true, mode: 0o755 });
        else if (!stat.isDirectory()) fail('a directory');
        return;
      case 'Directory':
        if (!stat?.isDirectory()) fail('a directory');
        return;
      case 'FileOrCreate':
        if (!stat) {
          mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
          writeFileSync(path, '', { mode: 0o644, flag: 'wx' });
        } else if (!stat.isFile()) fail('a file');
        return;
      case 'File':
        if (!stat?.isFile()) fail('a file');
        return;
      case 'Socket':
        if (!stat?.isSocket()) fail('a socket file');
        return;
      case 'CharDevice':
        if (!stat?.isCharacterDevice()) fail('a character device');
        return;
      case 'BlockDevice':
        if (!stat?.isBlockDevice()) fail('a block device');
        return;
      default:
        throw new VolumeMountError(volume.name, `hostPath type "${String(type)}" is not supported`);
    }
  }

  private async payload(volume: Volume): Promise<Payload> {
    const payload: Payload = new Map();
    const pod = this.pod;
    if (volume.configMap) {
      const source = volume.configMap;
      await this.addConfigMap(payload, volume.name, source.name, source.items, source.optional, source.defaultMode ?? DEFAULT_MODE);
    } else if (volume.secret) {
      const source = volume.secret;
      await this.addSecret(payload, volume.name, source.secretName, source.items, source.optional, source.defaultMode ?? DEFAULT_MODE);
    } else if (volume.downwardAPI) {
      this.addDownward(payload, volume.downwardAPI.items, volume.downwardAPI.defaultMode ?? DEFAULT_MODE, pod);
    } else if (volume.projected) {
      const mode = volume.projected.defaultMode ?? DEFAULT_MODE;
      for (const source of volume.projected.sources ?? []) await this.addProjection(payload, volume.name, source, mode);
    }
    return payload;
  }

  private async addProjection(payload: Payload, volumeName: string, source: VolumeProjection, mode: number): Promise<void> {
    if (source.configMap) await this.addConfigMap(payload, volumeName, source.configMap.name, source.configMap.items, source.configMap.optional, mode);
    else if (source.secret) await this.addSecret(payload, volumeName, source.secret.name, source.secret.items, source.secret.optional, mode);
    else if (source.downwardAPI) this.addDownward(payload, source.downwardAPI.items, mode, this.pod);
    else if (source.serviceAccountToken) {
      const projection = source.serviceAccountToken;
      const token = await this.token(volumeName, projection.audience, projection.expirationSeconds ?? DEFAULT_TOKEN_SECONDS, projection.path);
      payload.set(projection.path, { content: Buffer.from(token), mode });
    }
  }

  private addKeys(payload: Payload, kind: 'configmap' | 'secret', data: Map<string, Buffer>, items: readonly KeyToPath[] | undefined, mode: number): void {
    if (!items || items.length === 0) {
      for (const [key, content] of data) payload.set(key, { content, mode });
      return;
    }
    for (const item of items) {
      const content = data.get(item.key);
      // upstream's words: "configmap references non-existent config key: k".
      if (!content) throw new PontoonError(`${kind} references non-existent ${kind === 'configmap' ? 'config' : 'secret'} key: ${item.key}`);
      payload.set(item.path, { content, mode: item.mode ?? mode });
    }
  }

  private async addConfigMap(payload: Payload, volumeName: string, name: string, items: readonly KeyToPath[] | undefined, optional: boolean | undefined, mode: number): Promise<void> {
    const found = await this.options.objects?.configMap(this.namespace, name);
    if (!found) {
      if (optional) return;
      throw new VolumeMountError(volumeName, `configmap "${name}" not found`);
    }
    const data = new Map<string, Buffer>();
    for (const [key, value] of Object.entries(found.data ?? {})) data.set(key, Buffer.from(value, 'utf8'));
    for (const [key, value] of Object.entries(found.binaryData ?? {})) data.set(key, Buffer.from(value, 'base64'));
    if (items?.some((item) => !data.has(item.key)) && optional) return;
    try {
      this.addKeys(payload, 'configmap', data, items, mode);
    } catch (err) {
      throw new VolumeMountError(volumeName, describeError(err));
    }
  }

  private async addSecret(payload: Payload, volumeName: string, name: string, items: readonly KeyToPath[] | undefined, optional: boolean | undefined, mode: number): Promise<void> {
    const found = await this.options.objects?.secret(this.namespace, name);
    if (!found) {
      if (optional) return;
      throw new VolumeMountError(volumeName, `secret "${name}" not found`);
    }
    const data = new Map<string, Buffer>();
    for (const [key, value] of Object.entries(found.data ?? {})) data.set(key, Buffer.from(value, 'base64'));
    if (items?.some((item) => !data.has(item.key)) && optional) return;
    try {
      this.addKeys(payload, 'secret', data, items, mode);
    } catch (err) {
      throw new VolumeMountError(volumeName, describeError(err));
    }
  }

  private addDownward(payload: Payload, items: readonly DownwardAPIVolumeFile[] | undefined, mode: number, pod: Pod): void {
    for (const item of items ?? []) payload.set(item.path, { content: Buffer.from(downwardValue(item, pod)), mode: item.mode ?? mode });
  }

  /** A bound token for this pod, from the cache until 80% of its lifetime passed. */
  private async token(volumeName: string, audience: string | undefined, expirationSeconds: number, path: string): Promise<string> {
    const key = `${volumeName}/${path}`;
    const cached = this.tokens.get(key);
    if (cached && Date.now() < cached.refreshAtMs) return cached.token;
    const request = this.options.objects?.requestToken;
    if (!request) throw new VolumeMountError(volumeName, 'the kubelet has no TokenRequest client for serviceAccountToken projections');
    const serviceAccount = this.pod.spec.serviceAccountName ?? 'default';
    let issued: IssuedToken;
    try {
      issued = await request(this.namespace, serviceAccount, {
        audiences: audience ? [audience] : [],
        expirationSeconds,
        podName: this.pod.metadata.name ?? '',
        podUid: this.pod.metadata.uid ?? '',
      });
    } catch (err) {
      throw new VolumeMountError(volumeName, `failed to fetch token: ${describeError(err)}`);
    }
    const nowMs = Date.now();
    const expiresMs = Date.parse(issued.expirationTimestamp) || nowMs + expirationSeconds * 1000;
    this.tokens.set(key, { ...issued, refreshAtMs: nowMs + (expiresMs - nowMs) * TOKEN_REFRESH_FRACTION });
    return issued.token;
  }

  /** The bind mounts of one container's volumeMounts (subPath resolved and checked). */
  mountsFor(container: Container): BindMount[] {
    const volumes = new Map((this.pod.spec.volumes ?? []).map((v) => [v.name, v]));
    return (container.volumeMounts ?? []).map((mount) => {
      const volume = volumes.get(mount.name);
      if (!volume) throw new ContainerConfigError(`cannot find volume "${mount.name}" to mount into container "${container.name}"`);
      const root = this.dirOf(volume);
      let source = root;
      if (mount.subPath) {
        if (mount.subPath.startsWith('/') || mount.subPath.split('/').includes('..')) throw new ContainerConfigError(`subPath "${mount.subPath}" must be a relative path without '..'`);
        source = join(root, mount.subPath);
        // As upstream, a missing subPath of a writable volume is created as a directory.
        if (!existsSync(source) && !READ_ONLY_PLUGINS.has(pluginOf(volume) as Plugin)) mkdirSync(source, { recursive: true, mode: 0o755 });
        let real: string;
        try {
          real = realpathSync(source);
        } catch {
          throw new ContainerConfigError(`failed to prepare subPath for volumeMount "${mount.name}" of container "${container.name}": ${mount.subPath} does not exist`);
        }
        // A symlink in the volume must not lead the bind out of it (CVE-2017-1002101).
        const realRoot = realpathSync(root);
        if (real !== realRoot && !real.startsWith(`${realRoot}/`)) {
          throw new ContainerConfigError(`subPath "${mount.subPath}" of volumeMount "${mount.name}" resolves outside the volume`);
        }
        source = real;
      }
      const readOnly = mount.readOnly === true || READ_ONLY_PLUGINS.has(pluginOf(volume) as Plugin);
      return { source, target: mount.mountPath, readOnly, directory: statSync(source).isDirectory() };
    });
  }

  private async removeOne(volume: Volume): Promise<void> {
    if (pluginOf(volume) === 'host-path') return;
    const dir = this.dirOf(volume);
    if (isMountPoint(dir)) await run('umount', [dir]).catch((err: unknown) => this.options.log.warn({ volume: volume.name, err: describeError(err) }, 'failed to unmount a volume'));
    rmSync(dir, { recursive: true, force: true });
  }

  /** Unmounts whatever is mounted under the pod directory (tmpfs volumes), deepest first. */
  async teardown(): Promise<void> {
    const prefix = `${this.options.podDir}/`;
    const mounted = mountPoints()
      .filter((point) => point.startsWith(prefix))
      .sort((a, b) => b.length - a.length);
    for (const point of mounted) {
      try {
        await run('umount', [point]);
      } catch (err) {
        this.options.log.warn({ mountPoint: point, err: describeError(err) }, 'failed to unmount; detaching it');
        await run('umount', ['-l', point]).catch(() => undefined);
      }
    }
    this.ready = false;
  }
}
