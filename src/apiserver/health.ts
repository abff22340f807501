/**
 * `/healthz`, `/livez` and `/readyz` as kube-apiserver answers them: a list of named checks,
 * each `[+]name ok` or `[-]name failed: reason withheld`, then `<endpoint> check passed` or
 * `failed`. Without `?verbose` a passing endpoint says only `ok`; a failing one always lists
 * every check (with 500), so a load balancer's log says which one failed. `/readyz/<check>`
 * runs one check; `?exclude=<check>` (repeatable) leaves checks out, as upstream.
 *
 * Which endpoint runs which check follows upstream: the store's check (`etcd`, after its
 * etcd check; `store` for SQLite) is in healthz and readyz but not in livez, because
 * restarting an apiserver does not bring a lost etcd quorum back (upstream moved etcd out
 * of livez's restart decision for the same reason).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface HealthCheck {
  name: string;
  /** Resolves when healthy; rejects (or times out) otherwise. */
  check(): Promise<void>;
}

export type HealthEndpoint = 'healthz' | 'livez' | 'readyz';

export interface HealthAnswer {
  code: number;
  text: string;
}

/** A check that takes longer than this fails: a hung etcd must not hang the probe. */
const CHECK_TIMEOUT_MS = 2000;

async function passes(check: HealthCheck): Promise<boolean> {
  const timedOut = sleep(CHECK_TIMEOUT_MS, false, { ref: false });
  return Promise.race([check.check().then(() => true, () => false), timedOut]);
}

/**
 * Runs the checks of `/{endpoint}[/{single}]`. `checks` are the ones this endpoint has (the
 * caller picks them); `single` is the path's last part for one check.
 */
export async function answerHealth(endpoint: HealthEndpoint, checks: readonly HealthCheck[], query: URLSearchParams, single?: string): Promise<HealthAnswer> {
  if (single !== undefined) {
    const check = checks.find((c) => c.name === single);
    if (!check) return { code: 404, text: `404 page not found\n` };
    return (await passes(check)) ? { code: 200, text: 'ok' } : { code: 500, text: `internal server error: ${single} check failed\n` };
  }
  const excluded = new Set(query.getAll('exclude'));
  const chosen = checks.filter((c) => !excluded.has(c.name));
  const results = await Promise.all(chosen.map(async (c) => ({ name: c.name, ok: await passes(c) })));
  const lines = results.map((r) => (r.ok ? `[+]${r.name} ok` : `[-]${r.name} failed: reason withheld`));
  for (const name of excluded) if (checks.some((c) => c.name === name)) lines.push(`[+]${name} excluded: ok`);
  const ok = results.every((r) => r.ok);
  if (ok && !query.has('verbose')) return { code: 200, text: 'ok' };
  return { code: ok ? 200 : 500, text: `${lines.join('\n')}\n${endpoint} check ${ok ? 'passed' : 'failed'}\n` };
}
