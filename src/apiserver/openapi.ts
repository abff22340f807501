/**
 * A deliberately small OpenAPI v3: kubectl downloads it for one decision, whether the server
 * accepts `fieldValidation` on a kind's PATCH. When it does, kubectl sends
 * `fieldValidation=Strict` and lets the server validate; without any OpenAPI it refuses
 * `create`/`apply` unless the user passes --validate=false.
 *
 * The documents hold paths only, no component schemas: kubectl's client-side apply looks up a
 * kind's schema here first for strategic-merge metadata (merge keys), and when none is found
 * it falls back to its compiled-in Go types, which know every built-in kind's merge keys.
 * A partial schema would make it compute worse patches than no schema at all.
 *
 * `/openapi/v2` (openapi-v2.ts) is served too, with the same paths and no definitions, for
 * the one thing kubectl 1.32 still reads it for: client-side validation of `kind: List` files,
 * which it refuses outright when v2 cannot be downloaded. Client-side apply then also looks up
 * v2 for merge metadata, finds nothing and uses its compiled-in types, as before.
 */
import { createHash } from 'node:crypto';
import type { ResourceDescriptor } from '../api/resources.js';
import { groupVersions } from './discovery.js';

/** `api/v1` or `apis/apps/v1`: the key kubectl's index lookup uses. */
function groupVersionPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

const WRITE_PARAMETERS = ['dryRun', 'fieldManager', 'fieldValidation'].map((name) => ({
  name,
  in: 'query',
  schema: { type: 'string', uniqueItems: true },
}));

function operation(descriptor: ResourceDescriptor, action: 'post' | 'put' | 'patch', extraParameters: unknown[] = []): unknown {
  return {
    operationId: `${action}${descriptor.kind}`,
    parameters: [...WRITE_PARAMETERS, ...extraParameters],
    responses: { '200': { description: 'OK' } },
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': { group: descriptor.group, version: descriptor.version, kind: descriptor.kind },
  };
}

function documentFor(group: string, version: string, resources: readonly ResourceDescriptor[]): unknown {
  const paths: Record<string, unknown> = {};
  for (const d of resources) {
    const root = `/${groupVersionPath(group, version)}${d.namespaced ? '/namespaces/{namespace}' : ''}/${d.resource}`;
    paths[root] = { post: operation(d, 'post') };
    paths[`${root}/{name}`] = {
      put: operation(d, 'put'),
      patch: operation(d, 'patch', [{ name: 'force', in: 'query', schema: { type: 'boolean', uniqueItems: true } }]),
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0' },
    paths,
    components: { schemas: {} },
  };
}

export interface OpenApiV3 {
  /** The `/openapi/v3` discovery document. */
  index: unknown;
  /** Documents by path without the leading slash: `openapi/v3/api/v1`. */
  documents: Map<string, { body: string; hash: string }>;
}

/** Built once at startup; the table does not change while the server runs. */
export function buildOpenApiV3(): OpenApiV3 {
  const documents = new Map<string, { body: string; hash: string }>();
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of groupVersions()) {
    const key = groupVersionPath(gv.group, gv.version);
    const body = JSON.stringify(documentFor(gv.group, gv.version, gv.resources));
    const hash = createHash('sha512').update(body).digest('hex').slice(0, 64).toUpperCase();
    documents.set(`openapi/v3/${key}`, { body, hash });
    paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
  }
  return { index: { paths }, documents };
}
