/**
 * A unix stream socket that answers one line with one line: what a daemon's local control
 * interface needs (the BGP speaker's status socket, the IPIP tunnel's peer table). The socket
 * file is created mode 0600, replacing a stale one left by a crash: it is root's interface.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname } from 'node:path';

export interface LineServerOptions {
  /** a client whose unanswered line grows past this is disconnected (default: no bound) */
  readonly maxLineBytes?: number;
}

/** Listens on `path`; `answer` turns each received line (without its newline) into the reply line. */
export function serveLines(path: string, answer: (line: string) => string, options: LineServerOptions = {}): Promise<Server> {
  const maxLineBytes = options.maxLineBytes ?? Number.POSITIVE_INFINITY;
  const server = createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        socket.write(`${answer(line)}\n`);
      }
      if (buffered.length > maxLineBytes) socket.destroy();
    });
  });
  mkdirSync(dirname(path), { recursive: true });
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      chmodSync(path, 0o600);
      resolve(server);
    });
  });
}
