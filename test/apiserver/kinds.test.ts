import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../src/api/meta.js';
import { FieldPath, invalidMessage, strategyFor, validateObjectMeta, type FieldCause } from '../../src/apiserver/kinds/strategy.js';
import { defaultPullPolicy, podQosClass } from '../../src/apiserver/kinds/pod.js';

// ---- helpers -----------------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** The create path as the server runs it: defaults, prepare, validate. */
function created(kind: string, object: KubeObject): { object: KubeObject; causes: FieldCause[] } {
  const strategy = strategyFor(kind);
  strategy.applyDefaults(object);
  strategy.prepareForCreate(object);
  return { object, causes: strategy.validate(object) };
}

function causesOf(kind: string, object: KubeObject): FieldCause[] {
  return created(kind, object).causes;
}

/** The update path: defaults on the new object, prepare against the stored one, validate. */
function updated(kind: string, object: KubeObject, old: KubeObject): { object: KubeObject; causes: FieldCause[] } {
  const strategy = strategyFor(kind);
  strategy.applyDefaults(object);
  strategy.prepareForUpdate(object, old);
  return { object, causes: [...strategy.validate(object), ...strategy.validateUpdate(object, old)] };
}

/** "field reason" for each cause: what most assertions compare. */
function summary(causes: FieldCause[]): string[] {
  return causes.map((c) => `${c.field} ${c.reason}`);
}

function only(causes: FieldCause[], field: string): FieldCause {
  const matching = causes.filter((c) => c.field === field);
  assert.equal(matching.length, 1, `want one cause for ${field}, got ${JSON.stringify(causes, null, 1)}`);
  return matching[0]!;
}

function spec(object: KubeObject): Json {
  return object['spec'] as Json;
}

function container(object: KubeObject, i = 0): Json {
  return (spec(object)['containers'] as Json[])[i]!;
}

function pod(overrides: Json = {}, containerOverrides: Json = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } },
    spec: {
      containers: [{ name: 'web', image: 'busybox:1.36', command: ['httpd', '-f'], ports: [{ containerPort: 80 }], ...containerOverrides }],
      ...overrides,
    },
  };
}

function storedPod(overrides: Json = {}): KubeObject {
  const object = created('Pod', pod(overrides)).object;
  object.metadata.uid = 'uid-1';
  object.metadata.creationTimestamp = '2024-01-01T00:00:00Z';
  object.metadata.resourceVersion = '10';
  return object;
}

function service(specFields: Json = {}, name = 'web'): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { selector: { app: 'web' }, ports: [{ port: 80 }], ...specFields },
  };
}

function template(labels: Record<string, string> = { app: 'web' }, podSpec: Json = {}): Json {
  return { metadata: { labels }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }], ...podSpec } };
}

function deployment(specFields: Json = {}, kind = 'Deployment'): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name: 'web', namespace: 'default' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: template(), ...specFields },
  };
}

// ---- field errors ---------------------------------------------------------------------------------

describe('field errors', () => {
  test('causes are worded as upstream field.Error bodies', () => {
    const path = FieldPath.of('spec').child('containers').index(0).child('ports').index(1).child('containerPort');
    assert.equal(path.toString(), 'spec.containers[0].ports[1].containerPort');
    assert.equal(FieldPath.of('data').key('a b').toString(), 'data[a b]');
  });

  test('invalidMessage: one cause inline, several in brackets, group-qualified kind', () => {
    const one = [{ field: 'spec.replicas', message: 'Invalid value: -1: must be greater than or equal to 0' }];
    assert.equal(
      invalidMessage('Deployment', 'apps', 'web', one),
      'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0',
    );
    const two = [
      { field: 'spec.containers', message: 'Required value' },
      { field: 'metadata.name', message: 'Required value' },
    ];
    assert.equal(invalidMessage('Pod', '', 'x', two), 'Pod "x" is invalid: [spec.containers: Required value, metadata.name: Required value]');
  });
});

// ---- metadata ---------------------------------------------------------------------------------------

describe('ObjectMeta', () => {
  test('names: DNS-1123 subdomain by default, label for namespaces, RFC 1035 label for services', () => {
    assert.deepEqual(validateObjectMeta({ name: 'web.example-1', namespace: 'default' }, true), []);
    assert.deepEqual(summary(validateObjectMeta({ name: 'Web_1', namespace: 'default' }, true)), ['metadata.name FieldValueInvalid']);
    assert.deepEqual(summary(validateObjectMeta({ name: 'a.b' }, false, 'Namespace')), ['metadata.name FieldValueInvalid']);
    assert.deepEqual(summary(validateObjectMeta({ name: '1web', namespace: 'default' }, true, 'Service')), ['metadata.name FieldValueInvalid']);
    assert.deepEqual(validateObjectMeta({ name: '1web', namespace: 'default' }, true, 'Pod'), []);
    const long = validateObjectMeta({ name: 'a'.repeat(254), namespace: 'default' }, true);
    assert.match(only(long, 'metadata.name').message, /must be no more than 253 characters/);
  });

  test('name or generateName is required; generateName may end with a dash', () => {
    const missing = only(validateObjectMeta({ namespace: 'default' }, true), 'metadata.name');
    assert.equal(missing.reason, 'FieldValueRequired');
    assert.equal(missing.message, 'Required value: name or generateName is required');
    assert.deepEqual(validateObjectMeta({ generateName: 'web-', namespace: 'default' }, true), []);
    assert.deepEqual(summary(validateObjectMeta({ generateName: 'Web-', namespace: 'default' }, true)), ['metadata.generateName FieldValueInvalid']);
  });

  test('namespace is required for namespaced kinds and forbidden for cluster-scoped ones', () => {
    assert.deepEqual(summary(validateObjectMeta({ name: 'x' }, true)), ['metadata.namespace FieldValueRequired']);
    const forbidden = only(validateObjectMeta({ name: 'n1', namespace: 'default' }, false), 'metadata.namespace');
    assert.equal(forbidden.message, 'Forbidden: not allowed on this type');
  });

  test('labels, annotations, owner references and finalizers', () => {
    const causes = validateObjectMeta(
      {
        name: 'x',
        namespace: 'default',
        labels: { 'bad key!': 'v', good: 'bad value!', 'example.com/ok': 'fine' },
        annotations: { 'Example.com/Mixed': 'capitals are fine in annotation keys' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'a', uid: '1', controller: true },
          { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'b', uid: '', controller: true },
        ],
        finalizers: ['example.com/ok', 'bad finalizer'],
      },
      true,
    );
    assert.deepEqual(summary(causes), [
      'metadata.labels FieldValueInvalid',
      'metadata.labels FieldValueInvalid',
      'metadata.ownerReferences[1].uid FieldValueRequired',
      'metadata.ownerReferences FieldValueInvalid',
      'metadata.finalizers FieldValueInvalid',
    ]);
    assert.match(causes[0]!.message, /^Invalid value: "bad key!": name part must consist of alphanumeric characters/);
    assert.match(causes[1]!.message, /^Invalid value: "bad value!": a valid label must be an empty string/);
    const huge = validateObjectMeta({ name: 'x', namespace: 'd', annotations: { big: 'x'.repeat(300_000) } }, true);
    assert.equal(only(huge, 'metadata.annotations').message, 'Too long: must have at most 262144 bytes');
  });

  test('fields of the wrong JSON type are causes, not exceptions', () => {
    const causes = validateObjectMeta({ name: 5, namespace: 'default', labels: 'app=web' } as never, true);
    assert.deepEqual(summary(causes), ['metadata.name FieldValueInvalid', 'metadata.name FieldValueRequired', 'metadata.labels FieldValueInvalid']);
  });
});

