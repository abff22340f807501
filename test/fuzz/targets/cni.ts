/**
 * CNI target: mutated network configs (stdin) and CNI_* environments through the
 * pontoon-bridge, pontoon-ipam (host-local) and pontoon-flannel handlers, in-process via the
 * same harness the binaries run (`runPlugin` with a PluginIo instead of the process's).
 *
 * The property (SPEC.md "Error" and "Version"): exit 0 with a result (VERSION's
 * supportedVersions), or exit 1 with exactly one JSON object `{cniVersion, code, msg[,
 * details]}` whose code is one of the spec's (1-7, 11, 50, 51) or plugin-specific (100+) —
 * never our 999 "unclassified", which is what a TypeError or RangeError inside a handler
 * becomes, and never a stack trace in `msg`.
 *
 * Commands are VERSION, CHECK, STATUS and unknown ones: they read config and kernel state
 * but change nothing, and CNI_NETNS never names a real namespace, so CHECK fails before it
 * looks inside a container. As a second fence the whole session runs with the thread in a
 * lab namespace when we are root (setns moves only the thread, and JavaScript runs on it),
 * and every path a config names is under a temp dir.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bridgeAdd, bridgeCheck, bridgeDel, bridgeGc, bridgeStatus } from '../../../src/cni-plugin/bridge/bridge.js';
import { classifyError } from '../../../src/cni-plugin/classify.js';
import { flannelAdd, flannelCheck, flannelDel, flannelGc, flannelStatus } from '../../../src/cni-plugin/flannel/flannel.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from '../../../src/cni-plugin/ipam/hostlocal.js';
import { type CniHandlers, runPlugin } from '../../../src/cni-plugin/skel/skel.js';
import { createNetns, deleteNetns, enterNetns, netnsPath } from '../../../src/lib/netns.js';
import { int, type Json, mutateBytes, mutateJsonText, pick, type Random } from '../mutator.js';
import type { FuzzSession, FuzzTarget, Verdict } from '../target.js';

const PLUGINS = ['bridge', 'ipam', 'flannel'] as const;
type Plugin = (typeof PLUGINS)[number];

const HANDLERS: Record<Plugin, CniHandlers> = {
  bridge: { add: bridgeAdd, del: bridgeDel, check: bridgeCheck, status: bridgeStatus, gc: bridgeGc },
  ipam: { add: ipamAdd, del: ipamDel, check: ipamCheck, status: ipamStatus, gc: ipamGc },
  flannel: { add: flannelAdd, del: flannelDel, check: flannelCheck, status: flannelStatus, gc: flannelGc },
};

/** Commands that change nothing; the rest stay out of the fuzz (they would build links). */
const SAFE_COMMANDS = new Set(['VERSION', 'CHECK', 'STATUS']);

/** SPEC.md error codes; 100 and up are the plugin's own. */
const SPEC_CODES = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51]);

export interface CniInput {
  plugin: Plugin;
  env: Record<string, string>;
  /** stdin as UTF-8 text */
  stdin: string;
}

/** The directory every path in a config points into; fixtures name it with this token. */
const DIR_TOKEN = '@DIR@';

function prevResult(dir: string): Json {
  return {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'cni0', mac: '0a:58:0a:f4:01:01' }, { name: 'veth1', mac: '0a:58:0a:f4:01:02' }, { name: 'eth0', mac: '0a:58:0a:f4:01:03', sandbox: join(dir, 'no-such-netns') }],
    ips: [{ address: '10.244.1.5/24', gateway: '10.244.1.1', interface: 2 }, { address: 'fd00:10:244:1::5/64', gateway: 'fd00:10:244:1::1', interface: 2 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }, { dst: '::/0' }],
    dns: { nameservers: ['10.96.0.10'], search: ['default.svc.cluster.local'], options: ['ndots:5'] },
  };
}

