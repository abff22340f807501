/** A watch stream read over plain HTTP, one event at a time, for the watch tests. */
import assert from 'node:assert/strict';
import { request, type ClientRequest } from 'node:http';
import type { WatchEvent } from '../../src/api/meta.js';

/** A watch stream whose events are read one at a time. */
export class WatchStream {
  readonly events: WatchEvent[] = [];
  ended = false;
  status = 0;
  private waiters: (() => void)[] = [];
  private readonly req: ClientRequest;

  constructor(base: string, path: string, accept?: string) {
    const url = new URL(path, base);
    let buffered = '';
    this.req = request({ hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: accept ? { Accept: accept } : {} }, (res) => {
      this.status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line.trim()) this.events.push(JSON.parse(line) as WatchEvent);
        }
        this.wake();
      });
      res.on('end', () => {
        this.ended = true;
        this.wake();
      });
    });
    this.req.on('error', () => {
      this.ended = true;
      this.wake();
    });
    this.req.end();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Waits until `count` events arrived (or the stream ended); returns them all. */
  async waitFor(count: number, timeoutMs = 5000): Promise<WatchEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < count && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`expected ${count} events, got ${this.events.length}: ${JSON.stringify(this.events.map((e) => e.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events;
  }

  async waitEnd(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) assert.fail('watch did not end');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  close(): void {
    this.req.destroy();
  }
}