// ---- pods -------------------------------------------------------------------------------------------

describe('Pod defaults', () => {
  test('pod and container defaults as upstream applies them', () => {
    const { object } = created('Pod', pod({}, { readinessProbe: { httpGet: { port: 80 } }, env: [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }] }));
    const s = spec(object);
    assert.equal(s['restartPolicy'], 'Always');
    assert.equal(s['terminationGracePeriodSeconds'], 30);
    assert.equal(s['dnsPolicy'], 'ClusterFirst');
    assert.equal(s['schedulerName'], 'default-scheduler');
    assert.equal(s['enableServiceLinks'], true);
    assert.deepEqual(s['securityContext'], {});
    const c = container(object);
    assert.equal(c['imagePullPolicy'], 'IfNotPresent');
    assert.equal(c['terminationMessagePath'], '/dev/termination-log');
    assert.equal(c['terminationMessagePolicy'], 'File');
    assert.deepEqual(c['ports'], [{ containerPort: 80, protocol: 'TCP' }]);
    assert.deepEqual(c['readinessProbe'], {
      httpGet: { port: 80, path: '/', scheme: 'HTTP' },
      timeoutSeconds: 1,
      periodSeconds: 10,
      successThreshold: 1,
      failureThreshold: 3,
    });
    assert.deepEqual(c['env'], [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'metadata.name', apiVersion: 'v1' } } }]);
  });

  test('explicit values are kept, including a zero grace period', () => {
    const { object } = created('Pod', pod({ restartPolicy: 'Never', terminationGracePeriodSeconds: 0 }, { imagePullPolicy: 'Never' }));
    assert.equal(spec(object)['restartPolicy'], 'Never');
    assert.equal(spec(object)['terminationGracePeriodSeconds'], 0);
    assert.equal(container(object)['imagePullPolicy'], 'Never');
  });

  test('imagePullPolicy: Always for :latest and untagged images, IfNotPresent otherwise', () => {
    assert.equal(defaultPullPolicy('busybox'), 'Always');
    assert.equal(defaultPullPolicy('busybox:latest'), 'Always');
    assert.equal(defaultPullPolicy('registry.local:5000/team/busybox'), 'Always', 'a registry port is not a tag');
    assert.equal(defaultPullPolicy('registry.local:5000/team/busybox:1.36'), 'IfNotPresent');
    assert.equal(defaultPullPolicy('busybox@sha256:0123'), 'IfNotPresent');
  });

  test('hostNetwork pods get hostPort = containerPort', () => {
    const { object, causes } = created('Pod', pod({ hostNetwork: true }));
    assert.deepEqual(causes, []);
    assert.equal((container(object)['ports'] as Json[])[0]!['hostPort'], 80);
  });

  test('create resets status to Pending with the QoS class; requests default from limits', () => {
    const { object } = created('Pod', { ...pod(), status: { phase: 'Running', podIP: '10.244.1.5' } });
    assert.deepEqual(object['status'], { phase: 'Pending', qosClass: 'BestEffort' });
    const guaranteed = created('Pod', pod({}, { resources: { limits: { cpu: '500m', memory: '128Mi' } } })).object;
    assert.deepEqual((container(guaranteed)['resources'] as Json)['requests'], { cpu: '500m', memory: '128Mi' });
    assert.equal((guaranteed['status'] as Json)['qosClass'], 'Guaranteed');
    assert.equal(podQosClass({ containers: [{ resources: { requests: { cpu: '100m' } } }] }), 'Burstable');
    assert.equal(podQosClass({ containers: [{ resources: { requests: { cpu: '0.5', memory: '1Gi' }, limits: { cpu: '500m', memory: '1Gi' } } }] }), 'Guaranteed');
    assert.equal(podQosClass({ containers: [{ resources: { limits: { cpu: '1', memory: '1Gi' } } }, { name: 'b' }] }), 'Burstable');
    assert.equal(created('Pod', pod()).object.metadata.generation, undefined, 'pods do not track generation in 1.32');
  });
});

