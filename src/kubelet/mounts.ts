/**
 * A container's filesystem view and UTS name, made by the command that starts it.
 *
 * Design note. There is no image, so a container's root is the node's root; what makes its
 * view its own is a mount namespace of its own in which the kubelet's files and the pod's
 * volumes are bind-mounted over paths of that root:
 *
 *   [ip netns exec <sandbox>] unshare --mount --uts --propagation slave -- \
 *     /bin/sh -c '<hostname; mkdir mountpoints; mount --bind ...; cd workingDir; exec "$@"' \
 *     pontoon-container <argv...>
 *
 * Every step execs in place (ip, unshare without --fork, sh's `exec`), so the pid the kubelet
 * spawned is the container's main process and its namespaces are what enter.ts joins.
 * Propagation slave: nothing mounted inside reaches the node, while an unmount on the node
 * (a torn-down tmpfs) still reaches the container. The mounts die with the last process of
 * the namespace, so a deleted pod leaves no mount behind; the only trace on the node is a
 * mountpoint (an empty directory, or an empty file for a file mount) created where the
 * node's root had nothing at a mountPath, as runtimes create them in an image's rootfs.
 *
 * Per container rather than per pod: a pod-wide mount namespace would need a process or a
 * bind-mounted nsfs file to keep it alive between container restarts, and containers differ
 * in their volumeMounts anyway. Sharing between a pod's containers happens through the
 * volume directories on the node, which every container binds.
 *
 * The script is built here with every value single-quoted, so a mountPath with spaces or
 * quotes stays one argument.
 */

export interface BindMount {
  /** Path on the node (a pod volume directory, a file the kubelet wrote, a hostPath). */
  source: string;
  /** Path inside the container. */
  target: string;
  readOnly: boolean;
  /** Whether the source is a directory (the mountpoint is made to match). */
  directory: boolean;
}

export interface ContainerFilesystem {
  /** The UTS namespace's hostname. */
  hostname: string;
  mounts: readonly BindMount[];
  /** cd'ed into after the mounts, so a workingDir inside a volume is the volume's. */
  workingDir: string;
}

/** The argv[0] the container's shell runs as (shown by ps until it execs the command). */
const SCRIPT_NAME = 'pontoon-container';
/** The script writes one byte here when the binds are made; the spawner gives it a pipe. */
export const SETUP_DONE_FD = 3;

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function depth(path: string): number {
  return path.split('/').filter(Boolean).length;
}

/** The shell script that builds the view; exported for tests of its quoting. */
export function setupScript(fs: ContainerFilesystem): string {
  const lines = ['set -e', `printf '%s' ${shellQuote(fs.hostname)} > /proc/sys/kernel/hostname`];
  // Parents before children, so /data/logs lands inside the /data volume, not under it.
  const ordered = [...fs.mounts].sort((a, b) => depth(a.target) - depth(b.target));
  for (const mount of ordered) {
    const target = shellQuote(mount.target);
    lines.push(
      mount.directory
        ? `[ -d ${target} ] || mkdir -p ${target}`
        : // A dangling symlink (a resolv.conf pointing at a stopped resolver's file) is not
          // created through: that would write on the node. The bind then fails, loudly.
          `[ -e ${target} ] || [ -L ${target} ] || { mkdir -p "$(dirname ${target})"; : > ${target}; }`,
      `mount -n --bind ${shellQuote(mount.source)} ${target}`,
    );
    // A bind mount takes ro only through a remount (mount(8) does both for -o bind,ro on new kernels only).
    if (mount.readOnly) lines.push(`mount -n -o remount,bind,ro ${target}`);
  }
  // Tell the kubelet the view is ready (fd 3, see containers.ts), and keep no fd of its.
  lines.push(`cd ${shellQuote(fs.workingDir)}`, `printf 1 >&${SETUP_DONE_FD}`, `exec ${SETUP_DONE_FD}>&-`, 'exec "$@"');
  return lines.join('\n');
}

/** argv that starts `argv` as a container in `netns` (undefined: the current one) with `fs`. */
export function containerLaunchArgv(netns: string | undefined, fs: ContainerFilesystem, argv: readonly string[]): string[] {
  const inNamespaces = ['unshare', '--mount', '--uts', '--propagation', 'slave', '--', '/bin/sh', '-c', setupScript(fs), SCRIPT_NAME, ...argv];
  return netns === undefined ? inNamespaces : ['ip', 'netns', 'exec', netns, ...inNamespaces];
}