/** Valid configs of each plugin, written by hand from the plugins' docs and the reference's. */
function corpus(dir: string): Json[] {
  const ipam = (type: string): Json => ({
    type,
    ranges: [[{ subnet: '10.244.1.0/24', rangeStart: '10.244.1.10', rangeEnd: '10.244.1.250', gateway: '10.244.1.1' }], [{ subnet: 'fd00:10:244:1::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '10.96.0.0/12', gw: '10.244.1.1' }],
    dataDir: join(dir, 'ipam'),
    resolvConf: join(dir, 'resolv.conf'),
  });
  return [
    { cniVersion: '1.1.0', name: 'fuzz', type: 'pontoon-bridge', bridge: 'fz0', isGateway: true, isDefaultGateway: false, ipMasq: true, hairpinMode: true, mtu: 1450, promiscMode: false, vlan: 0, ipam: ipam('pontoon-ipam'), prevResult: prevResult(dir) },
    { cniVersion: '0.4.0', name: 'fuzz', type: 'pontoon-bridge', bridge: 'fz1', ipam: { type: 'pontoon-ipam', subnet: '10.22.0.0/16', dataDir: join(dir, 'ipam') }, prevResult: prevResult(dir) },
    { cniVersion: '1.0.0', name: 'fuzz', type: 'pontoon-ipam', ...(ipam('pontoon-ipam') as Record<string, Json>), ipam: ipam('pontoon-ipam'), prevResult: prevResult(dir), runtimeConfig: { ips: ['10.244.1.7/24'] }, args: { cni: { ips: ['10.244.1.8'] } } },
    { cniVersion: '1.1.0', name: 'fuzz', type: 'pontoon-flannel', subnetFile: join(dir, 'subnet.env'), dataDir: join(dir, 'flannel'), delegate: { bridge: 'fz2', hairpinMode: true, isDefaultGateway: true, ipam: { dataDir: join(dir, 'ipam') } }, prevResult: prevResult(dir) },
    { cniVersion: '0.3.1', name: 'fuzz', type: 'pontoon-flannel', subnetFile: join(dir, 'subnet.env'), dataDir: join(dir, 'flannel'), delegate: { type: 'bridge' } },
  ];
}

function baseEnv(dir: string, command: string): Record<string, string> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: 'fuzzc0ffee', CNI_NETNS: join(dir, 'no-such-netns'), CNI_IFNAME: 'eth0', CNI_PATH: join(dir, 'bin'), CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p' };
}

const ODD_ENV_VALUES = ['', ' ', '=', ';', ';;', 'a=b=c', 'IP=10.244.1.300', 'IP=', 'IgnoreUnknown=true;IP=fd00::1', 'eth0/..', 'x'.repeat(16), 'a b', '..', '.', '\u00e9th0', '-', '0', 'VERSION\n', 'version', 'GC', 'ADD ', '/proc/self/ns/net/x'];

function mutateEnv(random: Random, env: Record<string, string>): Record<string, string> {
  const out = { ...env };
  const rounds = int(random, 3);
  const keys = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH', 'CNI_ARGS'];
  for (let i = 0; i < rounds; i++) {
    const key = pick(random, keys);
    const choice = int(random, 3);
    if (choice === 0) delete out[key];
    else if (choice === 1) out[key] = pick(random, ODD_ENV_VALUES);
    else out[key] = new TextDecoder().decode(mutateBytes(random, new TextEncoder().encode(out[key] ?? ''), [], 2));
  }
  // Commands that would build something are never sent: the property is about refusing input.
  if (out['CNI_COMMAND'] !== undefined && !SAFE_COMMANDS.has(out['CNI_COMMAND']) && /^(ADD|DEL|GC)$/.test(out['CNI_COMMAND'])) out['CNI_COMMAND'] = 'CHECK';
  // CNI_NETNS must never name a namespace that exists, here or in /proc.
  if (out['CNI_NETNS'] !== undefined && out['CNI_NETNS'] !== '' && out['CNI_NETNS'] !== env['CNI_NETNS']) out['CNI_NETNS'] = join(env['CNI_NETNS'] ?? '/nonexistent', out['CNI_NETNS'].replace(/\.\./g, '_'));
  return out;
}

function withDir(value: string, dir: string): string {
  return value.split(DIR_TOKEN).join(dir);
}

/** Runs one input; the output and exit code as a runtime would see them. */
export async function runCni(input: CniInput, dir: string): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(input.env)) env[key] = withDir(value, dir);
  const code = await runPlugin(HANDLERS[input.plugin], classifyError, {
    env,
    readStdin: () => Buffer.from(withDir(input.stdin, dir), 'utf8'),
    writeStdout: (text) => {
      stdout += text;
    },
  });
  return { code, stdout };
}

