/**
 * A deliberately small OpenAPI v2 (swagger 2.0), served because kubectl validates a
 * `kind: List` manifest client-side against `/openapi/v2` and refuses the whole file when it
 * cannot download it. Single objects never need it: for them kubectl asks the OpenAPI v3
 * paths (openapi.ts) whether the server takes `fieldValidation` and leaves validation to us.
 *
 * Design notes:
 * - kubectl asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`: a gnostic
 *   `openapi.v2.Document` message (google/gnostic-models openapiv2/OpenAPIv2.proto). Only the
 *   handful of messages written here are encoded, by hand; JSON is answered otherwise.
 * - The document has paths (the same write operations as v3, with `fieldValidation`) and
 *   no definitions for our kinds. kubectl validates each List item against the definition
 *   carrying the item's `x-kubernetes-group-version-kind` and skips items without one, so the
 *   items reach the server, which validates them strictly (kubectl still sends
 *   `fieldValidation=Strict`). A definition for a kind would not stay in validation: client-side
 *   apply looks up the same definitions for strategic-merge metadata before falling back to
 *   its compiled-in types, and a partial schema there computes worse patches than none.
 */
import type { ResourceDescriptor } from '../api/resources.js';
import { groupVersions } from './discovery.js';

/**
 * kubectl asks for `...spec.v2@v1.0+protobuf`, but Go's mime parser rejects the `@` in a
 * Content-Type ("mime: unexpected content after media subtype"), so the answer is labelled
 * with the dotted spelling kube-openapi also accepts.
 */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

type Action = 'post' | 'put' | 'patch';

interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

interface Operation {
  operationId: string;
  action: Action;
  /** Query parameters, all strings. */
  parameters: readonly string[];
  gvk: GroupVersionKind;
}

type PathItem = Partial<Record<Action, Operation>>;

const WRITE_PARAMETERS = ['dryRun', 'fieldManager', 'fieldValidation'];

function operation(d: ResourceDescriptor, action: Action): Operation {
  return {
    operationId: `${action}${d.kind}`,
    action,
    parameters: action === 'patch' ? [...WRITE_PARAMETERS, 'force'] : WRITE_PARAMETERS,
    gvk: { group: d.group, version: d.version, kind: d.kind },
  };
}

function paths(): Map<string, PathItem> {
  const out = new Map<string, PathItem>();
  for (const gv of groupVersions()) {
    const prefix = gv.group === '' ? `/api/${gv.version}` : `/apis/${gv.group}/${gv.version}`;
    for (const d of gv.resources) {
      const root = `${prefix}${d.namespaced ? '/namespaces/{namespace}' : ''}/${d.resource}`;
      out.set(root, { post: operation(d, 'post') });
      out.set(`${root}/{name}`, { put: operation(d, 'put'), patch: operation(d, 'patch') });
    }
  }
  return out;
}

// ---- JSON ---------------------------------------------------------------------------------

function operationJson(op: Operation): unknown {
  return {
    operationId: op.operationId,
    parameters: op.parameters.map((name) => ({ name, in: 'query', type: 'string', uniqueItems: true })),
    responses: { '200': { description: 'OK' } },
    'x-kubernetes-action': op.action,
    'x-kubernetes-group-version-kind': op.gvk,
  };
}

function documentJson(items: Map<string, PathItem>): unknown {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [path, item] of items) {
    out[path] = Object.fromEntries(Object.entries(item).map(([action, op]) => [action, operationJson(op)]));
  }
  return { swagger: '2.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths: out, definitions: {} };
}

// ---- protobuf (gnostic openapi.v2) ----------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;

/** Appends fields of one protobuf message; proto3, so empty values are left out. */
class MessageWriter {
  private readonly chunks: Uint8Array[] = [];

  string(field: number, value: string): this {
    if (value !== '') this.lengthDelimited(field, Buffer.from(value, 'utf8'));
    return this;
  }

  bool(field: number, value: boolean): this {
    if (value) this.chunks.push(varint(key(field, WIRE_VARINT)), varint(1));
    return this;
  }

  message(field: number, body: MessageWriter): this {
    this.lengthDelimited(field, body.finish());
    return this;
  }

