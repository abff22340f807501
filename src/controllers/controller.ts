/**
 * What every controller in the controller-manager looks like: built from a context (shared
 * informers, the API, a logger), it registers informer handlers that enqueue object keys,
 * and `start()` — called once the shared caches have synced — runs its reconciler's workers.
 */
import type { KubeApi } from '../client/api.js';
import type { Logger } from '../lib/log.js';
import { EventRecorder } from '../client/events.js';
import type { SharedInformers } from './informers.js';

export interface ControllerContext {
  api: KubeApi;
  informers: SharedInformers;
  log: Logger;
}

export interface Controller {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function recorderFor(context: ControllerContext, component: string): EventRecorder {
  return new EventRecorder(context.api, component, context.log.child({ controller: component }));
}
