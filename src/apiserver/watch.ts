/**
 * `watch=true`: one long HTTP response of newline-delimited JSON events, one chunk each.
 *
 * Design notes:
 * - Start point: with no resourceVersion (or "0") the client first gets ADDED for everything
 *   that exists, from a list whose revision the store watch then starts after, so nothing
 *   falls between the two. With a version, the store replays from it; a compacted version is
 *   answered the way upstream does once a watch is accepted: 200 and one ERROR event holding
 *   a 410 `Expired` Status, after which clients re-list.
 * - Selectors are applied to both sides of every change, so a watcher sees an object *leave*
 *   its selector as DELETED and *enter* it as ADDED, never a MODIFIED it cannot place.
 * - Bookmarks carry a revision the watcher is known to have caught up with: the newest event
 *   it was sent, or the store revision sampled one interval earlier (store watches deliver
 *   within milliseconds, so an interval-old revision has been delivered), whichever is newer.
 *   Without them a quiet watcher would resume from an old revision and hit 410 after restarts.
 * - Every watch ends on its own (timeoutSeconds, or a few minutes with jitter so watchers of
 *   a restarted apiserver do not all re-list at once); clients simply watch again.
 * - A watcher that stops reading is dropped once its unsent backlog passes a bound, rather
 *   than letting it hold the server's memory.
 * - Changes come from the resource's watch cache (watch-cache.ts) when it holds every change
 *   after the start point, else from a Store watch of this request's own, as before the cache
 *   existed: the store replays older history or answers 410.
 */
import type { ServerResponse } from 'node:http';
import type { KubeObject, WatchEventType } from '../api/meta.js';
import type { ResourceDescriptor } from '../api/resources.js';
import type { Logger } from '../lib/log.js';
import { apiVersionOf } from '../api/resources.js';
import { ResourceVersionTooOldError, type Store, type StoreWatch } from './store/store.js';
import { WatchEventRecord, type Attachment, type ResourceCache, type WatchCache } from './watch-cache.js';
import type { Selection } from './selection.js';
import { expired, statusOf } from './status.js';

export interface WatchParams {
  descriptor: ResourceDescriptor;
  /** Store key prefix covering the watched collection. */
  prefix: string;
  /** Store key prefix of the whole resource: what its watch cache is keyed by. */
  resourcePrefix: string;
  selection: Selection;
  /** As sent: undefined, "", "0" or a number. */
  resourceVersion: string | undefined;
  allowBookmarks: boolean;
  /** `sendInitialEvents=true`: initial ADDED events end with a BOOKMARK annotated as such. */
  sendInitialEvents: boolean;
  timeoutMs: number;
  bookmarkIntervalMs: number;
  /** Unsent bytes after which the watcher is considered stuck and dropped. */
  maxBacklogBytes?: number;
  /**
   * Turns an object into what the client asked for (one-row Table, metadata); absent when the
   * object itself is sent, which lets watchers share one serialization of each event.
   */
  render?(object: KubeObject, first: boolean): unknown;
  contentType: string;
}

/** Unsent bytes after which a watcher is considered stuck and disconnected. */
export const DEFAULT_WATCH_BACKLOG_BYTES = 16 * 1024 * 1024;

/** Upstream's default watch length is 30-60 minutes; a few minutes suffice and spread re-lists. */
export function defaultWatchTimeoutMs(): number {
  return (300 + Math.random() * 300) * 1000;
}

export const INITIAL_EVENTS_END_ANNOTATION = 'k8s.io/initial-events-end';