describe('Pod validation', () => {
  test('a well-formed pod has no causes', () => {
    assert.deepEqual(
      causesOf(
        'Pod',
        pod(
          { tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }], nodeSelector: { disk: 'ssd' } },
          {
            env: [{ name: 'HOSTNAME_ALIAS', value: 'x' }],
            livenessProbe: { tcpSocket: { port: 'http' } },
            readinessProbe: { exec: { command: ['true'] }, successThreshold: 2 },
            resources: { requests: { cpu: '100m' }, limits: { cpu: '1' } },
          },
        ),
      ),
      [],
    );
  });

  test('containers: required, unique DNS-label names, image required', () => {
    assert.deepEqual(summary(causesOf('Pod', pod({ containers: [] }))), ['spec.containers FieldValueRequired']);
    const twins = causesOf('Pod', pod({ containers: [{ name: 'a', image: 'x' }, { name: 'a', image: 'y' }] }));
    assert.deepEqual(summary(twins), ['spec.containers[1].name FieldValueDuplicate']);
    assert.equal(twins[0]!.message, 'Duplicate value: "a"');
    const initTwin = causesOf('Pod', pod({ initContainers: [{ name: 'web', image: 'x' }] }));
    assert.deepEqual(summary(initTwin), ['spec.containers[0].name FieldValueDuplicate'], 'names are unique across init and app containers');
    const bad = causesOf('Pod', pod({}, { name: 'Web_1', image: '' }));
    assert.deepEqual(summary(bad), ['spec.containers[0].name FieldValueInvalid', 'spec.containers[0].image FieldValueRequired']);
    assert.match(bad[0]!.message, /^Invalid value: "Web_1": a lowercase RFC 1123 label must consist of/);
    assert.equal(bad[1]!.message, 'Required value');
  });

  test('ports: range, protocol enum, names', () => {
    const causes = causesOf('Pod', pod({}, { ports: [{ containerPort: 70000 }, { containerPort: 81, protocol: 'tcp' }, { containerPort: 82, name: 'Bad--name' }] }));
    assert.deepEqual(summary(causes), [
      'spec.containers[0].ports[0].containerPort FieldValueInvalid',
      'spec.containers[0].ports[1].protocol FieldValueNotSupported',
      'spec.containers[0].ports[2].name FieldValueInvalid',
      'spec.containers[0].ports[2].name FieldValueInvalid',
    ]);
    assert.equal(causes[0]!.message, 'Invalid value: 70000: must be between 1 and 65535, inclusive');
    assert.equal(causes[1]!.message, 'Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"');
    assert.deepEqual(summary(causesOf('Pod', pod({}, { ports: [{ name: 'http' }] }))), ['spec.containers[0].ports[0].containerPort FieldValueRequired']);
    const clash = causesOf('Pod', pod({ containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, hostPort: 8080 }] }, { name: 'b', image: 'x', ports: [{ containerPort: 81, hostPort: 8080 }] }] }));
    assert.deepEqual(summary(clash), ['spec.containers[1].ports[0].hostPort FieldValueDuplicate']);
    assert.deepEqual(summary(causesOf('Pod', pod({}, { ports: [{ containerPort: '80' }] }))), ['spec.containers[0].ports[0].containerPort FieldValueInvalid']);
  });

  test('restartPolicy and dnsPolicy are enums', () => {
    const causes = causesOf('Pod', pod({ restartPolicy: 'Sometimes', dnsPolicy: 'Google' }));
    assert.deepEqual(summary(causes), ['spec.restartPolicy FieldValueNotSupported', 'spec.dnsPolicy FieldValueNotSupported']);
    assert.equal(causes[0]!.message, 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"');
  });

  test('probes have exactly one handler and sane thresholds', () => {
    const none = causesOf('Pod', pod({}, { livenessProbe: { periodSeconds: 5 } }));
    assert.deepEqual(summary(none), ['spec.containers[0].livenessProbe FieldValueRequired']);
    assert.equal(none[0]!.message, 'Required value: must specify a handler type');
    const two = causesOf('Pod', pod({}, { readinessProbe: { httpGet: { port: 80 }, tcpSocket: { port: 80 } } }));
    assert.deepEqual(summary(two), ['spec.containers[0].readinessProbe.tcpSocket FieldValueForbidden']);
    assert.equal(two[0]!.message, 'Forbidden: may not specify more than 1 handler type');
    const threshold = causesOf('Pod', pod({}, { livenessProbe: { exec: { command: ['true'] }, successThreshold: 2, periodSeconds: -1 } }));
    assert.deepEqual(summary(threshold), ['spec.containers[0].livenessProbe.periodSeconds FieldValueInvalid', 'spec.containers[0].livenessProbe.successThreshold FieldValueInvalid']);
    const emptyExec = causesOf('Pod', pod({}, { startupProbe: { exec: {} } }));
    assert.deepEqual(summary(emptyExec), ['spec.containers[0].startupProbe.exec.command FieldValueRequired']);
    const badPort = causesOf('Pod', pod({}, { readinessProbe: { httpGet: { port: 0, scheme: 'FTP' } } }));
    assert.deepEqual(summary(badPort), ['spec.containers[0].readinessProbe.httpGet.port FieldValueRequired', 'spec.containers[0].readinessProbe.httpGet.scheme FieldValueNotSupported']);
    const init = causesOf('Pod', pod({ initContainers: [{ name: 'init', image: 'x', readinessProbe: { exec: { command: ['true'] } } }] }));
    assert.deepEqual(summary(init), ['spec.initContainers[0].readinessProbe FieldValueForbidden']);
  });

  test('env names and sources', () => {
    const causes = causesOf(
      'Pod',
      pod({}, { env: [{ value: 'x' }, { name: 'A=B' }, { name: 'C', value: 'v', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }, { name: 'D', valueFrom: { fieldRef: { fieldPath: 'status.phase' } } }, { name: 'E', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } }] }),
    );
    assert.deepEqual(summary(causes), [
      'spec.containers[0].env[0].name FieldValueRequired',
      'spec.containers[0].env[1].name FieldValueInvalid',
      'spec.containers[0].env[2].valueFrom FieldValueInvalid',
      'spec.containers[0].env[3].valueFrom.fieldRef.fieldPath FieldValueNotSupported',
    ]);
  });

  test('resources: quantities, non-negative, requests within limits', () => {
    const causes = causesOf('Pod', pod({}, { resources: { requests: { cpu: '2', memory: 'lots', gpu: '1' }, limits: { cpu: '1' } } }));
    assert.deepEqual(summary(causes), [
      'spec.containers[0].resources.requests[memory] FieldValueInvalid',
      'spec.containers[0].resources.requests[gpu] FieldValueInvalid',
      'spec.containers[0].resources.requests[cpu] FieldValueInvalid',
    ]);
    assert.equal(causes[2]!.message, 'Invalid value: "2": must be less than or equal to cpu limit of 1');
  });

  test('tolerations', () => {
    const causes = causesOf('Pod', pod({ tolerations: [{ operator: 'Equal', value: 'x' }, { key: 'k', operator: 'Exists', value: 'v' }, { key: 'k', effect: 'NoSchedule', tolerationSeconds: 5 }, { key: 'k', operator: 'Like' }] }));
    assert.deepEqual(summary(causes), [
      'spec.tolerations[0].operator FieldValueInvalid',
      'spec.tolerations[1].operator FieldValueInvalid',
      'spec.tolerations[2].effect FieldValueInvalid',
      'spec.tolerations[3].operator FieldValueNotSupported',
    ]);
  });

  test('status addresses must be IPs', () => {
    const strategy = strategyFor('Pod');
    const object = storedPod();
    object['status'] = { phase: 'Running', podIP: '10.244.1.300', hostIPs: [{ ip: 'nope' }] };
    assert.deepEqual(summary(strategy.validate(object)), ['status.podIP FieldValueInvalid', 'status.hostIPs[0].ip FieldValueInvalid']);
  });
});

