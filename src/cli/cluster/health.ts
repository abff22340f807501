/**
 * Startup health of a lab node's daemons, for `cluster up` and `cluster add-node`.
 *
 * A daemon counts as healthy once it is alive *and* has logged its first successful sync
 * (flanneld: subnet.env written after the masquerade rules went in; proxy: first rule sync;
 * kubelet: running; BGP agent: started). "Started" is not enough: a flanneld on a machine
 * without iptables writes subnet.env and then dies on `iptables-save`, and a lab that printed
 * ✔ at that point showed DOWN on the next `cluster status`. A daemon that exits before it is
 * healthy fails the wait at once, with its log tail, instead of a timeout later.
 *
 * The daemons log pino JSON lines, so a milestone is matched as the exact `"msg":"..."`
 * field, never as a substring of some other message.
 */
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { PontoonError } from '../../lib/errors.js';
import { logTail } from './control-plane.js';

export class DaemonUnhealthyError extends PontoonError {
  constructor(
    readonly daemon: string,
    readonly reason: 'exited' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

export interface DaemonWatch {
  /** e.g. `flanneld on n2` */
  what: string;
  pid: number;
  /** a word of its command line, to tell it from a recycled pid */
  marker: string;
  logFile: string;
  /** the pino `msg` of its first successful sync */
  readyMessage: string;
  /**
   * Where this run of the daemon starts in its log: logs are appended across restarts, and
   * the previous run's milestone must not count for this one.
   */
  logOffset?: number;
}

const startOffsets = new Map<string, number>();

/** Call just before starting a daemon that logs to `file` (startDaemon does). */
export function markLogStart(file: string): void {
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    // no log yet
  }
  startOffsets.set(file, size);
}

/** The offset recorded by markLogStart in this process (0 when it was not called here). */
export function logStartOffset(file: string): number {
  return startOffsets.get(file) ?? 0;
}

/** The log message each node daemon writes once its first sync succeeded. */
export const READY_MESSAGES = {
  flanneld: 'wrote subnet.env',
  kubelet: 'kubelet running',
  proxy: 'synced',
  bgp: 'BGP node agent started',
} as const;

/**
 * True when `pid` runs and its command line contains `marker`. A zombie is dead. An empty
 * command line is alive: /proc/<pid>/cmdline reads empty while the process is inside execve
 * (nsenter and env exec the daemon), and a daemon checked at that instant is not dead.
 */
export function processAlive(pid: number, marker: string): boolean {
  if (pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline === '' || cmdline.includes(marker);
  } catch {
    return false;
  }
}

export function logHasMessage(file: string, message: string, fromOffset = 0): boolean {
  let text: string;
  try {
    text = readFileSync(file).subarray(fromOffset).toString('utf8');
  } catch {
    return false;
  }
  return text.includes(`"msg":${JSON.stringify(message)}`);
}

/**
 * Waits until every daemon is healthy. Throws DaemonUnhealthyError for the first that exits
 * (or is still not healthy at the deadline), with the tail of its log.
 */
export async function waitHealthy(daemons: readonly DaemonWatch[], timeoutMs = 60_000): Promise<void> {
  const pending = new Set(daemons);
  const deadline = Date.now() + timeoutMs;
  while (pending.size > 0) {
    for (const daemon of pending) {
      // Read the log before checking liveness: a daemon that logged its milestone and then
      // died is caught by the second check below, not counted as healthy.
      const ready = logHasMessage(daemon.logFile, daemon.readyMessage, daemon.logOffset ?? 0);
      if (!processAlive(daemon.pid, daemon.marker)) {
        throw new DaemonUnhealthyError(daemon.what, 'exited', `${daemon.what} exited during startup (pid ${daemon.pid}); last lines of ${daemon.logFile}:\n${logTail(daemon.logFile)}`);
      }
      if (ready) pending.delete(daemon);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      const first = [...pending][0]!;
      throw new DaemonUnhealthyError(first.what, 'timeout', `${first.what} not healthy after ${timeoutMs} ms (no "${first.readyMessage}" yet); last lines of ${first.logFile}:\n${logTail(first.logFile)}`);
    }
    await sleep(100);
  }
  // Still alive once all are up: a daemon that crashed right after its milestone fails here.
  for (const daemon of daemons) {
    if (!processAlive(daemon.pid, daemon.marker)) {
      throw new DaemonUnhealthyError(daemon.what, 'exited', `${daemon.what} exited right after starting (pid ${daemon.pid}); last lines of ${daemon.logFile}:\n${logTail(daemon.logFile)}`);
    }
  }
}