export async function serveWatch(res: ServerResponse, store: Store, params: WatchParams, log: Logger, cache?: WatchCache): Promise<void> {
  const { descriptor, selection } = params;
  let first = true;
  let ended = false;
  let storeWatch: StoreWatch | undefined;
  let attachment: Attachment | undefined;
  const timers: NodeJS.Timeout[] = [];
  const pending: WatchEventRecord[] = [];
  let live = false;

  const end = (): void => {
    if (ended) return;
    ended = true;
    for (const timer of timers) clearTimeout(timer);
    storeWatch?.stop();
    attachment?.detach();
    if (!res.writableEnded) res.end();
  };
  // Registered before anything is awaited: a client gone while we list must not leave a store watch behind.
  res.on('close', end);

  // Started before the list below, so the list's revision is one the cache can serve from.
  let shared: ResourceCache | undefined;
  if (cache) {
    shared = await cache.resource(params.resourcePrefix).catch((err: unknown) => {
      log.debug({ resource: descriptor.resource, err }, 'watch cache unavailable; watching the store directly');
      return undefined;
    });
  }
  if (ended) return;

  const initial: KubeObject[] = [];
  let since: number;
  const synthetic = params.resourceVersion === undefined || params.resourceVersion === '' || params.resourceVersion === '0';
  if (synthetic || params.sendInitialEvents) {
    const listed = await store.list(params.prefix);
    since = listed.resourceVersion;
    for (const item of listed.items) if (selection.matches(item.object)) initial.push(item.object);
  } else {
    since = Number(params.resourceVersion);
  }
  if (ended) return;
  let lastSent = since;

  const maxBacklogBytes = params.maxBacklogBytes ?? DEFAULT_WATCH_BACKLOG_BYTES;
  const writeLine = (line: string): void => {
    if (ended) return;
    res.write(line);
    if (res.writableLength > maxBacklogBytes) {
      // The client is not reading: an ERROR event would sit behind the backlog it never
      // drains, so the connection is cut (clients see the stream end and watch again, as
      // after upstream's "forcing watcher close due to unresponsiveness"). Dropping it here,
      // inside the fan-out, is what keeps other watchers of the same cache from waiting.
      log.warn(
        { resource: descriptor.resource, prefix: params.prefix, backlogBytes: res.writableLength, limitBytes: maxBacklogBytes, lastSentResourceVersion: lastSent },
        'dropping a watcher that stopped reading: its unsent events passed the backlog limit',
      );
      ended = true;
      for (const timer of timers) clearTimeout(timer);
      storeWatch?.stop();
      attachment?.detach();
      res.destroy();
    }
  };
  const write = (type: WatchEventType, object: unknown): void => writeLine(`${JSON.stringify({ type, object })}\n`);
  /** `json` is the object's JSON text, shared with other watchers when no rendering is asked for. */
  const send = (type: WatchEventType, object: KubeObject, json: () => string): void => {
    if (params.render) write(type, params.render(object, first));
    else writeLine(`{"type":"${type}","object":${json()}}\n`);
    first = false;
  };

  const deliver = (record: WatchEventRecord): void => {
    const { event } = record;
    // A change the watcher already has: at or before its start point, or replayed and then fanned out.
    if (event.resourceVersion <= lastSent) return;
    const now = selection.matches(event.object);
    const before = event.prevObject !== undefined && selection.matches(event.prevObject);
    lastSent = event.resourceVersion;
    switch (event.type) {
      case 'ADDED':
        if (now) send('ADDED', event.object, () => record.objectJson());
        break;
      case 'MODIFIED':
        if (now && before) send('MODIFIED', event.object, () => record.objectJson());
        else if (now) send('ADDED', event.object, () => record.objectJson());
        else if (before) send('DELETED', record.left(), () => record.leftJson());
        break;
      case 'DELETED':
        if (before || (event.prevObject === undefined && now)) send('DELETED', event.object, () => record.objectJson());
        break;
    }
  };

  const startStream = (): void => {
    res.writeHead(200, { 'Content-Type': params.contentType, 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.socket?.setNoDelay(true);
    res.flushHeaders();
    for (const object of initial) send('ADDED', object, () => JSON.stringify(object));
    if (params.sendInitialEvents && params.allowBookmarks) {
      write('BOOKMARK', bookmarkObject(descriptor, since, true));
    }
  };

  if (shared?.covers(since)) {
    // Synchronous from here to attach(): the ring cannot move past `since` in between.
    startStream();
    attachment = shared.attach(since, { keyPrefix: params.prefix, deliver, close: end });
  } else {
    try {
      storeWatch = await store.watch(params.prefix, since, {
        onEvent: (event) => {
          const record = new WatchEventRecord(event);
          if (live) deliver(record);
          else pending.push(record);
        },
        onError: (err) => {
          log.debug({ resource: descriptor.resource, err }, 'store watch ended; closing the client watch');
          end();
        },
      });
    } catch (err) {
      res.writeHead(200, { 'Content-Type': params.contentType, 'Cache-Control': 'no-cache, private' });
      const status = err instanceof ResourceVersionTooOldError ? expired(`too old resource version: ${since} (${err.oldestAvailable})`) : statusOf(err);
      write('ERROR', status);
      end();
      return;
    }
    if (ended) {
      storeWatch.stop();
      return;
    }
    startStream();
    live = true;
    for (const record of pending.splice(0)) deliver(record);
  }
  if (ended) return;

  timers.push(setTimeout(end, params.timeoutMs));
  if (params.allowBookmarks) {
    let sampled = await store.currentResourceVersion().catch(() => lastSent);
    const tick = (): void => {
      if (ended) return;
      write('BOOKMARK', bookmarkObject(descriptor, Math.max(lastSent, sampled), false));
      store.currentResourceVersion().then(
        (rv) => {
          sampled = rv;
        },
        () => undefined,
      );
      timers.push(setTimeout(tick, params.bookmarkIntervalMs));
    };
    timers.push(setTimeout(tick, params.bookmarkIntervalMs));
  }
}

/** A BOOKMARK's object: just the kind and the revision (and the initial-events marker). */
function bookmarkObject(descriptor: ResourceDescriptor, resourceVersion: number, initialEventsEnd: boolean): KubeObject {
  return {
    kind: descriptor.kind,
    apiVersion: apiVersionOf(descriptor),
    metadata: {
      resourceVersion: String(resourceVersion),
      ...(initialEventsEnd ? { annotations: { [INITIAL_EVENTS_END_ANNOTATION]: 'true' } } : {}),
    },
  };
}
