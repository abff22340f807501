/**
 * pontoon-bridge and pontoon-ipam under a real container runtime: podman 4 with its CNI
 * network backend and runc starts busybox containers on a Pontoon network, inside a node
 * namespace from the Lab fixture.
 *
 * Podman is confined to this test's temp dirs as far as it lets itself be:
 * - Its own containers.conf (CONTAINERS_CONF replaces the machine's files): runc and cgroupfs
 *   (crun fails on this host's cgroups), the CNI backend with our plugin dirs, a config dir
 *   holding only our conflist, events and container logs in files rather than the journal.
 * - `--root`, `--runroot` and `--tmpdir` in a Lab temp dir, with the vfs storage driver: the
 *   image store needs no kernel mounts, so a failed run leaves nothing to unmount.
 * - The image is a tar of /bin/busybox fed to `podman import`; no registry is reached. Import
 *   writes the blob-info cache to /var/lib/containers/cache whatever `--root` says (upstream's
 *   choice, podman#15398), so it runs in a private mount namespace with a tmpfs on /var/lib.
 * - libcni keeps each attachment's result in /var/lib/cni/results, a path podman 4.3 cannot
 *   move; `run` and `rm` must share that cache, so they use the real one, and the tests check
 *   that DEL removed our entries.
 *
 * Podman runs under `nsenter --net`: `ip netns exec` remounts /sys, which hides the cgroup
 * mounts runc needs. The conflist says cniVersion 1.0.0 because podman 4.3's libcni hands a
 * 1.1.0 config to the plugin but cannot read the 1.1.0 result back ("unsupported CNI result
 * version"). portmap follows pontoon-bridge as in podman's own default network, so a
 * reference plugin has to read our result as its prevResult.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/lib/exec.js';
import { formatIp, netContains, parseIp, parseIpNet, tryParseIp } from '../../src/lib/ip.js';
import { openRtnl } from '../../src/lib/netns.js';
import { PONTOON_CNI_DIR, REFERENCE_CNI_DIR } from '../helpers/cni.js';
import { Lab } from '../helpers/lab.js';

const NETWORK = 'ptnpodman';
const BRIDGE = 'ptn0';
const SUBNET = '10.93.0.0/24';
const GATEWAY = '10.93.0.1';
const IMAGE = 'localhost/pontoon-busybox:test';
const BUSYBOX_APPLETS = ['sh', 'ip', 'ls', 'sleep'];
const HOST_PORT = 18080;
/** Where libcni (inside podman) caches ADD results, as `<network>-<containerID>-<ifname>`. */
const LIBCNI_CACHE_DIR = '/var/lib/cni/results';
const PODMAN_TIMEOUT_MS = 90_000;
const TEST_TIMEOUT_MS = 120_000;

const lab = new Lab('podman');
let node = '';
let ipamDataDir = '';
let podmanEnv: NodeJS.ProcessEnv = {};
let podmanGlobalArgs: string[] = [];
let imported = false;

