/**
 * `kubectl attach`: the running container's output from now on, and its stdin when it has
 * one. A container writes stdout and stderr straight into its log file (containers.ts), so
 * attach follows that file from its current end — both streams arrive on stdout, as they
 * share the file. Stdin is the fifo a `stdin: true` container was started reading.
 * The session ends when that run of the container ends, or when the client leaves.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import type { ExecResult } from './exec.js';
import type { StreamedProcess } from './remotecommand.js';
import type { ContainerTarget } from './target.js';

const FOLLOW_POLL_MS = 100;
const CHUNK_BYTES = 64 * 1024;

export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export function startAttach(target: ContainerTarget, options: AttachOptions): StreamedProcess {
  const output = new PassThrough();
  let stopped = false;
  let stdin: WriteStream | undefined;
  if (options.stdin && target.stdinPath) {
    // O_WRONLY on a fifo the container holds open for reading does not block.
    stdin = createWriteStream(target.stdinPath, { flags: 'a' });
    stdin.on('error', () => undefined);
  }
  const log = target.log;
  const follow = async (): Promise<ExecResult> => {
    if (!log) return { exitCode: 0 };
    let offset = await stat(log.path).then((s) => s.size, () => 0);
    const buffer = Buffer.alloc(CHUNK_BYTES);
    while (!stopped) {
      const active = log.active();
      const handle = await open(log.path, 'r').catch(() => undefined);
      if (handle) {
        try {
          for (;;) {
            const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, offset);
            if (bytesRead === 0) break;
            offset += bytesRead;
            output.write(Buffer.from(buffer.subarray(0, bytesRead)));
          }
        } finally {
          await handle.close();
        }
      }
      if (!active) break;
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    }
    return { exitCode: 0 };
  };
  const done = follow().then((result) => {
    output.end();
    stdin?.end();
    return result;
  });
  return {
    stdin,
    stdout: options.stdout || options.stderr ? output : undefined,
    stderr: undefined,
    resize: () => undefined,
    kill: () => {
      stopped = true;
      stdin?.destroy();
    },
    done,
  };
}