describe('Pod updates', () => {
  test('images, a shorter activeDeadlineSeconds, added tolerations and metadata may change', () => {
    const old = storedPod({ activeDeadlineSeconds: 600, tolerations: [{ key: 'a', operator: 'Exists' }] });
    const next = structuredClone(old);
    container(next)['image'] = 'busybox:1.37';
    spec(next)['activeDeadlineSeconds'] = 300;
    (spec(next)['tolerations'] as Json[]).push({ key: 'b', operator: 'Exists' });
    next.metadata.labels = { app: 'web', tier: 'front' };
    assert.deepEqual(updated('Pod', next, old).causes, []);
  });

  test('any other spec change is forbidden, naming what changed', () => {
    const old = storedPod();
    const next = structuredClone(old);
    container(next)['command'] = ['sleep', '1'];
    spec(next)['restartPolicy'] = 'Never';
    const cause = only(updated('Pod', next, old).causes, 'spec');
    assert.equal(cause.reason, 'FieldValueForbidden');
    assert.match(cause.message, /^Forbidden: pod updates may not change fields other than `spec.containers\[\*\].image`,/);
    assert.match(cause.message, /spec\.containers\[0\]\.command/);
    assert.match(cause.message, /spec\.restartPolicy/);
  });

  test('activeDeadlineSeconds may only shrink; tolerations may only be added', () => {
    const old = storedPod({ activeDeadlineSeconds: 600, tolerations: [{ key: 'a', operator: 'Exists' }] });
    const longer = structuredClone(old);
    spec(longer)['activeDeadlineSeconds'] = 900;
    assert.deepEqual(summary(updated('Pod', longer, old).causes), ['spec.activeDeadlineSeconds FieldValueInvalid']);
    const removed = structuredClone(old);
    spec(removed)['tolerations'] = [];
    assert.deepEqual(summary(updated('Pod', removed, old).causes), ['spec.tolerations FieldValueForbidden']);
  });

  test('name, namespace and uid are immutable; creationTimestamp and uid come from the stored object', () => {
    const old = storedPod();
    const renamed = structuredClone(old);
    renamed.metadata.name = 'web-2';
    const cause = only(updated('Pod', renamed, old).causes, 'metadata.name');
    assert.equal(cause.message, 'Invalid value: "web-2": field is immutable');
    const bare = structuredClone(old);
    delete bare.metadata.uid;
    bare.metadata.creationTimestamp = '2030-01-01T00:00:00Z';
    const { object, causes } = updated('Pod', bare, old);
    assert.deepEqual(causes, []);
    assert.equal(object.metadata.uid, 'uid-1');
    assert.equal(object.metadata.creationTimestamp, '2024-01-01T00:00:00Z');
  });

  test('finalizers cannot be added once deletion started', () => {
    const old = storedPod();
    old.metadata.deletionTimestamp = '2024-01-02T00:00:00Z';
    const next = structuredClone(old);
    next.metadata.finalizers = ['example.com/hold'];
    delete next.metadata.deletionTimestamp;
    const { object, causes } = updated('Pod', next, old);
    assert.equal(object.metadata.deletionTimestamp, '2024-01-02T00:00:00Z', 'an update cannot undo deletion');
    assert.deepEqual(summary(causes), ['metadata.finalizers FieldValueForbidden']);
  });

  test('spec updates keep the stored status; status updates keep everything else', () => {
    const old = storedPod();
    old['status'] = { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }] };
    const specUpdate = structuredClone(old);
    specUpdate['status'] = { phase: 'Failed' };
    strategyFor('Pod').prepareForUpdate(specUpdate, old);
    assert.deepEqual(specUpdate['status'], old['status']);

    const statusUpdate = structuredClone(old);
    statusUpdate['status'] = { phase: 'Running', podIP: '10.244.1.9' };
    container(statusUpdate)['image'] = 'evil:1';
    statusUpdate.metadata.labels = { app: 'other' };
    statusUpdate.metadata.resourceVersion = '10';
    strategyFor('Pod').prepareForStatusUpdate(statusUpdate, old);
    assert.equal(container(statusUpdate)['image'], 'busybox:1.36');
    assert.deepEqual(statusUpdate.metadata.labels, { app: 'web' });
    assert.equal(statusUpdate.metadata.resourceVersion, '10');
    assert.deepEqual(statusUpdate['status'], { phase: 'Running', podIP: '10.244.1.9', podIPs: [{ ip: '10.244.1.9' }] }, 'podIPs follows podIP');
  });
});

// ---- services -------------------------------------------------------------------------------------

