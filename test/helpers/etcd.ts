/** A throwaway etcd for tests: its own data dir, random loopback ports (or inside a namespace). */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TestEtcd {
  endpoint: string;
  stop(): Promise<void>;
  /** Kill without cleaning the data dir (to simulate an outage), then `restart()`. */
  kill(): Promise<void>;
  restart(): Promise<void>;
}

function randomPort(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

/**
 * Waits for /health to answer; fails at once, with the reason, if the process cannot be
 * spawned (no etcd binary: ENOENT) or exits first (a port taken, a bad flag), instead of
 * polling a dead port until the deadline.
 */
async function waitHealthy(endpoint: string, child: ChildProcess, timeoutMs = 15000): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (err) => {
    failure = new Error(`failed to start etcd (is it installed? scripts/setup.sh installs it): ${err.message}`, { cause: err });
  });
  child.once('exit', (code, signal) => {
    failure ??= new Error(`etcd exited before becoming healthy (code ${String(code)}, signal ${String(signal)})`);
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (failure) throw failure;
    try {
      const response = await fetch(`${endpoint}/health`);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw failure ?? new Error(`etcd at ${endpoint} did not become healthy within ${timeoutMs} ms`);
}

/** Starts etcd on 127.0.0.1 in the current namespace (loopback only). */
export async function startEtcd(): Promise<TestEtcd> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pontoon-etcd-'));
  const clientPort = randomPort();
  const peerPort = clientPort + 1;
  const endpoint = `http://127.0.0.1:${clientPort}`;
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    child = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', dataDir,
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
        '--log-level', 'error',
      ],
      { stdio: 'ignore' },
    );
    await waitHealthy(endpoint, child);
  };
  const kill = async (): Promise<void> => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };
  try {
    await launch();
  } catch (err) {
    await kill();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint,
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
