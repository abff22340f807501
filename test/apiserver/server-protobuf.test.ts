/** The protobuf body decoder: envelope, zero values, specials, and refusals. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/api/meta.js';
import type { Service } from '../../src/api/types.js';
import { decodeProtobufObject, ProtobufDecodeError, ProtobufUnsupportedError } from '../../src/apiserver/protobuf.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from './server-harness.js';

// A minimal protobuf writer, enough to build test bodies.
function varint(value: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(value));
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}
const int = (field: number, value: number): number[] => [...varint((field << 3) | 0), ...varint(value)];
const bytes = (field: number, payload: number[]): number[] => [...varint((field << 3) | 2), ...varint(payload.length), ...payload];
const str = (field: number, value: string): number[] => bytes(field, [...Buffer.from(value, 'utf8')]);
const entry = (field: number, key: string, value: string): number[] => bytes(field, [...str(1, key), ...str(2, value)]);

function envelope(apiVersion: string, kind: string, raw: number[]): Buffer {
  return Buffer.from([0x6b, 0x38, 0x73, 0x00, ...bytes(1, [...str(1, apiVersion), ...str(2, kind)]), ...bytes(2, raw)]);
}

const metadata = (name: string): number[] => bytes(1, [...str(1, name), ...str(2, ''), ...bytes(8, []), ...entry(11, 'app', name)]);

describe('protobuf bodies', () => {
  test('decodes a Service: maps, repeated messages, IntOrString, pointer zeros kept, plain zeros dropped', () => {
    const port = [...str(1, 'web'), ...str(2, 'TCP'), ...int(3, 80), ...bytes(4, [...int(1, 1), ...int(2, 0), ...str(3, 'http')]), ...int(5, 0)];
    const spec = [...bytes(1, port), ...entry(2, 'app', 'web'), ...str(3, ''), ...str(4, 'ClusterIP'), ...int(12, 0), ...int(20, 0)];
    const service = decodeProtobufObject(envelope('v1', 'Service', [...metadata('web'), ...bytes(2, spec), ...bytes(3, [...bytes(1, [])])])) as Service;
    assert.equal(service.kind, 'Service');
    assert.deepEqual(service.metadata, { name: 'web', labels: { app: 'web' } });
    assert.deepEqual(service.spec, {
      ports: [{ name: 'web', protocol: 'TCP', port: 80, targetPort: 'http' }],
      selector: { app: 'web' },
      type: 'ClusterIP',
      allocateLoadBalancerNodePorts: false,
    });
    assert.deepEqual(service.status, {});
  });

  test('refuses bodies it cannot read fully', () => {
    assert.throws(() => decodeProtobufObject(Buffer.from('{"kind":"Pod"}')), ProtobufDecodeError);
    assert.throws(() => decodeProtobufObject(envelope('v1', 'Endpoints', [])), ProtobufUnsupportedError);
    assert.throws(() => decodeProtobufObject(envelope('v1', 'Pod', [...bytes(2, [...bytes(1, [])])])), ProtobufUnsupportedError, 'volumes are outside the table');
    const truncated = envelope('v1', 'Pod', metadata('p'));
    assert.throws(() => decodeProtobufObject(truncated.subarray(0, truncated.length - 3)), ProtobufDecodeError);
  });

  describe('over HTTP', () => {
    let api: TestApi;
    before(async () => {
      api = await startTestApi(new MemoryStore());
    });
    after(async () => {
      await api?.close();
    });

    test('creates from protobuf; answers 400 for garbage and 415 naming an unsupported field', async () => {
      const contentType = 'application/vnd.kubernetes.protobuf';
      const configMap = envelope('v1', 'ConfigMap', [...metadata('pb'), ...entry(2, 'key', 'value')]);
      const created = await api.call<{ data: Record<string, string> }>('POST', '/api/v1/namespaces/default/configmaps', undefined, { raw: configMap, contentType });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(created.body.data, { key: 'value' });
      const garbage = await api.call<Status>('POST', '/api/v1/namespaces/default/configmaps', undefined, { raw: Buffer.from('nope'), contentType });
      assert.equal(garbage.status, 400);
      const unsupported = envelope('v1', 'ConfigMap', [...metadata('pb2'), ...str(9, 'x')]);
      const refused = await api.call<Status>('POST', '/api/v1/namespaces/default/configmaps', undefined, { raw: unsupported, contentType });
      assert.equal(refused.status, 415);
      assert.equal(refused.body.reason, 'UnsupportedMediaType');
      assert.match(refused.body.message ?? '', /protobuf field 9 of ConfigMap/);
    });
  });
});