describe('Service', () => {
  test('defaults', () => {
    const { object, causes } = created('Service', service({ ports: [{ port: 80, targetPort: 'http', name: 'http' }, { port: 53, name: 'dns', protocol: 'UDP' }] }));
    assert.deepEqual(causes, []);
    const s = spec(object);
    assert.equal(s['type'], 'ClusterIP');
    assert.equal(s['sessionAffinity'], 'None');
    assert.equal(s['internalTrafficPolicy'], 'Cluster');
    assert.equal(s['ipFamilyPolicy'], undefined, 'the allocator sets it: it depends on the service ranges');
    assert.equal(s['externalTrafficPolicy'], undefined, 'only NodePort and LoadBalancer get one');
    assert.deepEqual(s['ports'], [
      { port: 80, targetPort: 'http', name: 'http', protocol: 'TCP' },
      { port: 53, name: 'dns', protocol: 'UDP', targetPort: 53 },
    ]);
    assert.deepEqual(object['status'], { loadBalancer: {} });
    const nodePort = created('Service', service({ type: 'NodePort', clusterIP: '10.96.0.20' })).object;
    assert.equal(spec(nodePort)['externalTrafficPolicy'], 'Cluster');
    assert.deepEqual(spec(nodePort)['clusterIPs'], ['10.96.0.20']);
    assert.equal(spec(nodePort)['ipFamilies'], undefined, 'the allocator infers families from clusterIPs');
    const affinity = created('Service', service({ sessionAffinity: 'ClientIP' })).object;
    assert.deepEqual(spec(affinity)['sessionAffinityConfig'], { clientIP: { timeoutSeconds: 10800 } });
  });

  test('ports are required unless headless or ExternalName', () => {
    assert.deepEqual(summary(causesOf('Service', service({ ports: [] }))), ['spec.ports FieldValueRequired']);
    assert.deepEqual(causesOf('Service', service({ ports: [], clusterIP: 'None' })), []);
    assert.deepEqual(causesOf('Service', service({ ports: [], type: 'ExternalName', externalName: 'db.example.com.' })), []);
    assert.deepEqual(summary(causesOf('Service', service({ type: 'ExternalName' }))), ['spec.externalName FieldValueRequired']);
  });

  test('port fields', () => {
    const causes = causesOf('Service', service({ ports: [{ port: 0, name: 'a' }, { port: 80, protocol: 'HTTP', name: 'a' }, { port: 81, targetPort: 70000, name: 'Bad' }, { port: 82 }] }));
    assert.deepEqual(summary(causes), [
      'spec.ports[0].port FieldValueInvalid',
      'spec.ports[0].targetPort FieldValueInvalid', // defaulted from port
      'spec.ports[1].name FieldValueDuplicate',
      'spec.ports[1].protocol FieldValueNotSupported',
      'spec.ports[2].name FieldValueInvalid',
      'spec.ports[2].targetPort FieldValueInvalid',
      'spec.ports[3].name FieldValueRequired',
    ]);
    assert.equal(causes[0]!.message, 'Invalid value: 0: must be between 1 and 65535, inclusive');
    const twice = causesOf('Service', service({ ports: [{ port: 80, name: 'a' }, { port: 80, name: 'b' }] }));
    assert.deepEqual(summary(twice), ['spec.ports[1] FieldValueDuplicate']);
  });

  test('type, clusterIP and nodePort rules', () => {
    assert.deepEqual(summary(causesOf('Service', service({ type: 'Balanced' }))), ['spec.type FieldValueNotSupported']);
    const badIP = causesOf('Service', service({ clusterIP: '10.96.0.300' }));
    assert.deepEqual(summary(badIP), ['spec.clusterIPs[0] FieldValueInvalid']);
    assert.equal(badIP[0]!.message, `Invalid value: "10.96.0.300": must be empty, 'None', or a valid IP address`);
    assert.deepEqual(summary(causesOf('Service', service({ type: 'NodePort', clusterIP: 'None' }))), ['spec.clusterIPs[0] FieldValueInvalid']);
    const nodePort = causesOf('Service', service({ ports: [{ port: 80, nodePort: 30080 }] }));
    assert.deepEqual(summary(nodePort), ['spec.ports[0].nodePort FieldValueForbidden']);
    assert.equal(nodePort[0]!.message, "Forbidden: may not be used when `type` is 'ClusterIP'");
    assert.deepEqual(summary(causesOf('Service', service({ externalTrafficPolicy: 'Local' }))), ['spec.externalTrafficPolicy FieldValueInvalid']);
    assert.deepEqual(summary(causesOf('Service', service({ clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.6'] }))), ['spec.clusterIPs FieldValueInvalid']);
    assert.deepEqual(summary(causesOf('Service', service({ selector: { 'bad key': 'x' } }))), ['spec.selector FieldValueInvalid']);
  });

  test('names are RFC 1035 labels', () => {
    assert.deepEqual(summary(causesOf('Service', service({}, '1web'))), ['metadata.name FieldValueInvalid']);
    assert.deepEqual(summary(causesOf('Service', service({}, 'web.a'))), ['metadata.name FieldValueInvalid']);
  });

  test('clusterIP may not change once set', () => {
    const old = created('Service', service({ clusterIP: '10.96.0.20' })).object;
    const next = structuredClone(old);
    spec(next)['clusterIP'] = '10.96.0.21';
    spec(next)['clusterIPs'] = ['10.96.0.21'];
    const cause = only(updated('Service', next, old).causes, 'spec.clusterIPs[0]');
    assert.equal(cause.message, 'Invalid value: ["10.96.0.21"]: may not change once set');
  });

  test('an update that omits allocated values keeps them (kubectl replace)', () => {
    const old = created('Service', service({ type: 'NodePort', clusterIP: '10.96.0.20', ports: [{ port: 80, nodePort: 30080 }] })).object;
    const { object, causes } = updated('Service', service({ type: 'NodePort', ports: [{ port: 80 }] }), old);
    assert.deepEqual(causes, []);
    assert.equal(spec(object)['clusterIP'], '10.96.0.20');
    assert.deepEqual(spec(object)['clusterIPs'], ['10.96.0.20']);
    assert.equal((spec(object)['ports'] as Json[])[0]!['nodePort'], 30080);
  });

  test('changing the type drops what only the old type used', () => {
    const old = created('Service', service({ type: 'NodePort', clusterIP: '10.96.0.20', ports: [{ port: 80, nodePort: 30080 }] })).object;
    const toClusterIP = structuredClone(old);
    spec(toClusterIP)['type'] = 'ClusterIP';
    const first = updated('Service', toClusterIP, old);
    assert.deepEqual(first.causes, []);
    assert.equal((spec(first.object)['ports'] as Json[])[0]!['nodePort'], undefined);
    assert.equal(spec(first.object)['externalTrafficPolicy'], undefined);
    assert.equal(spec(first.object)['clusterIP'], '10.96.0.20');

    const toExternal = structuredClone(old);
    spec(toExternal)['type'] = 'ExternalName';
    spec(toExternal)['externalName'] = 'db.example.com';
    const second = updated('Service', toExternal, old);
    assert.deepEqual(second.causes, []);
    assert.equal(spec(second.object)['clusterIP'], undefined);
    assert.equal(spec(second.object)['ipFamilies'], undefined);
  });

  test('status updates keep the spec', () => {
    const old = created('Service', service({ type: 'LoadBalancer', clusterIP: '10.96.0.20' })).object;
    const next = structuredClone(old);
    next['status'] = { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } };
    spec(next)['type'] = 'ClusterIP';
    strategyFor('Service').prepareForStatusUpdate(next, old);
    assert.equal(spec(next)['type'], 'LoadBalancer');
    assert.deepEqual(next['status'], { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } });
  });
});

// ---- apps -------------------------------------------------------------------------------------------

describe('Deployment and ReplicaSet', () => {
  test('deployment defaults', () => {
    const { object, causes } = created('Deployment', deployment());
    assert.deepEqual(causes, []);
    const s = spec(object);
    assert.equal(s['replicas'], 1);
    assert.deepEqual(s['strategy'], { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } });
    assert.equal(s['revisionHistoryLimit'], 10);
    assert.equal(s['progressDeadlineSeconds'], 600);
    const podSpec = (s['template'] as Json)['spec'] as Json;
    assert.equal(podSpec['restartPolicy'], 'Always');
    assert.equal(podSpec['terminationGracePeriodSeconds'], 30);
    assert.equal(podSpec['enableServiceLinks'], undefined, 'a pod default, not a template default');
    assert.equal(((podSpec['containers'] as Json[])[0]!)['imagePullPolicy'], 'IfNotPresent');
    assert.equal(object.metadata.generation, 1);
    assert.deepEqual(object['status'], {});
    const recreate = created('Deployment', deployment({ strategy: { type: 'Recreate' }, replicas: 0 })).object;
    assert.deepEqual(spec(recreate)['strategy'], { type: 'Recreate' });
    assert.equal(spec(recreate)['replicas'], 0);
  });

  test('replicaset defaults', () => {
    const { object, causes } = created('ReplicaSet', deployment({}, 'ReplicaSet'));
    assert.deepEqual(causes, []);
    assert.equal(spec(object)['replicas'], 1);
    assert.deepEqual(object['status'], { replicas: 0 });
    assert.equal(object.metadata.generation, 1);
  });

  test('selector: required, non-empty, matching the template', () => {
    assert.deepEqual(summary(causesOf('Deployment', deployment({ selector: undefined }))), ['spec.selector FieldValueRequired']);
    assert.deepEqual(summary(causesOf('Deployment', deployment({ selector: {} }))), ['spec.selector FieldValueInvalid']);
    const mismatch = causesOf('ReplicaSet', deployment({ selector: { matchLabels: { app: 'db' } } }, 'ReplicaSet'));
    assert.deepEqual(summary(mismatch), ['spec.template.metadata.labels FieldValueInvalid']);
    assert.equal(mismatch[0]!.message, 'Invalid value: {"app":"web"}: `selector` does not match template `labels`');
    const expressions = causesOf('Deployment', deployment({ selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] } }));
    assert.deepEqual(expressions, []);
    const badExpression = causesOf('Deployment', deployment({ selector: { matchExpressions: [{ key: 'app', operator: 'In' }, { key: 'x', operator: 'Near' }] } }));
    assert.deepEqual(summary(badExpression), ['spec.selector.matchExpressions[0].values FieldValueRequired', 'spec.selector.matchExpressions[1].operator FieldValueNotSupported']);
  });

  test('replicas, strategy and progress deadline', () => {
    const negative = causesOf('Deployment', deployment({ replicas: -1 }));
    assert.deepEqual(summary(negative), ['spec.replicas FieldValueInvalid']);
    assert.equal(negative[0]!.message, 'Invalid value: -1: must be greater than or equal to 0');
    assert.deepEqual(summary(causesOf('Deployment', deployment({ strategy: { type: 'BlueGreen' } }))), ['spec.strategy.type FieldValueNotSupported']);
    const stuck = causesOf('Deployment', deployment({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '0%' } } }));
    assert.deepEqual(summary(stuck), ['spec.strategy.rollingUpdate.maxUnavailable FieldValueInvalid']);
    assert.equal(stuck[0]!.message, 'Invalid value: "0%": may not be 0 when `maxSurge` is 0');
    const percent = causesOf('Deployment', deployment({ strategy: { rollingUpdate: { maxSurge: '5', maxUnavailable: '110%' } } }));
    assert.deepEqual(summary(percent), ['spec.strategy.rollingUpdate.maxSurge FieldValueInvalid', 'spec.strategy.rollingUpdate.maxUnavailable FieldValueInvalid']);
    const recreate = causesOf('Deployment', deployment({ strategy: { type: 'Recreate', rollingUpdate: { maxSurge: 1 } } }));
    assert.deepEqual(summary(recreate), ['spec.strategy.rollingUpdate FieldValueForbidden']);
    const deadline = causesOf('Deployment', deployment({ minReadySeconds: 30, progressDeadlineSeconds: 30 }));
    assert.deepEqual(summary(deadline), ['spec.progressDeadlineSeconds FieldValueInvalid']);
  });

  test('the template is validated as a pod spec that always restarts', () => {
    const causes = causesOf('Deployment', deployment({ template: template({ app: 'web' }, { restartPolicy: 'Never', activeDeadlineSeconds: 5, containers: [{ name: 'web' }] }) }));
    assert.deepEqual(summary(causes), [
      'spec.template.spec.containers[0].image FieldValueRequired',
      'spec.template.spec.restartPolicy FieldValueNotSupported',
      'spec.template.spec.activeDeadlineSeconds FieldValueForbidden',
    ]);
    assert.equal(causes[1]!.message, 'Unsupported value: "Never": supported values: "Always"');
    assert.deepEqual(summary(causesOf('Deployment', deployment({ template: undefined }))), ['spec.template FieldValueRequired']);
  });

  test('the selector is immutable', () => {
    const old = created('Deployment', deployment()).object;
    const next = structuredClone(old);
    spec(next)['selector'] = { matchLabels: { app: 'web', v: '2' } };
    ((spec(next)['template'] as Json)['metadata'] as Json)['labels'] = { app: 'web', v: '2' };
    const cause = only(updated('Deployment', next, old).causes, 'spec.selector');
    assert.match(cause.message, /field is immutable$/);
  });

  test('generation counts spec changes (and deployment annotation changes); status stays', () => {
    const old = created('Deployment', deployment()).object;
    old['status'] = { replicas: 1, observedGeneration: 1 };
    const scaled = structuredClone(old);
    spec(scaled)['replicas'] = 3;
    scaled['status'] = {};
    const first = updated('Deployment', scaled, old).object;
    assert.equal(first.metadata.generation, 2);
    assert.deepEqual(first['status'], { replicas: 1, observedGeneration: 1 });

    const relabeled = structuredClone(first);
    relabeled.metadata.labels = { team: 'a' };
    relabeled.metadata.generation = 99;
    assert.equal(updated('Deployment', relabeled, first).object.metadata.generation, 2, 'clients cannot set generation');
    const annotated = structuredClone(first);
    annotated.metadata.annotations = { note: 'x' };
    assert.equal(updated('Deployment', annotated, first).object.metadata.generation, 3);
    const rs = created('ReplicaSet', deployment({}, 'ReplicaSet')).object;
    const rsAnnotated = structuredClone(rs);
    rsAnnotated.metadata.annotations = { note: 'x' };
    assert.equal(updated('ReplicaSet', rsAnnotated, rs).object.metadata.generation, 1);

    const statusUpdate = structuredClone(first);
    statusUpdate['status'] = { replicas: 3, observedGeneration: 2 };
    spec(statusUpdate)['replicas'] = 10;
    strategyFor('Deployment').prepareForStatusUpdate(statusUpdate, first);
    assert.equal(spec(statusUpdate)['replicas'], 3);
    assert.equal(statusUpdate.metadata.generation, 2);
    assert.deepEqual(statusUpdate['status'], { replicas: 3, observedGeneration: 2 });
  });
});

