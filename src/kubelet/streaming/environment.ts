/**
 * The environment an exec'd command gets: the container's own, read from its main process,
 * as `runc exec` gives the exec'd process the container's env (PATH, the Service variables,
 * what the pod spec set). Where it runs is enter.ts's business.
 */
import { readFileSync } from 'node:fs';

/**
 * The container's environment, read from its main process, as `runc exec` gives the exec'd
 * process the container's env. Falls back to a plain PATH when the process is unreadable.
 */
export function containerEnvironment(pid: number): Record<string, string> {
  try {
    const env: Record<string, string> = {};
    for (const entry of readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch {
    return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  }
}
