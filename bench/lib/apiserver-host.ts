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
  const next = (timeoutMs: number, what: string): Promise<ApiServerWorkerMessage> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new ApiServerWorkerError(`apiserver worker (${storeUrl}) did not ${what} within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (message: ApiServerWorkerMessage): void => finish(undefined, message);
      const onError = (err: Error): void => finish(new ApiServerWorkerError(`apiserver worker (${storeUrl}) crashed: ${err.message}`, { cause: err }));
      const onExit = (code: number): void => finish(new ApiServerWorkerError(`apiserver worker (${storeUrl}) exited with code ${code}`));
      const finish = (err?: Error, message?: ApiServerWorkerMessage): void => {
        clearTimeout(timer);
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        if (err || !message) reject(err);
        else resolve(message);
      };
      worker.on('message', onMessage).once('error', onError).once('exit', onExit);
    });

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
      const closed = next(CLOSE_TIMEOUT_MS, 'close');
      worker.postMessage('close');
      try {
        const message = await closed;
        if (message.type === 'closed' && message.error) throw new ApiServerWorkerError(`failed to close apiserver on ${storeUrl}: ${message.error}`);
      } finally {
        await worker.terminate();
      }
    },
  };
}