// ---- cluster-scoped ---------------------------------------------------------------------------------

describe('Namespace and Node', () => {
  test('namespaces: DNS label names, Active on create, a name label', () => {
    const { object, causes } = created('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' }, status: { phase: 'Terminating' } });
    assert.deepEqual(causes, []);
    assert.deepEqual(object['status'], { phase: 'Active' });
    assert.deepEqual(object.metadata.labels, { 'kubernetes.io/metadata.name': 'team-a' });
    assert.deepEqual(summary(causesOf('Namespace', { metadata: { name: 'team.a' } })), ['metadata.name FieldValueInvalid']);
    assert.deepEqual(summary(causesOf('Namespace', { metadata: { name: 'team-a', namespace: 'default' } })), ['metadata.namespace FieldValueForbidden']);
  });

  test('nodes: podCIDR and podCIDRs stay in step; allocatable defaults to capacity', () => {
    const { object, causes } = created('Node', { metadata: { name: 'n1' }, spec: { podCIDR: '10.244.1.0/24' }, status: { capacity: { cpu: '4', pods: '110' } } });
    assert.deepEqual(causes, []);
    assert.deepEqual(spec(object)['podCIDRs'], ['10.244.1.0/24']);
    assert.deepEqual((object['status'] as Json)['allocatable'], { cpu: '4', pods: '110' });
    assert.equal(spec(created('Node', { metadata: { name: 'n2' }, spec: { podCIDRs: ['10.244.2.0/24'] } }).object)['podCIDR'], '10.244.2.0/24');
  });

  test('node validation', () => {
    const causes = causesOf('Node', {
      metadata: { name: 'n1' },
      spec: { podCIDR: '10.244.1.0/33', taints: [{ key: 'a', effect: 'Sometimes' }, { key: 'b', effect: 'NoSchedule' }, { key: 'b', effect: 'NoSchedule', value: 'x' }] },
      status: { capacity: { cpu: 'four' } },
    });
    assert.deepEqual(summary(causes), [
      'spec.podCIDRs[0] FieldValueInvalid',
      'spec.taints[0].effect FieldValueNotSupported',
      'spec.taints[2] FieldValueDuplicate',
      'status.capacity[cpu] FieldValueInvalid',
      'status.allocatable[cpu] FieldValueInvalid', // defaulted from capacity
    ]);
  });

  test('a node keeps its podCIDR; status updates keep the spec', () => {
    const old = created('Node', { metadata: { name: 'n1' }, spec: { podCIDR: '10.244.1.0/24' } }).object;
    const moved = structuredClone(old);
    spec(moved)['podCIDR'] = '10.244.9.0/24';
    spec(moved)['podCIDRs'] = ['10.244.9.0/24'];
    assert.deepEqual(summary(updated('Node', moved, old).causes), ['spec.podCIDRs FieldValueForbidden']);

    const unassigned = created('Node', { metadata: { name: 'n2' } }).object;
    const assigned = structuredClone(unassigned);
    assigned['spec'] = { podCIDR: '10.244.2.0/24' };
    assert.deepEqual(updated('Node', assigned, unassigned).causes, [], 'from "" to a CIDR is how node-ipam assigns');

    const status = structuredClone(old);
    status['status'] = { conditions: [{ type: 'Ready', status: 'True' }] };
    spec(status)['unschedulable'] = true;
    strategyFor('Node').prepareForStatusUpdate(status, old);
    assert.equal(spec(status)['unschedulable'], undefined);
    assert.deepEqual(status['status'], { conditions: [{ type: 'Ready', status: 'True' }] });
  });
});

