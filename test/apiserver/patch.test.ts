import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import {
  applyJsonPatch,
  applyMergePatch,
  applyPatch,
  applyStrategicMergePatch,
  PATCH_CONTENT_TYPES,
  PatchError,
  UnsupportedPatchTypeError,
} from '../../src/apiserver/patch.js';
import { PontoonError } from '../../src/lib/errors.js';

const isPatchError = (kind: 'malformed' | 'invalid') => (err: unknown) => {
  assert.ok(err instanceof PatchError, `expected PatchError, got ${String(err)}`);
  assert.ok(err instanceof PontoonError);
  assert.equal(err.kind, kind, err.message);
  return true;
};

/** Recursively collects keys starting with `$`: none may survive into a stored object. */
function directiveKeys(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((item, index) => directiveKeys(item, `${path}[${index}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([key, item]) => [...(key.startsWith('$') ? [`${path}.${key}`] : []), ...directiveKeys(item, `${path}.${key}`)]);
  }
  return [];
}

// ---- RFC 7386 --------------------------------------------------------------------------------

describe('applyMergePatch (RFC 7386)', () => {
  // Appendix A of RFC 7386, in order.
  const appendixA: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  appendixA.forEach(([target, patch, expected], index) => {
    test(`appendix A example ${index + 1}`, () => assert.deepEqual(applyMergePatch(target, patch), expected));
  });

  test('the section 3 example', () => {
    const target = { title: 'Goodbye!', author: { givenName: 'John', familyName: 'Doe' }, tags: ['example', 'sample'], content: 'This will be unchanged' };
    const patch = { title: 'Hello!', phoneNumber: '+01-123-456-7890', author: { familyName: null }, tags: ['example'] };
    assert.deepEqual(applyMergePatch(target, patch), {
      title: 'Hello!',
      author: { givenName: 'John' },
      tags: ['example'],
      content: 'This will be unchanged',
      phoneNumber: '+01-123-456-7890',
    });
  });

  test('neither input is mutated and the result aliases neither', () => {
    const target = { a: { b: [1, 2] }, keep: { x: 1 } };
    const patch = { a: { c: { d: 1 } }, n: [{ m: 1 }] };
    const targetCopy = structuredClone(target);
    const patchCopy = structuredClone(patch);
    const result = applyMergePatch(target, patch) as { a: { b: number[]; c: unknown }; keep: unknown; n: unknown[] };
    assert.deepEqual(target, targetCopy);
    assert.deepEqual(patch, patchCopy);
    assert.notEqual(result.keep, target.keep);
    assert.notEqual(result.a.b, target.a.b);
    assert.notEqual(result.a.c, patch.a.c);
    assert.notEqual(result.n[0], patch.n[0]);
  });

  test('__proto__ is an ordinary key', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown;
    const result = applyMergePatch({}, patch) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(Object.getPrototypeOf(result), Object.prototype);
    assert.deepEqual(Object.keys(result).sort(), ['__proto__', 'a']);
  });
});

// ---- RFC 6902 --------------------------------------------------------------------------------

describe('applyJsonPatch (RFC 6902)', () => {
  // Appendix A of RFC 6902 (A.13, a duplicate "op" member, cannot survive JSON.parse).
  const appendixA: [string, unknown, unknown[], unknown][] = [
    ['A.1 adding an object member', { foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }], { baz: 'qux', foo: 'bar' }],
    ['A.2 adding an array element', { foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }], { foo: ['bar', 'qux', 'baz'] }],
    ['A.3 removing an object member', { baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }], { foo: 'bar' }],
    ['A.4 removing an array element', { foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }], { foo: ['bar', 'baz'] }],
    ['A.5 replacing a value', { baz: 'qux', foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 'boo' }], { baz: 'boo', foo: 'bar' }],
    [
      'A.6 moving a value',
      { foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } },
      [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }],
      { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } },
    ],
    ['A.7 moving an array element', { foo: ['all', 'grass', 'cows', 'eat'] }, [{ op: 'move', from: '/foo/1', path: '/foo/3' }], { foo: ['all', 'cows', 'eat', 'grass'] }],
    [
      'A.8 testing a value: success',
      { baz: 'qux', foo: ['a', 2, 'c'] },
      [
        { op: 'test', path: '/baz', value: 'qux' },
        { op: 'test', path: '/foo/1', value: 2 },
      ],
      { baz: 'qux', foo: ['a', 2, 'c'] },
    ],
    ['A.10 adding a nested member object', { foo: 'bar' }, [{ op: 'add', path: '/child', value: { grandchild: {} } }], { foo: 'bar', child: { grandchild: {} } }],
    ['A.11 ignoring unrecognized elements', { foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux', xyz: 123 }], { foo: 'bar', baz: 'qux' }],
    ['A.14 ~ escape ordering', { '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: 10 }], { '/': 9, '~1': 10 }],
    ['A.16 adding an array value', { foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }], { foo: ['bar', ['abc', 'def']] }],
  ];
  for (const [name, target, operations, expected] of appendixA) {
    test(name, () => assert.deepEqual(applyJsonPatch(target, operations), expected));
  }

  const appendixAErrors: [string, unknown, unknown[]][] = [
    ['A.9 testing a value: error', { baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }]],
    ['A.12 adding to a nonexistent target', { foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }]],
    ['A.15 comparing strings and numbers', { '/': 9, '~1': 10 }, [{ op: 'test', path: '/~01', value: '10' }]],
  ];
  for (const [name, target, operations] of appendixAErrors) {
    test(name, () => assert.throws(() => applyJsonPatch(target, operations), isPatchError('invalid')));
  }

  const more: [string, unknown, unknown[], unknown][] = [
    ['replace the whole document', { a: 1 }, [{ op: 'replace', path: '', value: { b: 2 } }], { b: 2 }],
    ['copy', { a: { b: 1 } }, [{ op: 'copy', from: '/a', path: '/c' }], { a: { b: 1 }, c: { b: 1 } }],
    ['test compares objects regardless of key order', { a: { x: 1, y: [1, { z: 2 }] } }, [{ op: 'test', path: '/a', value: { y: [1, { z: 2 }], x: 1 } }], { a: { x: 1, y: [1, { z: 2 }] } }],
    ['add replaces an existing member', { a: 1 }, [{ op: 'add', path: '/a', value: 2 }], { a: 2 }],
    ['add at the end index of an array', { a: [1] }, [{ op: 'add', path: '/a/1', value: 2 }], { a: [1, 2] }],
    ['move to the end of an array', { a: [1, 2, 3] }, [{ op: 'move', from: '/a/0', path: '/a/-' }], { a: [2, 3, 1] }],
    ['copy to the end of an array', { a: [1], b: 'x' }, [{ op: 'copy', from: '/b', path: '/a/-' }], { a: [1, 'x'], b: 'x' }],
    ['"-" is an ordinary key in an object', { a: {} }, [{ op: 'add', path: '/a/-', value: 1 }], { a: { '-': 1 } }],
    ['the empty key', { '': 1 }, [{ op: 'replace', path: '/', value: 2 }], { '': 2 }],
    [
      'a sequence sees earlier results',
      { metadata: { labels: { a: '1' } } },
      [
        { op: 'add', path: '/metadata/labels/b', value: '2' },
        { op: 'move', from: '/metadata/labels/a', path: '/metadata/labels/c' },
        { op: 'test', path: '/metadata/labels', value: { b: '2', c: '1' } },
      ],
      { metadata: { labels: { b: '2', c: '1' } } },
    ],
    ['a Deployment scaled by JSON patch', { spec: { replicas: 1 } }, [{ op: 'replace', path: '/spec/replicas', value: 3 }], { spec: { replicas: 3 } }],
  ];
  for (const [name, target, operations, expected] of more) {
    test(name, () => assert.deepEqual(applyJsonPatch(target, operations), expected));
  }

  const malformed: [string, unknown][] = [
    ['not a list', { op: 'add', path: '/a', value: 1 }],
    ['an operation that is not an object', ['add']],
    ['no op', [{ path: '/a', value: 1 }]],
    ['an unknown op', [{ op: 'merge', path: '/a', value: 1 }]],
    ["fast-json-patch's private _get op", [{ op: '_get', path: '/a', value: 1 }]],
    ['no path', [{ op: 'remove' }]],
    ['a path without a leading slash', [{ op: 'remove', path: 'a' }]],
    ['a bad ~ escape', [{ op: 'remove', path: '/a~2b' }]],
    ['move without from', [{ op: 'move', path: '/a' }]],
    ['copy with a bad from', [{ op: 'copy', from: 'a', path: '/b' }]],
    ['add without value', [{ op: 'add', path: '/a' }]],
    ['test without value', [{ op: 'test', path: '/a' }]],
    ['a bad second operation, even though the first would fail', [{ op: 'test', path: '/a', value: 2 }, { op: 'jump', path: '/a' }]],
  ];
  for (const [name, operations] of malformed) {
    test(`malformed: ${name}`, () => assert.throws(() => applyJsonPatch({ a: 1 }, operations), isPatchError('malformed')));
  }

  const invalid: [string, unknown, unknown[]][] = [
    ['remove a missing member', { a: 1 }, [{ op: 'remove', path: '/b' }]],
    ['replace a missing member', { a: 1 }, [{ op: 'replace', path: '/b', value: 1 }]],
    ['move from a missing member', { a: 1 }, [{ op: 'move', from: '/b', path: '/c' }]],
    ['copy from a missing member', { a: 1 }, [{ op: 'copy', from: '/b', path: '/c' }]],
    ['an array index with a leading zero', { a: [1, 2] }, [{ op: 'replace', path: '/a/01', value: 3 }]],
    ['an array index that is not a number', { a: [1, 2] }, [{ op: 'remove', path: '/a/x' }]],
    ['"-" outside add', { a: [1, 2] }, [{ op: 'remove', path: '/a/-' }]],
    ['"-" as a source', { a: [1, 2] }, [{ op: 'copy', from: '/a/-', path: '/b' }]],
    ['add past the end of an array', { a: [1] }, [{ op: 'add', path: '/a/5', value: 2 }]],
    ['remove past the end of an array', { a: [1] }, [{ op: 'remove', path: '/a/1' }]],
    ['move a value into its own child', { a: { b: {} } }, [{ op: 'move', from: '/a', path: '/a/b/c' }]],
    ['a prototype write', { a: 1 }, [{ op: 'add', path: '/__proto__/polluted', value: true }]],
  ];
  for (const [name, target, operations] of invalid) {
    test(`invalid: ${name}`, () => {
      assert.throws(() => applyJsonPatch(target, operations), isPatchError('invalid'));
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    });
  }

  test('all or nothing, and neither input is mutated', () => {
    const target = { a: [1, 2], b: { c: 1 } };
    const operations = [
      { op: 'add', path: '/a/-', value: { new: true } },
      { op: 'remove', path: '/b/c' },
      { op: 'test', path: '/a/0', value: 99 },
    ];
    const targetCopy = structuredClone(target);
    const operationsCopy = structuredClone(operations);
    assert.throws(() => applyJsonPatch(target, operations), isPatchError('invalid'));
    assert.deepEqual(target, targetCopy);
    assert.deepEqual(operations, operationsCopy);

    const ok = applyJsonPatch(target, operations.slice(0, 2)) as { a: unknown[]; b: unknown };
    assert.deepEqual(ok, { a: [1, 2, { new: true }], b: {} });
    assert.deepEqual(target, targetCopy);
    assert.notEqual(ok.a[2], operations[0]?.value, 'the added value is a copy');
    assert.notEqual(ok.b, target.b);
  });

  test('copy makes an independent value', () => {
    const result = applyJsonPatch({ a: { b: 1 } }, [{ op: 'copy', from: '/a', path: '/c' }]) as { a: object; c: object };
    assert.notEqual(result.a, result.c);
  });
});

// ---- strategic merge patch ---------------------------------------------------------------

/** A Deployment as the apiserver stores it after `kubectl apply` and defaulting. */
function liveDeployment(): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'web',
      namespace: 'default',
      uid: 'd-1',
      resourceVersion: '10',
      labels: { app: 'web' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"old":true}', 'deployment.kubernetes.io/revision': '1' },
      finalizers: ['a', 'b', 'c'],
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'nginx:1',
              args: ['--port', '80'],
              ports: [{ containerPort: 80, protocol: 'TCP' }],
              env: [
                { name: 'A', value: '1' },
                { name: 'B', value: '2' },
              ],
              imagePullPolicy: 'IfNotPresent',
              terminationMessagePath: '/dev/termination-log',
            },
            { name: 'sidecar', image: 'busybox', command: ['sleep', 'infinity'] },
          ],
          tolerations: [{ key: 'a', operator: 'Exists' }],
          restartPolicy: 'Always',
          dnsPolicy: 'ClusterFirst',
        },
      },
    },
    status: {
      replicas: 2,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
      ],
    },
  };
}

interface ContainerView {
  name: string;
  image?: string;
  ports?: { containerPort: number; protocol?: string }[];
  env?: { name: string; value?: string }[];
  args?: string[];
  command?: string[];
  imagePullPolicy?: string;
  [field: string]: unknown;
}

function templateSpec(object: KubeObject): { containers: ContainerView[]; [field: string]: unknown } {
  const spec = object['spec'] as { template: { spec: { containers: ContainerView[] } } };
  return spec.template.spec;
}
const containers = (object: KubeObject): ContainerView[] => templateSpec(object).containers;
const names = (list: { name: string }[]): string[] => list.map((item) => item.name);

describe('applyStrategicMergePatch', () => {
  test("kubectl apply's second patch: new image, one more port, the live port and defaults kept", () => {
    // What kubectl 1.32 sends when the manifest changes the image and adds port 443.
    const patch = {
      metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"new":true}' } },
      spec: {
        template: {
          spec: {
            '$setElementOrder/containers': [{ name: 'web' }, { name: 'sidecar' }],
            containers: [
              {
                '$setElementOrder/ports': [{ containerPort: 80 }, { containerPort: 443 }],
                image: 'nginx:2',
                name: 'web',
                ports: [{ containerPort: 443 }],
              },
            ],
          },
        },
      },
    };
    const live = liveDeployment();
    const result = applyStrategicMergePatch(live, patch, 'Deployment');
    const [web, sidecar] = containers(result);
    assert.equal(web?.image, 'nginx:2');
    assert.deepEqual(web?.ports, [{ containerPort: 80, protocol: 'TCP' }, { containerPort: 443 }]);
    assert.equal(web?.imagePullPolicy, 'IfNotPresent', 'server defaults survive');
    assert.deepEqual(web?.env, [{ name: 'A', value: '1' }, { name: 'B', value: '2' }]);
    assert.deepEqual(sidecar, { name: 'sidecar', image: 'busybox', command: ['sleep', 'infinity'] });
    assert.deepEqual(result.metadata.annotations, {
      'kubectl.kubernetes.io/last-applied-configuration': '{"new":true}',
      'deployment.kubernetes.io/revision': '1',
    });
    assert.equal(result.metadata.uid, 'd-1');
    assert.deepEqual(directiveKeys(result), []);
    assert.deepEqual(live, liveDeployment(), 'the live object is untouched');

    // The same intent as a JSON merge patch loses port 80: why kubectl uses strategic merge.
    const merged = applyMergePatch(live, { spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:2', ports: [{ containerPort: 443 }] }] } } } });
    assert.deepEqual(containers(merged as KubeObject), [{ name: 'web', image: 'nginx:2', ports: [{ containerPort: 443 }] }]);
  });

  test('deleting a container with $patch: delete', () => {
    const patch = {
      spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'web' }], containers: [{ $patch: 'delete', name: 'sidecar' }] } } },
    };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual(names(containers(result)), ['web']);
    assert.equal(containers(result)[0]?.image, 'nginx:1');
    assert.deepEqual(directiveKeys(result), []);
  });

  test('$setElementOrder alone reorders', () => {
    const patch = { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'sidecar' }, { name: 'web' }] } } } };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual(names(containers(result)), ['sidecar', 'web']);
    assert.equal(containers(result)[1]?.image, 'nginx:1');
  });

  test('a new container goes where $setElementOrder puts it', () => {
    const patch = {
      spec: {
        template: {
          spec: {
            '$setElementOrder/containers': [{ name: 'web' }, { name: 'sidecar' }, { name: 'metrics' }],
            containers: [{ name: 'metrics', image: 'exporter', ports: [{ containerPort: 9100 }] }],
          },
        },
      },
    };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual(names(containers(result)), ['web', 'sidecar', 'metrics']);
    assert.deepEqual(containers(result)[2], { name: 'metrics', image: 'exporter', ports: [{ containerPort: 9100 }] });
  });

  test('without $setElementOrder a new element goes first, as upstream', () => {
    const patch = { spec: { template: { spec: { containers: [{ name: 'metrics', image: 'exporter' }] } } } };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual(names(containers(result)), ['metrics', 'web', 'sidecar']);
  });

  test('elements only the server has keep their place among reordered ones', () => {
    // Live [1, 2, 9, 3, 4]; the client only knows 1-4 and wants 2, 1, 4, 3.
    const live: KubeObject = {
      metadata: { name: 'p' },
      spec: { containers: ['1', '2', '9', '3', '4'].map((name) => ({ name })) },
    };
    const patch = { spec: { '$setElementOrder/containers': ['2', '1', '4', '3'].map((name) => ({ name })) } };
    const result = applyStrategicMergePatch(live, patch, 'Pod');
    assert.deepEqual(names((result['spec'] as { containers: { name: string }[] }).containers), ['2', '1', '9', '4', '3']);
  });

  test('null removes fields, in maps and inside list elements', () => {
    const patch = {
      metadata: { labels: { app: null }, annotations: null },
      spec: {
        strategy: { rollingUpdate: null },
        template: { spec: { containers: [{ name: 'web', args: null, env: [{ name: 'A', value: null }] }] } },
      },
      status: null,
    };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual(result.metadata.labels, {});
    assert.equal('annotations' in result.metadata, false);
    assert.deepEqual((result['spec'] as { strategy: unknown }).strategy, { type: 'RollingUpdate' });
    const [web] = containers(result);
    assert.equal(web && 'args' in web, false);
    assert.deepEqual(web?.env, [{ name: 'A' }, { name: 'B', value: '2' }]);
    assert.equal('status' in result, false);
  });

  test('nulls and directives inside a newly added value are dropped', () => {
    const patch = {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'new',
                image: 'x',
                workingDir: null,
                '$setElementOrder/ports': [{ containerPort: 2 }, { containerPort: 1 }],
                ports: [{ containerPort: 1 }, { containerPort: 2 }],
                env: [{ $patch: 'delete', name: 'GONE' }, { name: 'KEPT', value: 'v' }],
              },
            ],
            nodeSelector: { disk: 'ssd', gpu: null },
          },
        },
      },
    };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    const added = containers(result).find((c) => c.name === 'new');
    assert.deepEqual(added, { name: 'new', image: 'x', ports: [{ containerPort: 2 }, { containerPort: 1 }], env: [{ name: 'KEPT', value: 'v' }] });
    assert.deepEqual(templateSpec(result)['nodeSelector'], { disk: 'ssd' });
    assert.deepEqual(directiveKeys(result), []);
  });

  test('merge keys per list: env by name, ports by containerPort; args, command, tolerations replaced', () => {
    const patch = {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'web',
                env: [{ name: 'B', value: '3' }],
                ports: [{ containerPort: 80, name: 'http' }],
                args: ['--port', '8080'],
              },
              { name: 'sidecar', command: ['true'] },
            ],
            tolerations: [{ key: 'b', operator: 'Exists' }],
          },
        },
      },
    };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    const [web, sidecar] = containers(result);
    assert.deepEqual(web?.env, [{ name: 'A', value: '1' }, { name: 'B', value: '3' }]);
    assert.deepEqual(web?.ports, [{ containerPort: 80, protocol: 'TCP', name: 'http' }]);
    assert.deepEqual(web?.args, ['--port', '8080']);
    assert.deepEqual(sidecar?.command, ['true']);
    assert.deepEqual(templateSpec(result)['tolerations'], [{ key: 'b', operator: 'Exists' }]);
  });

  test('status conditions merge by type', () => {
    const patch = { status: { conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] } };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual((result['status'] as { conditions: unknown[] }).conditions, [
      { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
      { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' },
    ]);
  });

  test('$retainKeys clears the other members of a union', () => {
    const patch = { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate' } } };
    const result = applyStrategicMergePatch(liveDeployment(), patch, 'Deployment');
    assert.deepEqual((result['spec'] as { strategy: unknown }).strategy, { type: 'Recreate' });
    assert.deepEqual(directiveKeys(result), []);
  });

  test('$patch: replace on a map and as a list element', () => {
    const mapReplace = { spec: { template: { metadata: { $patch: 'replace', labels: { app: 'web', v: '2' } } } } };
    const r1 = applyStrategicMergePatch(liveDeployment(), mapReplace, 'Deployment');
    assert.deepEqual((r1['spec'] as { template: { metadata: unknown } }).template.metadata, { labels: { app: 'web', v: '2' } });

    const listReplace = { spec: { template: { spec: { containers: [{ name: 'only', image: 'x' }, { $patch: 'replace' }] } } } };
    const r2 = applyStrategicMergePatch(liveDeployment(), listReplace, 'Deployment');
    assert.deepEqual(containers(r2), [{ name: 'only', image: 'x' }]);
    assert.deepEqual(directiveKeys([r1, r2]), []);
  });

  test('$patch: delete on a map empties it', () => {
    const result = applyStrategicMergePatch(liveDeployment(), { spec: { strategy: { $patch: 'delete' } } }, 'Deployment');
    assert.deepEqual((result['spec'] as { strategy: unknown }).strategy, {});
  });

  test('finalizers: a merged list of scalars with $deleteFromPrimitiveList and $setElementOrder', () => {
    const del = applyStrategicMergePatch(liveDeployment(), { metadata: { '$deleteFromPrimitiveList/finalizers': ['b', 'zz'] } }, 'Deployment');
    assert.deepEqual(del.metadata.finalizers, ['a', 'c']);

    const add = applyStrategicMergePatch(
      liveDeployment(),
      { metadata: { '$setElementOrder/finalizers': ['a', 'b', 'd'], finalizers: ['d'] } },
      'Deployment',
    );
    assert.deepEqual(add.metadata.finalizers, ['a', 'b', 'd', 'c'], 'server-only c stays after b');

    const both = applyStrategicMergePatch(
      liveDeployment(),
      { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'], finalizers: ['d', 'a'] } },
      'Deployment',
    );
    assert.deepEqual(both.metadata.finalizers, ['d', 'b', 'c'], 'deletion wins over an addition of the same value');

    const missing = applyStrategicMergePatch({ metadata: { name: 'x' } }, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } }, 'Pod');
    assert.deepEqual(missing.metadata, { name: 'x' }, 'deleting from a missing list adds nothing');
  });

  test('ownerReferences merge by uid', () => {
    const live: KubeObject = { metadata: { name: 'rs', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'u1' }] } };
    const patch = { metadata: { ownerReferences: [{ uid: 'u1', controller: true }, { apiVersion: 'v1', kind: 'X', name: 'y', uid: 'u2' }] } };
    const result = applyStrategicMergePatch(live, patch, 'ReplicaSet');
    assert.deepEqual(result.metadata.ownerReferences, [
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'u1', controller: true },
      { apiVersion: 'v1', kind: 'X', name: 'y', uid: 'u2' },
    ]);
  });

  test('Pod: containers at spec.containers, status conditions by type, volumes and mounts by key', () => {
    const live: KubeObject = {
      metadata: { name: 'p' },
      spec: {
        containers: [{ name: 'c', image: 'a', volumeMounts: [{ name: 'v', mountPath: '/data' }] }],
        volumes: [{ name: 'v', emptyDir: {} }],
        imagePullSecrets: [{ name: 's1' }],
      },
      status: { conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'False' }], podIPs: [{ ip: '10.0.0.1' }] },
    };
    const patch = {
      spec: {
        containers: [{ name: 'c', volumeMounts: [{ mountPath: '/data', readOnly: true }, { name: 'w', mountPath: '/w' }] }],
        volumes: [{ name: 'w', emptyDir: {} }],
        imagePullSecrets: [{ name: 's2' }],
      },
      status: { conditions: [{ type: 'Ready', status: 'True' }], podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }] },
    };
    const result = applyStrategicMergePatch(live, patch, 'Pod');
    const spec = result['spec'] as Record<string, unknown>;
    assert.deepEqual(spec['containers'], [
      { name: 'c', image: 'a', volumeMounts: [{ name: 'v', mountPath: '/data', readOnly: true }, { name: 'w', mountPath: '/w' }] },
    ]);
    assert.deepEqual(names(spec['volumes'] as { name: string }[]).sort(), ['v', 'w']);
    assert.deepEqual(names(spec['imagePullSecrets'] as { name: string }[]).sort(), ['s1', 's2']);
    assert.deepEqual(result['status'], {
      conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True' }],
      podIPs: [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }],
    });
  });

  test('Service ports merge by port; Endpoints subsets are replaced', () => {
    const service: KubeObject = {
      metadata: { name: 's' },
      spec: { type: 'NodePort', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }], selector: { app: 'web' } },
    };
    const result = applyStrategicMergePatch(service, { spec: { ports: [{ port: 80, targetPort: 9090 }, { name: 'https', port: 443 }] } }, 'Service');
    assert.deepEqual((result['spec'] as { ports: unknown }).ports, [
      { name: 'http', port: 80, targetPort: 9090, protocol: 'TCP', nodePort: 30080 },
      { name: 'https', port: 443 },
    ]);

    const endpoints: KubeObject = { metadata: { name: 's' }, subsets: [{ addresses: [{ ip: '10.0.0.1' }], ports: [{ port: 80 }] }] };
    const replaced = applyStrategicMergePatch(endpoints, { subsets: [{ addresses: [{ ip: '10.0.0.2' }] }] }, 'Endpoints');
    assert.deepEqual(replaced['subsets'], [{ addresses: [{ ip: '10.0.0.2' }] }]);
  });

  test('Node: podCIDRs merge as scalars, conditions by type, taints replaced', () => {
    const node: KubeObject = {
      metadata: { name: 'n1' },
      spec: { podCIDRs: ['10.244.1.0/24'], taints: [{ key: 'a', effect: 'NoSchedule' }] },
      status: { conditions: [{ type: 'Ready', status: 'True' }, { type: 'MemoryPressure', status: 'False' }] },
    };
    const patch = {
      spec: { podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'], taints: [{ key: 'b', effect: 'NoExecute' }] },
      status: { conditions: [{ type: 'Ready', status: 'Unknown' }] },
    };
    const result = applyStrategicMergePatch(node, patch, 'Node');
    assert.deepEqual(result['spec'], { podCIDRs: ['10.244.1.0/24', 'fd00:1::/64'], taints: [{ key: 'b', effect: 'NoExecute' }] });
    assert.deepEqual(result['status'], { conditions: [{ type: 'Ready', status: 'Unknown' }, { type: 'MemoryPressure', status: 'False' }] });
  });

  test('an unknown kind merges maps and replaces lists', () => {
    const widget: KubeObject = { metadata: { name: 'w', labels: { a: '1' } }, spec: { items: [{ name: 'x', v: 1 }], nested: { keep: true, drop: 1 } } };
    const result = applyStrategicMergePatch(widget, { metadata: { labels: { b: '2' } }, spec: { items: [{ name: 'x' }], nested: { drop: null } } }, 'Widget');
    assert.deepEqual(result, { metadata: { name: 'w', labels: { a: '1', b: '2' } }, spec: { items: [{ name: 'x' }], nested: { keep: true } } });
  });

  test('a value of another type replaces the live one', () => {
    const result = applyStrategicMergePatch({ metadata: { name: 'x' }, data: { a: '1' }, list: [1] }, { data: 'now a string', list: { k: 'v' } }, 'ConfigMap');
    assert.deepEqual(result, { metadata: { name: 'x' }, data: 'now a string', list: { k: 'v' } });
  });

  test('the result shares nothing with the target or the patch', () => {
    const live = liveDeployment();
    const patch = { spec: { template: { spec: { containers: [{ name: 'new', env: [{ name: 'X', value: '1' }] }] } } } };
    const patchCopy = structuredClone(patch);
    const result = applyStrategicMergePatch(live, patch, 'Deployment');
    assert.deepEqual(patch, patchCopy);
    assert.notEqual(result.metadata, live.metadata);
    assert.notEqual(result['status'], live['status']);
    const added = containers(result)[0];
    assert.equal(added?.name, 'new');
    assert.notEqual(added, patch.spec.template.spec.containers[0]);
    assert.notEqual(added?.env, patch.spec.template.spec.containers[0]?.env);
    result.metadata.labels = { mutated: 'yes' };
    assert.deepEqual(live, liveDeployment());
  });

  const malformed: [string, unknown][] = [
    ['a patch that is not an object', [{ op: 'add' }]],
    ['a null patch', null],
    ['an unknown $patch directive', { spec: { strategy: { $patch: 'explode' } } }],
    ['an unknown $patch directive in a list', { spec: { template: { spec: { containers: [{ name: 'web', $patch: 'remove' }] } } } }],
    ['a list element without its merge key', { spec: { template: { spec: { containers: [{ image: 'x' }] } } } }],
    ['$patch: delete without the merge key', { spec: { template: { spec: { containers: [{ $patch: 'delete' }] } } } }],
    ['$setElementOrder that is not a list', { spec: { template: { spec: { '$setElementOrder/containers': { name: 'web' } } } } }],
    ['$deleteFromPrimitiveList that is not a list', { metadata: { '$deleteFromPrimitiveList/finalizers': 'a' } }],
    ['$retainKeys that is not a list of strings', { spec: { strategy: { $retainKeys: 'type' } } }],
    ['a field missing from $retainKeys', { spec: { strategy: { $retainKeys: ['type'], type: 'RollingUpdate', rollingUpdate: {} } } }],
    ['objects in a merged list of scalars', { metadata: { finalizers: [{ name: 'a' }] } }],
  ];
  for (const [name, patch] of malformed) {
    test(`malformed: ${name}`, () => {
      assert.throws(() => applyStrategicMergePatch(liveDeployment(), patch, 'Deployment'), isPatchError('malformed'));
    });
  }
});

// ---- dispatch ----------------------------------------------------------------------------------

describe('applyPatch', () => {
  const scale = (): KubeObject => ({ apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'web' }, spec: { replicas: 2 } });

  test('the accepted media types', () => {
    assert.deepEqual([...PATCH_CONTENT_TYPES].sort(), [
      'application/apply-patch+yaml',
      'application/json-patch+json',
      'application/merge-patch+json',
      'application/strategic-merge-patch+json',
    ]);
  });

  test('merge patch, with media type parameters and any case', () => {
    const result = applyPatch('Application/Merge-Patch+JSON; charset=utf-8', scale(), { spec: { replicas: 5 } }, 'Scale');
    assert.deepEqual(result.spec, { replicas: 5 });
  });

  test('JSON patch', () => {
    const result = applyPatch('application/json-patch+json', scale(), [{ op: 'replace', path: '/spec/replicas', value: 0 }], 'Scale');
    assert.deepEqual(result.spec, { replicas: 0 });
  });

  test('strategic merge uses the kind', () => {
    const patch = { spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:3' }] } } } };
    const result = applyPatch('application/strategic-merge-patch+json', liveDeployment(), patch, 'Deployment');
    assert.deepEqual(names(containers(result)), ['web', 'sidecar']);
    assert.equal(containers(result)[0]?.image, 'nginx:3');
  });

  test('server-side apply merges the applied intent onto the live object', () => {
    const intent = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: { replicas: 4, template: { spec: { containers: [{ name: 'web', image: 'nginx:4', ports: [{ containerPort: 8080 }] }] } } },
    };
    for (const body of [intent, JSON.stringify(intent)]) {
      const result = applyPatch('application/apply-patch+yaml', liveDeployment(), body, 'Deployment');
      assert.equal((result['spec'] as { replicas: number }).replicas, 4);
      const [web] = containers(result);
      assert.equal(web?.image, 'nginx:4');
      assert.deepEqual(web?.ports?.map((p) => p.containerPort), [8080, 80]);
      assert.deepEqual(names(containers(result)), ['web', 'sidecar']);
    }
    assert.throws(() => applyPatch('application/apply-patch+yaml', liveDeployment(), 'kind: Deployment', 'Deployment'), isPatchError('malformed'));
    assert.throws(() => applyPatch('application/apply-patch+yaml', liveDeployment(), [1], 'Deployment'), isPatchError('malformed'));
  });

  test('a patch that does not leave an object is invalid', () => {
    assert.throws(() => applyPatch('application/merge-patch+json', scale(), 'x', 'Scale'), isPatchError('invalid'));
    assert.throws(() => applyPatch('application/json-patch+json', scale(), [{ op: 'replace', path: '', value: [1] }], 'Scale'), isPatchError('invalid'));
  });

  test('a patch that removes metadata still yields an object with metadata', () => {
    const result = applyPatch('application/merge-patch+json', scale(), { metadata: null }, 'Scale');
    assert.deepEqual(result.metadata, {});
  });

  for (const contentType of ['application/json', 'application/yaml', 'text/plain', '']) {
    test(`415 for ${JSON.stringify(contentType)}`, () => {
      assert.throws(
        () => applyPatch(contentType, scale(), {}, 'Scale'),
        (err: unknown) =>
          err instanceof UnsupportedPatchTypeError &&
          err.contentType === contentType &&
          PATCH_CONTENT_TYPES.every((type) => err.message.includes(type)),
      );
    });
  }
});
