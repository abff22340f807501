/**
 * apiserver target: mutated request bodies (create, update, the four patch types, delete
 * options) and query strings (selectors, limit/continue, resourceVersion, dryRun, ...)
 * against an in-process apiserver on a memory store (test/apiserver/server-harness.ts).
 *
 * The property: every answer is below 500; every 4xx is a Kubernetes `Status` (kind Status,
 * status Failure, `code` equal to the HTTP status, a reason and a message); the server keeps
 * answering; and the store stays valid — after each input, listing the resource it touched
 * answers 200 with items that each have a name, a resourceVersion and the right kind, and
 * the object a mutation hit reads back as an object of its kind.
 *
 * Watches are left out (a watch answers by streaming until it times out).
 */
import { type Answer, type TestApi, startTestApi } from '../../apiserver/server-harness.js';
import { MemoryStore } from '../../../src/apiserver/store/memory.js';
import { int, type Json, mutateBytes, mutateJsonText, pick, type Random } from '../mutator.js';
import type { FuzzSession, FuzzTarget, Verdict } from '../target.js';

interface Seed {
  /** collection path, namespaced ones in `default` */
  collection: string;
  kind: string;
  object: Json;
}

const SEEDS: readonly Seed[] = [
  {
    collection: '/api/v1/namespaces/default/pods',
    kind: 'Pod',
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'fz-pod', labels: { app: 'web', tier: 'a' }, annotations: { note: 'x' } },
      spec: {
        containers: [{ name: 'c', image: 'busybox', command: ['sleep', '3600'], ports: [{ containerPort: 80, name: 'http', protocol: 'TCP' }], env: [{ name: 'A', value: '1' }], resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
        restartPolicy: 'Always',
        terminationGracePeriodSeconds: 30,
      },
    },
  },
  {
    collection: '/api/v1/namespaces/default/services',
    kind: 'Service',
    object: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'fz-svc' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], type: 'ClusterIP' } },
  },
  {
    collection: '/api/v1/namespaces/default/configmaps',
    kind: 'ConfigMap',
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fz-cm', labels: { a: 'b' } }, data: { key: 'value', other: 'x' } },
  },
  {
    collection: '/api/v1/namespaces/default/secrets',
    kind: 'Secret',
    object: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fz-secret' }, type: 'Opaque', data: { password: 'aHVudGVyMg==' }, stringData: { user: 'admin' } },
  },
  { collection: '/api/v1/namespaces', kind: 'Namespace', object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fz-ns', labels: { team: 'x' } } } },
  {
    collection: '/api/v1/nodes',
    kind: 'Node',
    object: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'fz-node', labels: { 'kubernetes.io/hostname': 'fz-node' } }, spec: { podCIDR: '10.244.9.0/24', podCIDRs: ['10.244.9.0/24'], taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] } },
  },
  {
    collection: '/apis/apps/v1/namespaces/default/deployments',
    kind: 'Deployment',
    object: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'fz-deploy' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'fz' } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 1 } }, template: { metadata: { labels: { app: 'fz' } }, spec: { containers: [{ name: 'web', image: 'busybox:1' }] } } },
    },
  },
  {
    collection: '/api/v1/namespaces/default/endpoints',
    kind: 'Endpoints',
    object: { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'fz-ep' }, subsets: [{ addresses: [{ ip: '10.244.1.5', nodeName: 'n1' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }] },
  },
  {
    collection: '/apis/coordination.k8s.io/v1/namespaces/default/leases',
    kind: 'Lease',
    object: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'fz-lease' }, spec: { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2026-01-01T00:00:00.000000Z' } },
  },
  {
    collection: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
    kind: 'EndpointSlice',
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'fz-slice', labels: { 'kubernetes.io/service-name': 'fz-svc' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  },
];

const PATCHES: readonly { contentType: string; body: Json }[] = [
  { contentType: 'application/merge-patch+json', body: { metadata: { labels: { patched: 'yes' } } } },
  { contentType: 'application/strategic-merge-patch+json', body: { metadata: { annotations: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'busybox:2' }] } } },
  { contentType: 'application/json-patch+json', body: [{ op: 'add', path: '/metadata/labels/x', value: 'y' }, { op: 'replace', path: '/metadata/annotations', value: {} }, { op: 'test', path: '/kind', value: 'Pod' }] },
  { contentType: 'application/apply-patch+yaml', body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fz-cm' }, data: { applied: 'true' } } },
];

const DELETE_OPTIONS: Json = { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, propagationPolicy: 'Background', preconditions: { uid: 'x', resourceVersion: '1' }, dryRun: ['All'] };

