/**
 * Worker-thread entry that runs one apiserver (see apiserver-host.ts for why a worker).
 * Messages: in `close`; out `{ type: 'ready', url }`, `{ type: 'failed', error }`, `{ type: 'closed' }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/server.js';
import { describeError } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/log.js';

export interface ApiServerWorkerInput {
  /** A `--store` URL: the store is opened inside the worker, by the apiserver itself. */
  store: string;
}

export type ApiServerWorkerMessage = { type: 'ready'; url: string } | { type: 'failed'; error: string } | { type: 'closed'; error?: string };

const port = parentPort;
if (port) {
  const input = workerData as ApiServerWorkerInput;
  const send = (message: ApiServerWorkerMessage): void => port.postMessage(message);
  let server: RunningApiServer | undefined;
  port.on('message', (message: unknown) => {
    if (message !== 'close') return;
    const closing = server ? server.close() : Promise.resolve();
    closing.then(
      () => send({ type: 'closed' }),
      (err: unknown) => send({ type: 'closed', error: describeError(err) }),
    );
  });
  try {
    // Warnings only: a request log line per write would cost more than the write.
    server = await startApiServer({ store: input.store, listen: '127.0.0.1:0', log: createLogger('apiserver', { level: 'warn' }) });
    send({ type: 'ready', url: server.url });
  } catch (err) {
    send({ type: 'failed', error: describeError(err) });
  }
}