// ---- data and endpoints -----------------------------------------------------------------------------

describe('ConfigMap, Lease, Event', () => {
  test('configmap keys', () => {
    const causes = causesOf('ConfigMap', { metadata: { name: 'c', namespace: 'default' }, data: { 'ok.key': 'v', 'bad key': 'v', '..hidden': 'v' }, binaryData: { 'ok.key': 'AAAA' } });
    assert.deepEqual(summary(causes), ['data[bad key] FieldValueInvalid', 'data[..hidden] FieldValueInvalid', 'data[ok.key] FieldValueInvalid']);
    assert.equal(causes[2]!.message, 'Invalid value: "ok.key": duplicate of key present in binaryData');
  });

  test('immutable configmaps keep their data', () => {
    const old = created('ConfigMap', { metadata: { name: 'c', namespace: 'default' }, data: { a: '1' }, immutable: true }).object;
    const next = structuredClone(old);
    next['data'] = { a: '2' };
    assert.deepEqual(summary(updated('ConfigMap', next, old).causes), ['data FieldValueForbidden']);
  });

  test('lease durations are positive', () => {
    const lease = (spec: Json): KubeObject => ({ metadata: { name: 'n1', namespace: 'kube-node-lease' }, spec });
    assert.deepEqual(causesOf('Lease', lease({ holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2024-01-01T00:00:00.000000Z' })), []);
    assert.deepEqual(summary(causesOf('Lease', lease({ leaseDurationSeconds: 0, renewTime: 'yesterday' }))), ['spec.leaseDurationSeconds FieldValueInvalid', 'spec.renewTime FieldValueInvalid']);
  });

  test('events live in their object’s namespace', () => {
    const event = (namespace: string, involvedNamespace?: string): KubeObject => ({
      metadata: { name: 'web-1.17a', namespace },
      involvedObject: { kind: 'Pod', name: 'web-1', ...(involvedNamespace ? { namespace: involvedNamespace } : {}) },
      reason: 'Scheduled',
    });
    assert.deepEqual(causesOf('Event', event('default', 'default')), []);
    assert.deepEqual(causesOf('Event', event('default')), [], 'cluster-scoped objects report into default');
    assert.deepEqual(summary(causesOf('Event', event('default', 'team-a'))), ['involvedObject.namespace FieldValueInvalid']);
  });
});

describe('Endpoints and EndpointSlice', () => {
  const endpoints = (subsets: unknown): KubeObject => ({ metadata: { name: 'web', namespace: 'default' }, subsets });

  test('endpoints: valid addresses and named ports', () => {
    const { object, causes } = created('Endpoints', endpoints([{ addresses: [{ ip: '10.244.1.5', nodeName: 'n1' }], ports: [{ port: 80 }] }]));
    assert.deepEqual(causes, []);
    assert.equal((((object['subsets'] as Json[])[0]!['ports'] as Json[])[0]!)['protocol'], 'TCP');
    const bad = causesOf('Endpoints', endpoints([{ addresses: [{ ip: 'x' }, { ip: '127.0.0.1' }], ports: [{ port: 80 }, { port: 0, name: 'b' }] }, { ports: [{ port: 80 }] }]));
    assert.deepEqual(summary(bad), [
      'subsets[0].addresses[0].ip FieldValueInvalid',
      'subsets[0].addresses[1].ip FieldValueInvalid',
      'subsets[0].ports[0].name FieldValueRequired',
      'subsets[0].ports[1].port FieldValueInvalid',
      'subsets[1] FieldValueRequired',
    ]);
    assert.equal(bad[1]!.message, 'Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)');
  });

  const slice = (fields: Json): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true } }],
    ports: [{ port: 80 }],
    ...fields,
  });

  test('endpointslices: address type, addresses, ports; defaults; generation', () => {
    const { object, causes } = created('EndpointSlice', slice({}));
    assert.deepEqual(causes, []);
    assert.deepEqual(object['ports'], [{ port: 80, name: '', protocol: 'TCP' }]);
    assert.equal(object.metadata.generation, 1);
    assert.deepEqual(summary(causesOf('EndpointSlice', slice({ addressType: 'IPv5' }))), ['addressType FieldValueNotSupported']);
    assert.deepEqual(summary(causesOf('EndpointSlice', slice({ addressType: undefined }))), ['addressType FieldValueRequired']);
    const bad = causesOf('EndpointSlice', slice({ endpoints: [{ addresses: [] }, { addresses: ['fd00::1'] }], ports: [{ port: 80 }, { port: 81, protocol: 'ICMP' }] }));
    assert.deepEqual(summary(bad), [
      'endpoints[0].addresses FieldValueRequired',
      'endpoints[1].addresses[0] FieldValueInvalid',
      'ports[1].name FieldValueDuplicate',
      'ports[1].protocol FieldValueNotSupported',
    ]);

    const moved = structuredClone(object);
    moved['endpoints'] = [{ addresses: ['10.244.2.7'] }];
    assert.equal(updated('EndpointSlice', moved, object).object.metadata.generation, 2);
    const retyped = structuredClone(object);
    retyped['addressType'] = 'IPv6';
    retyped['endpoints'] = [{ addresses: ['fd00::7'] }];
    assert.deepEqual(summary(updated('EndpointSlice', retyped, object).causes), ['addressType FieldValueInvalid']);
  });
});

describe('kinds without rules of their own', () => {
  test('a generic strategy checks metadata only', () => {
    const strategy = strategyFor('Widget');
    assert.equal(strategyFor('Widget'), strategy);
    assert.deepEqual(strategy.validate({ metadata: { name: 'Any_Name', namespace: 'default' } }), []);
    assert.deepEqual(summary(strategy.validate({ metadata: { name: 'a/b', namespace: 'default' } })), ['metadata.name FieldValueInvalid']);
  });
});
