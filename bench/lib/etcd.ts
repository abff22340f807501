/**
 * A throwaway etcd for benchmarks, started like test/helpers/etcd.ts (own data dir under
 * tmp, loopback ports) with two differences a long interactive run needs:
 * - it runs in its own process group, so a Ctrl-C at the terminal reaches the benchmark only,
 *   whose cleanup then stops the apiserver before etcd rather than both dying at once;
 * - stop() also works when etcd already died (by a signal or on its own): it never waits
 *   for an exit event that has already fired.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PontoonError } from '../../src/lib/errors.js';

export class BenchEtcdError extends PontoonError {}

export interface BenchEtcd {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;

/** A loopback port free right now (the kernel picks it), for etcd's flags. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new BenchEtcdError('failed to pick a free port for etcd'))));
    });
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function startBenchEtcd(): Promise<BenchEtcd> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pontoon-bench-etcd-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    'etcd',
    [
      '--name', 'bench',
      '--data-dir', dataDir,
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `bench=${peer}`,
      '--log-level', 'error',
    ],
    { stdio: 'ignore', detached: true },
  );
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  const stop = async (): Promise<void> => {
    if (!exited(child) && child.pid !== undefined) {
      child.kill('SIGTERM');
      const stopped = await Promise.race([gone.then(() => true), sleep(5_000).then(() => false)]);
      if (!stopped) {
        child.kill('SIGKILL');
        await gone;
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError || exited(child)) {
      await stop();
      throw new BenchEtcdError(`failed to start etcd: ${spawnError?.message ?? `it exited (${child.exitCode ?? child.signalCode})`}`);
    }
    try {
      if ((await fetch(`${endpoint}/health`)).ok) return { endpoint, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new BenchEtcdError(`etcd at ${endpoint} did not become healthy within ${START_TIMEOUT_MS} ms`);
    }
    await sleep(100);
  }
}