const QUERY_KEYS = ['labelSelector', 'fieldSelector', 'limit', 'continue', 'resourceVersion', 'resourceVersionMatch', 'timeoutSeconds', 'dryRun', 'fieldManager', 'force', 'pretty', 'propagationPolicy', 'gracePeriodSeconds', 'orphanDependents', 'fieldValidation', 'allowWatchBookmarks', 'sendInitialEvents'];
const QUERY_VALUES = [
  'app=web', 'app in (web,db)', 'app notin (a)', '!app', 'app', 'a=b,c!=d', 'app==web', 'app=', '=x', 'a in (', 'a in ()', 'x'.repeat(70) + '=1', 'metadata.name=fz-pod', 'spec.nodeName=', 'status.phase!=Running',
  'metadata.namespace==default', 'bogus.field=1', '0', '-1', '1', '500', '99999999999999999999', '1.5', 'abc', '', 'All', 'Exact', 'NotOlderThan', 'eyJ2IjoxfQ', '%', '%zz', '%00', 'true', 'false', 'Strict', 'Warn', 'Foreground', 'Orphan', '\u00e9',
];

type Request = {
  method: string;
  path: string;
  contentType?: string;
  body?: string;
};

function query(random: Random): string {
  const parts: string[] = [];
  for (let i = int(random, 4); i > 0; i--) {
    const value = pick(random, QUERY_VALUES);
    parts.push(`${pick(random, QUERY_KEYS)}=${random() < 0.8 ? encodeURIComponent(value) : value}`);
  }
  let text = parts.join('&');
  if (random() < 0.2) text = new TextDecoder().decode(mutateBytes(random, new TextEncoder().encode(text), [], 2)).replace(/[#\s]/g, '');
  // A watch streams until its timeout: not a request this fuzz can judge.
  text = text.replace(/watch/gi, 'wotch');
  return text === '' ? '' : `?${text}`;
}

function generate(random: Random): Request {
  const seed = pick(random, SEEDS);
  const donors = SEEDS.map((s) => s.object);
  const name = ((seed.object as Record<string, Json>)['metadata'] as Record<string, Json>)['name'] as string;
  const item = `${seed.collection}/${random() < 0.9 ? name : encodeURIComponent(pick(random, ['..', 'A_B', 'x'.repeat(300), '%2F', 'a b']))}`;
  switch (int(random, 7)) {
    case 0:
      return { method: 'POST', path: `${seed.collection}${query(random)}`, contentType: 'application/json', body: mutateJsonText(random, seed.object, donors) };
    case 1:
      return { method: 'PUT', path: `${item}${query(random)}`, contentType: 'application/json', body: mutateJsonText(random, seed.object, donors) };
    case 2: {
      const patch = pick(random, PATCHES);
      return { method: 'PATCH', path: `${item}${query(random)}`, contentType: random() < 0.9 ? patch.contentType : pick(random, ['application/json', 'text/plain', '', 'application/merge-patch+json; charset=utf-8']), body: mutateJsonText(random, patch.body, [...donors, ...PATCHES.map((p) => p.body)]) };
    }
    case 3:
      return { method: 'DELETE', path: `${item}${query(random)}`, contentType: 'application/json', body: mutateJsonText(random, DELETE_OPTIONS, donors) };
    case 4:
      return { method: 'PUT', path: `${item}/status${query(random)}`, contentType: 'application/json', body: mutateJsonText(random, seed.object, donors) };
    case 5:
      return { method: 'GET', path: `${item}${query(random)}` };
    default:
      return { method: 'GET', path: `${seed.collection}${query(random)}` };
  }
}

function asRequest(json: Json): Request {
  const o = json as Record<string, Json>;
  return {
    method: String(o['method']),
    path: String(o['path']),
    ...(typeof o['contentType'] === 'string' ? { contentType: o['contentType'] } : {}),
    ...(typeof o['body'] === 'string' ? { body: o['body'] } : {}),
  };
}

function statusProblem(answer: Answer): string | undefined {
  const body = answer.body;
  if (typeof body !== 'object' || body === null) return `not a JSON object: ${answer.text.slice(0, 300)}`;
  const s = body as Record<string, unknown>;
  if (s['kind'] !== 'Status' || s['apiVersion'] !== 'v1') return `kind ${String(s['kind'])} apiVersion ${String(s['apiVersion'])}`;
  if (s['status'] !== 'Failure') return `status ${String(s['status'])}`;
  if (s['code'] !== answer.status) return `code ${String(s['code'])} on HTTP ${answer.status}`;
  if (typeof s['reason'] !== 'string' || s['reason'] === '') return 'no reason';
  if (typeof s['message'] !== 'string' || s['message'] === '') return 'no message';
  return undefined;
}

/**
 * The one 5xx upstream answers for a client's mistake: a list at a resourceVersion the store
 * has not reached waits, then gives 504 Timeout with cause ResourceVersionTooLarge
 * (k8s.io/apiserver storage.NewTooLargeResourceVersionError), which clients retry.
 */
function tooLargeResourceVersion(answer: Answer): boolean {
  const body = answer.body as { reason?: unknown; details?: { causes?: { reason?: unknown }[] } } | null;
  return answer.status === 504 && body?.reason === 'Timeout' && (body.details?.causes ?? []).some((c) => c.reason === 'ResourceVersionTooLarge');
}

const SEED_KINDS = new Map(SEEDS.map((s) => [s.collection, s.kind]));

/** The collection the request touched still lists, and every item is sound. */
async function storeProblem(api: TestApi, request: Request): Promise<string | undefined> {
  const collection = SEEDS.find((s) => request.path.startsWith(`${s.collection}/`) || request.path.startsWith(`${s.collection}?`) || request.path === s.collection)?.collection;
  if (!collection) return undefined;
  const list = await api.call('GET', collection);
  if (list.status !== 200) return `listing ${collection} afterwards answered ${list.status}: ${list.text.slice(0, 300)}`;
  const items = (list.body as { items?: unknown }).items;
  if (!Array.isArray(items)) return `listing ${collection} afterwards has no items array`;
  for (const item of items) {
    const o = item as { kind?: unknown; metadata?: { name?: unknown; resourceVersion?: unknown; namespace?: unknown; deletionTimestamp?: unknown } };
    if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') return `an item of ${collection} has no name: ${JSON.stringify(item).slice(0, 300)}`;
    if (typeof o.metadata.resourceVersion !== 'string' || !/^[0-9]+$/.test(o.metadata.resourceVersion)) return `${o.metadata.name} has resourceVersion ${JSON.stringify(o.metadata.resourceVersion)}`;
    if (o.kind !== undefined && o.kind !== SEED_KINDS.get(collection)) return `${o.metadata.name} in ${collection} has kind ${String(o.kind)}`;
    const one = await api.call('GET', `${collection}/${encodeURIComponent(o.metadata.name)}`);
    // An object being deleted (a terminating namespace emptied in the background) may be gone
    // by the time it is read; anything else listed must still be there.
    const finishing = typeof o.metadata.deletionTimestamp === 'string' && one.status === 404;
    if (one.status !== 200 && !finishing) return `${o.metadata.name} is listed but GET answers ${one.status}: ${one.text.slice(0, 300)}`;
  }
  return undefined;
}

export async function judgeApiserver(api: TestApi, json: Json): Promise<Verdict> {
  const request = asRequest(json);
  let answer: Answer;
  try {
    answer = await api.call(request.method, request.path, undefined, {
      ...(request.body !== undefined ? { raw: request.body, contentType: request.contentType ?? 'application/json' } : {}),
    });
  } catch (err) {
    return { crash: `request failed: ${String(err)}` };
  }
  if ((answer.status >= 500 && !tooLargeResourceVersion(answer)) || answer.status < 200) return { crash: `HTTP ${answer.status}: ${answer.text.slice(0, 800)}` };
  if (answer.status >= 400) {
    const problem = statusProblem(answer);
    if (problem) return { crash: `HTTP ${answer.status} without a Status (${problem})` };
  }
  const store = await storeProblem(api, request);
  if (store) return { crash: `store: ${store}` };
  const reason = answer.status >= 400 ? ` ${(answer.body as { reason?: string }).reason ?? ''}` : '';
  return { outcome: `${request.method} ${answer.status}${reason}` };
}

/** Creates the corpus objects, so updates, patches and deletes find something. */
export async function seedApiserver(api: TestApi): Promise<void> {
  for (const seed of SEEDS) {
    const created = await api.call('POST', seed.collection, seed.object);
    if (created.status !== 201) throw new Error(`failed to create seed ${seed.kind}: ${created.status} ${created.text}`);
  }
}

export const apiserverTarget: FuzzTarget = {
  name: 'apiserver',
  async open(): Promise<FuzzSession> {
    const api = await startTestApi(new MemoryStore());
    await seedApiserver(api);
    return {
      generate: (random) => ({ ...generate(random) }),
      judge: (input) => judgeApiserver(api, input),
      close: () => api.close(),
    };
  },
};
