/** The service model: what becomes of Services and EndpointSlices, and what is refused. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EndpointSlice, Service } from '../../src/api/types.js';
import { formatIp, parseIp } from '../../src/lib/ip.js';
import { chooseEndpoints, endpointsOf, proxied, servicePortKey, servicePortsOf, type Endpoint, type ServicePort } from '../../src/proxy/model.js';
import { iptablesChains, portProtoHash } from '../../src/proxy/names.js';

function svc(spec: Service['spec'], extra: Partial<Service> = {}): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'ns', ...(extra.metadata ?? {}) }, spec, ...(extra.status ? { status: extra.status } : {}) };
}

function slice(endpoints: EndpointSlice['endpoints'], ports: EndpointSlice['ports'] = [{ name: 'http', port: 8080, protocol: 'TCP' }], addressType: EndpointSlice['addressType'] = 'IPv4', labels: Record<string, string> = {}): EndpointSlice {
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-x', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'web', ...labels } }, addressType, ports, endpoints };
}

const httpPort = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];

describe('servicePortsOf', () => {
  test('ExternalName, headless and Services without a cluster IP program nothing', () => {
    assert.deepEqual(servicePortsOf(svc({ type: 'ExternalName', externalName: 'example.com' })).ports, []);
    assert.deepEqual(servicePortsOf(svc({ clusterIP: 'None', ports: httpPort })).ports, []);
    assert.deepEqual(servicePortsOf(svc({ ports: httpPort })).ports, []);
  });

  test('a bad cluster IP skips the Service and says why', () => {
    const { ports, problems } = servicePortsOf(svc({ clusterIP: '10.96.0.300', ports: httpPort }));
    assert.deepEqual(ports, []);
    assert.match(problems[0] ?? '', /cluster IP "10.96.0.300" is not an IP address/);
  });

  test('bad and duplicate ports are skipped alone; the same port over TCP and UDP is two ports', () => {
    const { ports, problems } = servicePortsOf(
      svc({
        clusterIP: '10.96.0.10',
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          { name: 'bad', port: 0, protocol: 'TCP' },
          { name: 'dns', port: 54, protocol: 'UDP' },
          { name: 'other', port: 53, protocol: 'TCP' },
        ],
      }),
    );
    assert.deepEqual(ports.map((p) => `${p.portName}/${p.protocol}/${p.port}`), ['dns/UDP/53', 'dns-tcp/TCP/53']);
    assert.equal(problems.length, 3);
    assert.match(problems.join('\n'), /spec.ports\[2\]: port 0 is not 1-65535/);
    assert.match(problems.join('\n'), /spec.ports\[3\]: duplicate port "dns"/);
    assert.match(problems.join('\n'), /spec.ports\[4\]: duplicate port "other" 53\/TCP/);
  });

  test('node ports only for NodePort and LoadBalancer; ETP Local only where traffic can come from outside', () => {
    const clusterIp = servicePortsOf(svc({ type: 'ClusterIP', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local', ports: [{ ...httpPort[0]!, nodePort: 30000 }] })).ports[0];
    assert.equal(clusterIp?.nodePort, undefined);
    assert.equal(clusterIp?.externalPolicyLocal, false);
    const nodePort = servicePortsOf(svc({ type: 'NodePort', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local', ports: [{ ...httpPort[0]!, nodePort: 30000 }] })).ports[0];
    assert.equal(nodePort?.nodePort, 30000);
    assert.equal(nodePort?.externalPolicyLocal, true);
  });

  test('load-balancer ingress IPs count unless the balancer proxies (ipMode Proxy); affinity defaults to 3 hours', () => {
    const port = servicePortsOf(
      svc(
        { type: 'LoadBalancer', clusterIP: '10.96.0.10', sessionAffinity: 'ClientIP', ports: httpPort },
        { status: { loadBalancer: { ingress: [{ ip: '203.0.113.1' }, { ip: '203.0.113.2', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }] } } },
      ),
    ).ports[0];
    assert.deepEqual(port?.loadBalancerIPs.map(formatIp), ['203.0.113.1']);
    assert.equal(port?.affinitySeconds, 10800);
  });

  test('service-proxy-name: only unlabelled Services, or those naming this proxy', () => {
    const labelled = svc({ clusterIP: '10.96.0.10' }, { metadata: { name: 'web', labels: { 'service.kubernetes.io/service-proxy-name': 'other' } } });
    assert.equal(proxied(labelled, undefined), false);
    assert.equal(proxied(labelled, 'other'), true);
    assert.equal(proxied(svc({ clusterIP: '10.96.0.10' }), 'other'), false);
  });
});

describe('endpointsOf', () => {
  const [port] = servicePortsOf(svc({ clusterIP: '10.96.0.10', ports: httpPort })).ports as [ServicePort];
  const ep = (ip: string, conditions: { ready?: boolean; serving?: boolean; terminating?: boolean } = {}, nodeName = 'n2'): EndpointSlice['endpoints'][number] => ({ addresses: [ip], conditions, nodeName });

  test('slices merge; the same address twice counts once, the ready copy winning; local means on this node', () => {
    const { endpoints } = endpointsOf([port], [slice([ep('10.244.1.5', { ready: false }), ep('10.244.1.6', {}, 'n1')]), slice([ep('10.244.1.5', { ready: true })])], 'n1');
    const list = endpoints.get(servicePortKey(port)) ?? [];
    assert.deepEqual(list.map((e) => `${formatIp(e.ip)}:${e.port} ready=${e.ready} local=${e.local}`), ['10.244.1.5:8080 ready=true local=false', '10.244.1.6:8080 ready=true local=true']);
  });

  test('slice ports match by name and protocol', () => {
    const { endpoints } = endpointsOf([port], [slice([ep('10.244.1.5')], [{ name: 'http', port: 9000, protocol: 'UDP' }]), slice([ep('10.244.1.7')], [{ name: 'metrics', port: 9100, protocol: 'TCP' }])], 'n1');
    assert.deepEqual(endpoints.get(servicePortKey(port)), []);
  });

  test('bad addresses and wrong families are reported and skipped; FQDN and headless slices ignored', () => {
    const bad = slice([ep('10.244.1.300'), ep('fd00::1'), ep('10.244.1.5')]);
    const { endpoints, problems } = endpointsOf([port], [bad, slice([ep('example.com')], undefined, 'FQDN'), slice([ep('10.244.9.9')], undefined, 'IPv4', { 'service.kubernetes.io/headless': '' })], 'n1');
    assert.deepEqual((endpoints.get(servicePortKey(port)) ?? []).map((e) => formatIp(e.ip)), ['10.244.1.5']);
    assert.deepEqual(problems.map((p) => p.message), ['endpoint address "10.244.1.300" is not an IP address; ignored', 'endpoint address fd00::1 is not IPv4 as the slice says; ignored']);
  });

  test('conditions: unset ready means ready, unset serving follows ready', () => {
    const { endpoints } = endpointsOf([port], [slice([{ addresses: ['10.244.1.5'] }, { addresses: ['10.244.1.6'], conditions: { ready: false } }])], 'n1');
    assert.deepEqual((endpoints.get(servicePortKey(port)) ?? []).map((e) => [e.ready, e.serving, e.terminating]), [
      [true, true, false],
      [false, false, false],
    ]);
  });
});

describe('chooseEndpoints', () => {
  const [port] = servicePortsOf(svc({ type: 'NodePort', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local', ports: [{ ...httpPort[0]!, nodePort: 30000 }] })).ports as [ServicePort];
  const e = (ip: string, state: Partial<Endpoint>): Endpoint => ({ ip: parseIp(ip), port: 8080, ready: true, serving: true, terminating: false, local: false, ...state });
  const names = (list: readonly Endpoint[]): string[] => list.map((x) => formatIp(x.ip));

  test('ready endpoints only while there are any', () => {
    const choice = chooseEndpoints(port, [e('10.0.0.1', {}), e('10.0.0.2', { ready: false, serving: true, terminating: true })], 4);
    assert.deepEqual(names(choice.cluster), ['10.0.0.1']);
  });

  test('nothing ready: serving terminating endpoints, never ones that are not serving', () => {
    const choice = chooseEndpoints(port, [e('10.0.0.1', { ready: false, serving: false, terminating: true }), e('10.0.0.2', { ready: false, serving: true, terminating: true })], 4);
    assert.deepEqual(names(choice.cluster), ['10.0.0.2']);
    assert.equal(choice.any, true);
  });

  test('Local policies use this node’s endpoints, falling back per node; the family is the table’s', () => {
    const choice = chooseEndpoints(port, [e('10.0.0.1', {}), e('10.0.0.2', { ready: false, serving: true, terminating: true, local: true }), e('fd00::1', { local: true })], 4);
    assert.deepEqual(names(choice.internal), ['10.0.0.2']);
    assert.deepEqual(names(choice.external), ['10.0.0.2']);
    assert.deepEqual(names(choice.cluster), ['10.0.0.1']);
  });
});

describe('chain names', () => {
  // Upstream kube-proxy's golden files name "ns1/svc1:p80" (tcp) KUBE-SVC-XPGD46QRK7WJZT7O and
  // its endpoint 10.180.0.1:80 KUBE-SEP-SXIVWICOYRO3J4NJ; we must name them the same.
  const [port] = servicePortsOf({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc1', namespace: 'ns1' }, spec: { clusterIP: '172.30.0.41', ports: [{ name: 'p80', port: 80, protocol: 'TCP' }] } }).ports as [ServicePort];
  test('the same as kube-proxy', () => {
    assert.equal(portProtoHash(port), 'XPGD46QRK7WJZT7O');
    assert.equal(iptablesChains.sep(port, { ip: parseIp('10.180.0.1'), port: 80, ready: true, serving: true, terminating: false, local: false }), 'KUBE-SEP-SXIVWICOYRO3J4NJ');
  });
});