  finish(): Uint8Array {
    return Buffer.concat(this.chunks);
  }

  private lengthDelimited(field: number, bytes: Uint8Array): void {
    this.chunks.push(varint(key(field, WIRE_LENGTH_DELIMITED)), varint(bytes.length), bytes);
  }
}

function key(field: number, wireType: number): number {
  return field * 8 + wireType;
}

function varint(value: number): Uint8Array {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Uint8Array.from(bytes);
}

// Field numbers from openapiv2/OpenAPIv2.proto, by message.
const Document = { swagger: 1, info: 2, paths: 8 } as const;
const Info = { title: 1, version: 2 } as const;
const Paths = { path: 2 } as const;
/** NamedPathItem, NamedAny, NamedResponseValue: ordered map entries. */
const Named = { name: 1, value: 2 } as const;
const PathItemFields = { post: 4, put: 3, patch: 8 } as const;
const OperationFields = { operationId: 5, parameters: 8, responses: 9, vendorExtension: 13 } as const;
const ParametersItem = { parameter: 1 } as const;
const Parameter = { nonBodyParameter: 2 } as const;
const NonBodyParameter = { queryParameterSubSchema: 3 } as const;
const QueryParameterSubSchema = { in: 2, name: 4, type: 6, uniqueItems: 20 } as const;
const Responses = { responseCode: 1 } as const;
const ResponseValue = { response: 1 } as const;
const Response = { description: 1 } as const;
/** openapi.v2.Any: kube-openapi reads vendor extensions from the YAML text. */
const AnyFields = { yaml: 2 } as const;

function vendorExtension(name: string, value: unknown): MessageWriter {
  // JSON is YAML, and what kube-openapi parses the `yaml` field with.
  return new MessageWriter().string(Named.name, name).message(Named.value, new MessageWriter().string(AnyFields.yaml, JSON.stringify(value)));
}

function operationProto(op: Operation): MessageWriter {
  const out = new MessageWriter().string(OperationFields.operationId, op.operationId);
  for (const name of op.parameters) {
    const query = new MessageWriter()
      .string(QueryParameterSubSchema.in, 'query')
      .string(QueryParameterSubSchema.name, name)
      .string(QueryParameterSubSchema.type, 'string')
      .bool(QueryParameterSubSchema.uniqueItems, true);
    const parameter = new MessageWriter().message(Parameter.nonBodyParameter, new MessageWriter().message(NonBodyParameter.queryParameterSubSchema, query));
    out.message(OperationFields.parameters, new MessageWriter().message(ParametersItem.parameter, parameter));
  }
  const ok = new MessageWriter().message(ResponseValue.response, new MessageWriter().string(Response.description, 'OK'));
  out.message(OperationFields.responses, new MessageWriter().message(Responses.responseCode, new MessageWriter().string(Named.name, '200').message(Named.value, ok)));
  out.message(OperationFields.vendorExtension, vendorExtension('x-kubernetes-action', op.action));
  out.message(OperationFields.vendorExtension, vendorExtension('x-kubernetes-group-version-kind', op.gvk));
  return out;
}

function documentProto(items: Map<string, PathItem>): Uint8Array {
  const pathsMessage = new MessageWriter();
  for (const [path, item] of items) {
    const pathItem = new MessageWriter();
    for (const action of ['put', 'post', 'patch'] as const) {
      const op = item[action];
      if (op) pathItem.message(PathItemFields[action], operationProto(op));
    }
    pathsMessage.message(Paths.path, new MessageWriter().string(Named.name, path).message(Named.value, pathItem));
  }
  return new MessageWriter()
    .string(Document.swagger, '2.0')
    .message(Document.info, new MessageWriter().string(Info.title, 'Kubernetes').string(Info.version, 'v1.32.0'))
    .message(Document.paths, pathsMessage)
    .finish();
}

export interface OpenApiV2 {
  json: string;
  protobuf: Uint8Array;
}

/** Built once at startup, like the v3 documents. */
export function buildOpenApiV2(): OpenApiV2 {
  const items = paths();
  return { json: JSON.stringify(documentJson(items)), protobuf: documentProto(items) };
}
