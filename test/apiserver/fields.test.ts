import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { matchesFields, parseFieldSelector, SelectorParseError } from '../../src/api/selectors.js';
import type { Event, Namespace, Node, Pod } from '../../src/api/types.js';
import { checkFieldSelector, selectableFieldNames, selectableFields } from '../../src/apiserver/fields.js';

const scheduledPod: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-1', namespace: 'default' },
  spec: {
    containers: [{ name: 'web', image: 'nginx' }],
    nodeName: 'n1',
    restartPolicy: 'Always',
    schedulerName: 'default-scheduler',
    serviceAccountName: 'default',
    hostNetwork: true,
  },
  status: { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }], nominatedNodeName: 'n2' } as Pod['status'],
};

const pendingPod: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-2', namespace: 'prod' },
  spec: { containers: [{ name: 'web' }] },
};

const event: Event = {
  apiVersion: 'v1',
  kind: 'Event',
  metadata: { name: 'web-1.17a', namespace: 'default' },
  involvedObject: { kind: 'Pod', namespace: 'default', name: 'web-1', uid: 'u-1', apiVersion: 'v1', resourceVersion: '42', fieldPath: 'spec.containers{web}' },
  reason: 'Scheduled',
  type: 'Normal',
  source: { component: 'default-scheduler' },
  reportingComponent: 'pontoon-scheduler',
} as Event;

describe('selectableFields', () => {
  const cases: [string, string, KubeObject, Record<string, string>][] = [
    [
      'a scheduled pod',
      'Pod',
      scheduledPod,
      {
        'metadata.name': 'web-1',
        'metadata.namespace': 'default',
        'spec.nodeName': 'n1',
        'spec.restartPolicy': 'Always',
        'spec.schedulerName': 'default-scheduler',
        'spec.serviceAccountName': 'default',
        'spec.hostNetwork': 'true',
        'status.phase': 'Running',
        'status.podIP': '10.244.1.5',
        'status.nominatedNodeName': 'n2',
      },
    ],
    [
      'a pod with nothing set: empty strings and false',
      'Pod',
      pendingPod,
      {
        'metadata.name': 'web-2',
        'metadata.namespace': 'prod',
        'spec.nodeName': '',
        'spec.restartPolicy': '',
        'spec.schedulerName': '',
        'spec.serviceAccountName': '',
        'spec.hostNetwork': 'false',
        'status.phase': '',
        'status.podIP': '',
        'status.nominatedNodeName': '',
      },
    ],
    [
      'an event',
      'Event',
      event,
      {
        'metadata.name': 'web-1.17a',
        'metadata.namespace': 'default',
        'involvedObject.kind': 'Pod',
        'involvedObject.namespace': 'default',
        'involvedObject.name': 'web-1',
        'involvedObject.uid': 'u-1',
        'involvedObject.apiVersion': 'v1',
        'involvedObject.resourceVersion': '42',
        'involvedObject.fieldPath': 'spec.containers{web}',
        reason: 'Scheduled',
        reportingComponent: 'pontoon-scheduler',
        source: 'default-scheduler',
        type: 'Normal',
      },
    ],
    [
      'a cordoned node',
      'Node',
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { unschedulable: true } } satisfies Node,
      { 'metadata.name': 'n1', 'metadata.namespace': '', 'spec.unschedulable': 'true' },
    ],
    [
      'a node without spec',
      'Node',
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n2' } } satisfies Node,
      { 'metadata.name': 'n2', 'metadata.namespace': '', 'spec.unschedulable': 'false' },
    ],
    [
      'a namespace',
      'Namespace',
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' }, status: { phase: 'Terminating' } } satisfies Namespace,
      { 'metadata.name': 'prod', 'metadata.namespace': '', 'status.phase': 'Terminating' },
    ],
    [
      'a kind with only metadata fields',
      'ConfigMap',
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'default' }, data: { 'status.phase': 'x' } },
      { 'metadata.name': 'cfg', 'metadata.namespace': 'default' },
    ],
  ];
  for (const [name, kind, object, expected] of cases) {
    test(name, () => assert.deepEqual(selectableFields(kind, object), expected));
  }

  test('status.podIP falls back to the first of status.podIPs', () => {
    const pod = { ...pendingPod, status: { podIPs: [{ ip: 'fd00::5' }, { ip: '10.0.0.5' }] } };
    assert.equal(selectableFields('Pod', pod)['status.podIP'], 'fd00::5');
  });

  test('field names per kind', () => {
    assert.deepEqual(selectableFieldNames('Lease'), ['metadata.name', 'metadata.namespace']);
    assert.ok(selectableFieldNames('Pod').includes('spec.nodeName'));
    assert.ok(selectableFieldNames('Event').includes('involvedObject.uid'));
  });
});

describe('checkFieldSelector', () => {
  const accepted: [string, string][] = [
    ['Pod', 'spec.nodeName=n1,status.phase!=Succeeded'],
    ['Pod', 'metadata.name=web-1'],
    ['Event', 'involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=u-1'],
    ['Node', 'spec.unschedulable=false'],
    ['Namespace', 'status.phase=Active'],
    ['Deployment', 'metadata.namespace=default'],
    ['Pod', ''],
  ];
  for (const [kind, selector] of accepted) {
    test(`${kind} accepts ${JSON.stringify(selector)}`, () => {
      assert.doesNotThrow(() => checkFieldSelector(kind, parseFieldSelector(selector)));
    });
  }

  const rejected: [string, string, string][] = [
    ['Pod', 'spec.nodeName=n1,spec.foo=x', 'spec.foo'],
    ['Node', 'spec.nodeName=n1', 'spec.nodeName'],
    ['ConfigMap', 'data.key=x', 'data.key'],
    ['Pod', 'metadata.labels=x', 'metadata.labels'],
    ['Pod', 'metadata.name =x', 'metadata.name '],
  ];
  for (const [kind, selector, field] of rejected) {
    test(`${kind} rejects ${JSON.stringify(selector)}`, () => {
      assert.throws(
        () => checkFieldSelector(kind, parseFieldSelector(selector)),
        (err: unknown) => err instanceof SelectorParseError && err.message === `field label not supported: ${field}`,
      );
    });
  }
});

describe('field selectors over objects', () => {
  const pods = [scheduledPod, pendingPod];
  const select = (selector: string): string[] =>
    pods.filter((pod) => matchesFields(parseFieldSelector(selector), selectableFields('Pod', pod))).map((pod) => pod.metadata.name ?? '');

  test('what the scheduler, kubelet and kubectl ask for', () => {
    assert.deepEqual(select('spec.nodeName='), ['web-2'], 'unscheduled pods');
    assert.deepEqual(select('spec.nodeName=n1'), ['web-1'], "a kubelet's pods");
    assert.deepEqual(select('metadata.name=web-2'), ['web-2'], 'kubectl delete --wait');
    assert.deepEqual(select('status.phase!=Succeeded,status.phase!=Failed'), ['web-1', 'web-2']);
    assert.deepEqual(select('spec.hostNetwork=false'), ['web-2']);
    assert.deepEqual(select('metadata.namespace=prod,spec.nodeName!='), []);
  });
});