function conflist(dataDir: string): object {
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    plugins: [
      {
        type: 'pontoon-bridge',
        bridge: BRIDGE,
        isGateway: true,
        ipMasq: false,
        ipam: { type: 'pontoon-ipam', ranges: [[{ subnet: SUBNET }]], dataDir, routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

function containersConf(networkConfigDir: string): string {
  // JSON strings and arrays of strings are valid TOML.
  return `[containers]
log_driver = "k8s-file"
# podman asks for nofile=1048576 by default, above this sandbox's hard limit: runc then fails
# with "error setting rlimit type 7: operation not permitted".
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# The default shm locks live in /dev/shm/libpod_lock, one segment for every podman on the
# machine, and a fresh --tmpdir makes podman free all of them: file locks stay in --tmpdir.
lock_type = "file"

[network]
network_backend = "cni"
cni_plugin_dirs = ${JSON.stringify([PONTOON_CNI_DIR, REFERENCE_CNI_DIR])}
network_config_dir = ${JSON.stringify(networkConfigDir)}
`;
}

/** A single-layer image: static busybox plus a symlink per applet the tests call. */
function buildRootfsTar(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const applet of BUSYBOX_APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  const tar = join(dir, 'rootfs.tar');
  run('tar', ['--numeric-owner', '-C', rootfs, '-cf', tar, '.']);
  return tar;
}

/** Runs podman in the node namespace with this test's state and config; returns stdout. */
function podman(args: readonly string[]): string {
  return run('nsenter', [`--net=${lab.path(node)}`, 'podman', ...podmanGlobalArgs, ...args], { env: podmanEnv, timeoutMs: PODMAN_TIMEOUT_MS });
}

/** Addresses pontoon-ipam holds on our network, with the owner file's content. */
function reservations(): Map<string, string> {
  const dir = join(ipamDataDir, NETWORK);
  const held = new Map<string, string>();
  if (!existsSync(dir)) return held;
  for (const name of readdirSync(dir)) {
    if (tryParseIp(name)) held.set(name, readFileSync(join(dir, name), 'utf8'));
  }
  return held;
}

function libcniCacheEntries(containerId: string): string[] {
  if (!existsSync(LIBCNI_CACHE_DIR)) return [];
  return readdirSync(LIBCNI_CACHE_DIR).filter((name) => name.startsWith(`${NETWORK}-${containerId}-`));
}

interface BridgeState {
  kind?: string;
  up: boolean;
  addresses: string[];
  /** Names of the links enslaved to the bridge: one host-side veth per attached container. */
  ports: string[];
}

function bridgeState(): BridgeState | undefined {
  const rtnl = openRtnl(lab.path(node));
  try {
    const bridge = rtnl.linkByName(BRIDGE);
    if (!bridge) return undefined;
    return {
      kind: bridge.kind,
      up: bridge.up,
      addresses: rtnl.addresses(4, bridge.index).map((a) => `${formatIp(a.address)}/${a.address.prefixLength}`),
      ports: rtnl.links().filter((l) => l.masterIndex === bridge.index).map((l) => l.name),
    };
  } finally {
    rtnl.close();
  }
}

before(() => {
  node = lab.netns('node');
  const dir = lab.tempDir('podman');
  ipamDataDir = join(dir, 'ipam');
  const networkConfigDir = join(dir, 'net.d');
  const tmp = join(dir, 'tmp');
  for (const sub of [ipamDataDir, networkConfigDir, tmp]) mkdirSync(sub, { recursive: true });
  writeFileSync(join(networkConfigDir, `${NETWORK}.conflist`), JSON.stringify(conflist(ipamDataDir), null, 2));
  writeFileSync(join(dir, 'containers.conf'), containersConf(networkConfigDir));
  // Only what podman and the plugins need: node must be on PATH for the plugins' shebang.
  podmanEnv = {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    TMPDIR: tmp,
  };
  podmanGlobalArgs = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'libpod'), '--storage-driver', 'vfs'];
  const tar = buildRootfsTar(dir);
  run(
    'unshare',
    ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs pontoon-podman /var/lib && exec "$@"', 'sh', 'podman', ...podmanGlobalArgs, 'import', tar, IMAGE],
    { env: podmanEnv, timeoutMs: PODMAN_TIMEOUT_MS },
  );
  imported = true;
}, { timeout: TEST_TIMEOUT_MS });

after(() => {
  try {
    // Containers a failed test left behind: rm runs CNI DEL and stops conmon and runc.
    if (imported) podman(['rm', '--all', '--force', '--time', '0']);
  } finally {
    lab.cleanup();
  }
});

test('podman run --rm: eth0 gets a pontoon-ipam address behind ptn0, and DEL gives it back', { timeout: TEST_TIMEOUT_MS }, () => {
  const cidFile = join(lab.tempDir('podman-cid'), 'cid');
  const script = `ip -4 -o addr show dev eth0; echo ---; ip -4 route; echo ---; ls /ipam/${NETWORK}`;
  const output = podman(['run', '--rm', '--pull', 'never', '--cidfile', cidFile, '--network', NETWORK, '--volume', `${ipamDataDir}:/ipam:ro`, IMAGE, 'sh', '-c', script]);
  const containerId = readFileSync(cidFile, 'utf8').trim();
  const [addressText = '', routeText = '', listing = ''] = output.split('---\n');

  const match = /\binet (\d+\.\d+\.\d+\.\d+)\/24\b/.exec(addressText);
  assert.ok(match?.[1], `eth0 has an IPv4 /24 address:\n${output}`);
  const address = match[1];
  assert.ok(netContains(parseIpNet(SUBNET), parseIp(address)), `${address} is in ${SUBNET}`);
  assert.notEqual(address, GATEWAY);
  assert.match(routeText, /^default via 10\.93\.0\.1 dev eth0/m);
  assert.ok(listing.split('\n').includes(address), `pontoon-ipam held ${address} while the container ran:\n${listing}`);

  assert.deepEqual([...reservations().keys()], [], '--rm ran CNI DEL, which released the address');
  // libcni drops its cached result only when DEL succeeded for the whole chain; with --rm the
  // DEL often runs in conmon's cleanup process, whose errors nobody sees, so this is the
  // one sign of a DEL that released the address and then failed.
  assert.deepEqual(libcniCacheEntries(containerId), [], 'CNI DEL succeeded for the whole chain');
  const bridge = bridgeState();
  assert.ok(bridge, `${BRIDGE} exists in the node namespace`);
  assert.equal(bridge.kind, 'bridge');
  assert.equal(bridge.up, true);
  assert.deepEqual(bridge.addresses, [`${GATEWAY}/24`]);
  assert.deepEqual(bridge.ports, [], 'no veth is left on the bridge');
});

test('podman run -d with a published port, then rm: portmap reads our result; every trace goes', { timeout: TEST_TIMEOUT_MS }, () => {
  const containerId = podman(['run', '--detach', '--pull', 'never', '--network', NETWORK, '--publish', `${HOST_PORT}:80`, IMAGE, 'sleep', '300']).trim();
  assert.match(containerId, /^[0-9a-f]{64}$/);
  let address: string;
  try {
    const held = reservations();
    assert.equal(held.size, 1, `one address held: ${[...held.keys()].join(', ')}`);
    const [entry] = [...held];
    assert.ok(entry);
    address = entry[0];
    // host-local's owner format: the ID podman passed as CNI_CONTAINERID, then CNI_IFNAME.
    assert.equal(entry[1], `${containerId}\r\neth0`);
    assert.equal(bridgeState()?.ports.length, 1, 'the container veth is on the bridge');
    assert.match(lab.exec(node, 'iptables-save', ['-t', 'nat']), new RegExp(`--to-destination ${address.replace(/\./g, '\\.')}:80\\b`), 'portmap found the address in our prevResult');
    assert.equal(libcniCacheEntries(containerId).length, 1, 'libcni cached the ADD result');
  } finally {
    podman(['rm', '--force', '--time', '0', containerId]);
  }

  assert.deepEqual([...reservations().keys()], []);
  assert.deepEqual(bridgeState()?.ports, []);
  assert.doesNotMatch(lab.exec(node, 'iptables-save', ['-t', 'nat']), new RegExp(`${address.replace(/\./g, '\\.')}:80\\b`));
  assert.deepEqual(libcniCacheEntries(containerId), []);
});
