/**
 * Runs an apiserver (`startApiServer`, the code `pontoon apiserver` runs) on 127.0.0.1 in a
 * worker thread of the benchmark process.
 *
 * Why a worker: in a real cluster the apiserver has a process to itself and its clients are
 * elsewhere. On the benchmark's own event loop, every client-side JSON encode and watch parse
 * would queue in front of the server's work and be charged to it. A worker has its own event
 * loop and heap, like a process, but needs neither the CLI bundle nor a port handshake.
 */
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { PontoonError } from '../../src/lib/errors.js';
import type { ApiServerWorkerInput, ApiServerWorkerMessage } from './apiserver-worker.js';

export class ApiServerWorkerError extends PontoonError {}

export interface ApiServerInWorker {
  /** `http://127.0.0.1:<port>` (no TLS, no tokens: the cost measured is the API's, not TLS's). */
  url: string;
  /** The worker's event loop utilization since `start` (or since it started): 1 = saturated. */
  eventLoopUtilization(start?: EventLoopUtilization): EventLoopUtilization;
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 10_000;

export async function startApiServerInWorker(storeUrl: string): Promise<ApiServerInWorker> {
  const input: ApiServerWorkerInput = { store: storeUrl };
  const worker = new Worker(new URL('./apiserver-worker.js', import.meta.url), { workerData: input });
  // Kept for the worker's whole life: a crash after start must neither take the benchmark
  // down (an 'error' event without a listener throws) nor leave close() waiting for a
  // message from a thread that is gone.
  let failure: Error | undefined;
  let exitCode: number | undefined;
  const messages: ApiServerWorkerMessage[] = [];
  const waiters = new Set<() => void>();
  const wake = (): void => waiters.forEach((waiter) => waiter());
  worker.on('message', (message: ApiServerWorkerMessage) => {
    messages.push(message);
    wake();
  });
  worker.on('error', (err) => {
    failure = new ApiServerWorkerError(`apiserver worker (${storeUrl}) crashed: ${err.message}`, { cause: err });
    wake();
  });
  worker.on('exit', (code) => {
    exitCode = code;
    wake();
  });

  const next = async (timeoutMs: number, what: string): Promise<ApiServerWorkerMessage> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = messages.shift();
      if (message) return message;
      if (failure) throw failure;
      if (exitCode !== undefined) throw new ApiServerWorkerError(`apiserver worker (${storeUrl}) exited with code ${exitCode} before it could ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new ApiServerWorkerError(`apiserver worker (${storeUrl}) did not ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  };

  let first: ApiServerWorkerMessage;
  try {
    first = await next(START_TIMEOUT_MS, 'start');
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  if (first.type !== 'ready') {
    await worker.terminate();
    throw new ApiServerWorkerError(`failed to start apiserver on ${storeUrl}: ${first.type === 'failed' ? first.error : 'unexpected message'}`);
  }
  return {
    url: first.url,
    eventLoopUtilization: (start) => worker.performance.eventLoopUtilization(start),
    async close() {
      if (exitCode !== undefined) return;
      worker.postMessage('close');
      try {
        const message = await next(CLOSE_TIMEOUT_MS, 'close');
        if (message.type === 'closed' && message.error) throw new ApiServerWorkerError(`failed to close apiserver on ${storeUrl}: ${message.error}`);
      } finally {
        await worker.terminate();
      }
    },
  };
}