export function judgeOutput(input: CniInput, code: number, stdout: string): Verdict {
  const command = input.env['CNI_COMMAND'] ?? '(none)';
  const lines = stdout.split('\n').filter((line) => line !== '');
  if (lines.length !== 1) return code === 0 && lines.length === 0 && command !== 'VERSION' ? { outcome: `${command} ok` } : { crash: `exit ${code} with ${lines.length} lines of output: ${JSON.stringify(stdout.slice(0, 500))}` };
  let body: unknown;
  try {
    body = JSON.parse(lines[0] ?? '');
  } catch {
    return { crash: `output is not JSON: ${JSON.stringify(stdout.slice(0, 500))}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { crash: `output is not an object: ${stdout.slice(0, 500)}` };
  const o = body as Record<string, unknown>;
  if (code === 0) {
    if (command === 'VERSION' && Array.isArray(o['supportedVersions']) && typeof o['cniVersion'] === 'string') return { outcome: 'VERSION ok' };
    return { crash: `exit 0 for ${command} with ${stdout.slice(0, 500)}` };
  }
  if (typeof o['cniVersion'] !== 'string' || typeof o['code'] !== 'number' || typeof o['msg'] !== 'string' || o['msg'] === '') return { crash: `error output is not spec-shaped: ${stdout.slice(0, 500)}` };
  if ('details' in o && typeof o['details'] !== 'string') return { crash: `error details is not a string: ${stdout.slice(0, 500)}` };
  const errorCode = o['code'];
  if (!SPEC_CODES.has(errorCode) && !(errorCode >= 100 && errorCode !== 999)) return { crash: `error code ${errorCode} is not a spec code: ${stdout.slice(0, 800)}` };
  if (/\n\s+at /.test(o['msg'])) return { crash: `a stack trace in msg: ${stdout.slice(0, 800)}` };
  return { outcome: `${SAFE_COMMANDS.has(command) ? command : 'other'} code ${errorCode}` };
}

/**
 * Runs one input with `dir` as the sandbox (and the working directory, so relative paths in
 * a config land inside it too) and judges the answer.
 */
export async function judgeCni(json: Json, dir: string): Promise<Verdict> {
  const input = asCniInput(json);
  const command = input.env['CNI_COMMAND'] ?? '';
  if (/^(ADD|DEL|GC)$/.test(command)) return { crash: `refusing to run ${command}, which changes state` };
  if (netnsPath(input.env['CNI_NETNS'] ?? '').startsWith('/proc')) return { crash: 'refusing a CNI_NETNS under /proc' };
  if (!ipamStaysInside(input, dir)) return { outcome: 'skipped: IPAM data dir outside the sandbox' };
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const { code, stdout } = await runCni(input, dir);
    return judgeOutput(input, code, stdout);
  } finally {
    process.chdir(cwd);
  }
}

/**
 * The same input through a built plugin binary (dist/cni/pontoon-*), as a runtime execs it:
 * the whole process path — shebang, pluginMain's lazy load, output on fd 1, exit code.
 */
export function judgeCniBinary(json: Json, dir: string, binDir: string): Verdict {
  const input = asCniInput(json);
  if (/^(ADD|DEL|GC)$/.test(input.env['CNI_COMMAND'] ?? '') || !ipamStaysInside(input, dir)) return { outcome: 'skipped' };
  // execve cannot carry a NUL in the environment, so no runtime can send one.
  if (Object.entries(input.env).some(([key, value]) => `${key}${value}`.includes('\0'))) return { outcome: 'skipped' };
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  for (const [key, value] of Object.entries(input.env)) env[key] = withDir(value, dir);
  const result = spawnSync(join(binDir, `pontoon-${input.plugin}`), [], { cwd: dir, env, input: withDir(input.stdin, dir), encoding: 'utf8', timeout: 30_000 });
  if (result.error) return { crash: `failed to run the binary: ${result.error.message}` };
  if (result.status === null) return { crash: `the binary was killed by ${result.signal ?? 'a signal'}` };
  return judgeOutput(input, result.status, result.stdout);
}

export function asCniInput(json: Json): CniInput {
  const o = json as Record<string, Json>;
  const env = (o['env'] ?? {}) as Record<string, string>;
  return { plugin: (o['plugin'] as Plugin) ?? 'bridge', env, stdin: String(o['stdin'] ?? '') };
}

/**
 * CHECK and STATUS of the bridge and IPAM open the address store, which creates its
 * directory and lock file — at host-local's default /var/lib/cni/networks when a mutation
 * dropped `ipam.dataDir` or nulled it, or wherever a mangled path points. Such inputs are skipped (and
 * counted): a config the store cannot be opened from is still tested through the other
 * fields, and the machine's own IPAM state is never touched.
 */
export function ipamStaysInside(input: CniInput, dir: string): boolean {
  let config: unknown;
  try {
    config = JSON.parse(withDir(input.stdin, dir));
  } catch {
    return true; // refused at decoding, before any file is opened
  }
  if (input.plugin === 'flannel' || typeof config !== 'object' || config === null) return true; // flannel's CHECK/STATUS only read
  const ipam = (config as Record<string, unknown>)['ipam'];
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) return true; // refused before the store
  const dataDir = (ipam as Record<string, unknown>)['dataDir'];
  // null counts as absent, here as in host-local (a JSON null leaves Go's string empty).
  if (dataDir === undefined || dataDir === null) return false;
  if (typeof dataDir !== 'string') return true; // refused: not a path
  const inside = resolve(dir, dataDir);
  return inside.startsWith(`${dir}/`) && !dataDir.includes('\0');
}

/** Moves the JavaScript thread into a fresh lab namespace; returns how to come back. */
function enterLabNetns(): () => void {
  if (process.getuid?.() !== 0) return () => undefined;
  const name = `ptest-${process.pid.toString(36)}-fuzzcni`;
  const leave = enterNetns(createNetns(name));
  return () => {
    try {
      leave();
    } finally {
      deleteNetns(name);
    }
  };
}

export const cniTarget: FuzzTarget = {
  name: 'cni',
  async open(): Promise<FuzzSession> {
    const dir = mkdtempSync(join(tmpdir(), 'pontoon-fuzz-cni-'));
    writeFileSync(join(dir, 'subnet.env'), 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.96.0.10\nsearch svc.cluster.local\noptions ndots:5\n');
    const leave = enterLabNetns();
    // Configs name paths under `dir` by token, so an input replays in another temp dir.
    const docs = corpus(DIR_TOKEN);
    return {
      generate(random) {
        const plugin = pick(random, PLUGINS);
        const command = pick(random, ['VERSION', 'CHECK', 'CHECK', 'CHECK', 'STATUS']);
        const env = random() < 0.7 ? mutateEnv(random, baseEnv(DIR_TOKEN, command)) : baseEnv(DIR_TOKEN, command);
        const stdin = random() < 0.9 ? mutateJsonText(random, pick(random, docs), docs) : JSON.stringify(pick(random, docs));
        return { plugin, env, stdin };
      },
      judge: (json) => judgeCni(json, dir),
      async close() {
        leave();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};
