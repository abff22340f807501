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

async function waitHealthy(endpoint: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${endpoint}/health`);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error(`etcd at ${endpoint} did not become healthy`);
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
    await waitHealthy(endpoint);
  };
  const kill = async (): Promise<void> => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };
  await launch();
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
