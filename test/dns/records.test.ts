/**
 * `pontoon dns` against a real apiserver, asked by dig and busybox nslookup inside a network
 * namespace: every record kind of the Kubernetes DNS schema, negative answers, truncation
 * and the TCP retry, updates, and out-of-zone names without an upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { EndpointSlice, Service } from '../../src/api/types.js';
import { poll } from '../helpers/wait.js';
import { DnsLab, headlessSlice } from './harness.js';

const SVC = 'svc.cluster.local';

describe('pontoon dns records', () => {
  const lab = new DnsLab();
  let web: Service;

  before(async () => {
    await lab.start();
    await lab.createNamespace('empty');
    web = await lab.createService({ metadata: { name: 'web', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] } } as Service);
    await lab.createService({ metadata: { name: 'web-hl', namespace: 'default' }, spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] } } as Service);
    await lab.createSlice(
      headlessSlice('web-hl', 'default', 'web-hl-a', [
        { ip: '10.244.1.5', hostname: 'web-0' },
        { ip: '10.244.2.7' },
        { ip: '10.244.3.9', ready: false },
      ], [{ name: 'http', port: 8000 }]),
    );
    await lab.createSlice(headlessSlice('web-hl', 'default', 'web-hl-b', [{ ip: 'fd00:10:244::5', hostname: 'web-6' }], [{ name: 'http', port: 8000 }], 'IPv6'));
    await lab.createService({ metadata: { name: 'ext', namespace: 'default' }, spec: { type: 'ExternalName', externalName: 'example.org' } } as Service);
    await poll('records served', async () => (await lab.dig([`web-6.web-hl.default.${SVC}`, 'AAAA'])).answers.length === 1 && (await lab.dig([`ext.default.${SVC}`])).answers.length > 0, { timeoutMs: 10_000 });
  });
  after(() => lab.stop());

  it('answers A for a ClusterIP Service with its cluster IP, TTL 5, authoritative, question case kept', async () => {
    const answer = await lab.dig([`WeB.DeFault.SVC.cluster.local`, 'A']);
    assert.equal(answer.status, 'NOERROR');
    assert.ok(answer.flags.includes('aa'));
    assert.equal(answer.question, 'WeB.DeFault.SVC.cluster.local.');
    assert.deepEqual(answer.answers.map((r) => [r.name, r.ttl, r.type, r.data]), [['WeB.DeFault.SVC.cluster.local.', 5, 'A', web.spec.clusterIP]]);
  });

  it('answers a headless Service with every ready endpoint, and each endpoint by hostname or dashed IP', async () => {
    const a = await lab.dig([`web-hl.default.${SVC}`, 'A']);
    assert.deepEqual(a.answers.map((r) => r.data).sort(), ['10.244.1.5', '10.244.2.7']);
    const aaaa = await lab.dig([`web-hl.default.${SVC}`, 'AAAA']);
    assert.deepEqual(aaaa.answers.map((r) => r.data), ['fd00:10:244::5']);
    assert.deepEqual((await lab.dig([`web-0.web-hl.default.${SVC}`])).answers.map((r) => r.data), ['10.244.1.5']);
    assert.deepEqual((await lab.dig([`10-244-2-7.web-hl.default.${SVC}`])).answers.map((r) => r.data), ['10.244.2.7']);
    // The not-ready endpoint is in no answer.
    assert.equal((await lab.dig([`10-244-3-9.web-hl.default.${SVC}`])).status, 'NXDOMAIN');
  });

  it('answers SRV for named ports: the Service name for ClusterIP, each endpoint for headless', async () => {
    const srv = await lab.dig([`_http._tcp.web.default.${SVC}`, 'SRV']);
    assert.deepEqual(srv.answers.map((r) => r.data), [`0 100 80 web.default.${SVC}.`]);
    assert.deepEqual(srv.additional.filter((r) => r.type === 'A').map((r) => r.data), [web.spec.clusterIP]);
    const hl = await lab.dig([`_http._tcp.web-hl.default.${SVC}`, 'SRV']);
    const targets = hl.answers.map((r) => r.data.split(' ')).map(([, , port, target]) => `${port} ${target}`).sort();
    assert.deepEqual(targets, [`8000 10-244-2-7.web-hl.default.${SVC}.`, `8000 web-0.web-hl.default.${SVC}.`, `8000 web-6.web-hl.default.${SVC}.`]);
    // busybox nslookup names the port too.
    assert.match(await lab.nslookup(`_http._tcp.web.default.${SVC}`, 'srv'), /80 web\.default\.svc\.cluster\.local/);
  });

  it('answers PTR for cluster IPs and headless endpoint IPs, IPv4 and IPv6', async () => {
    assert.deepEqual((await lab.dig(['-x', web.spec.clusterIP ?? ''])).answers.map((r) => r.data), [`web.default.${SVC}.`]);
    assert.deepEqual((await lab.dig(['-x', '10.244.1.5'])).answers.map((r) => r.data), [`web-0.web-hl.default.${SVC}.`]);
    assert.deepEqual((await lab.dig(['-x', 'fd00:10:244::5'])).answers.map((r) => r.data), [`web-6.web-hl.default.${SVC}.`]);
  });

  it('answers pod records from the name (pods insecure) in existing namespaces only', async () => {
    assert.deepEqual((await lab.dig(['10-244-1-77.default.pod.cluster.local'])).answers.map((r) => r.data), ['10.244.1.77']);
    assert.deepEqual((await lab.dig(['fd00-10-244--9.default.pod.cluster.local', 'AAAA'])).answers.map((r) => r.data), ['fd00:10:244::9']);
    assert.equal((await lab.dig(['10-244-1-77.nosuchns.pod.cluster.local'])).status, 'NXDOMAIN');
    assert.equal((await lab.dig(['not-an-ip.default.pod.cluster.local'])).status, 'NXDOMAIN');
  });

  it('answers an ExternalName Service with a CNAME', async () => {
    const answer = await lab.dig([`ext.default.${SVC}`, 'A']);
    assert.equal(answer.status, 'NOERROR');
    assert.deepEqual(answer.answers.map((r) => [r.type, r.data]), [['CNAME', 'example.org.']]);
  });

  it('tells NXDOMAIN from NODATA, with the SOA in the authority section', async () => {
    const cases: [string, string, string][] = [
      [`web.default.${SVC}`, 'AAAA', 'NOERROR'], // exists with other types
      [`default.${SVC}`, 'A', 'NOERROR'], // a namespace
      [`empty.${SVC}`, 'A', 'NOERROR'], // a namespace without Services
      [`_tcp.web.default.${SVC}`, 'A', 'NOERROR'], // an empty non-terminal
      [SVC, 'A', 'NOERROR'],
      [`nope.default.${SVC}`, 'A', 'NXDOMAIN'],
      [`web.nosuchns.${SVC}`, 'A', 'NXDOMAIN'],
      [`nosuchns.${SVC}`, 'A', 'NXDOMAIN'],
      [`_http._udp.web.default.${SVC}`, 'SRV', 'NXDOMAIN'],
    ];
    for (const [name, type, status] of cases) {
      const answer = await lab.dig([name, type]);
      assert.equal(answer.status, status, `${name} ${type}`);
      assert.equal(answer.answers.length, 0, `${name} ${type}`);
      assert.deepEqual(answer.authority.map((r) => [r.name, r.type]), [['cluster.local.', 'SOA']], `${name} ${type}`);
    }
    const soa = await lab.dig(['cluster.local', 'SOA']);
    assert.equal(soa.answers[0]?.type, 'SOA');
    assert.equal((await lab.dig([`dns-version.cluster.local`, 'TXT'])).answers[0]?.data, '"1.1.0"');
  });

  it('resolves through busybox nslookup', async () => {
    const out = await lab.nslookup(`web.default.${SVC}`);
    assert.ok(out.includes(web.spec.clusterIP ?? '?'), out);
    const headless = await lab.nslookup(`web-hl.default.${SVC}`);
    for (const ip of ['10.244.1.5', '10.244.2.7', 'fd00:10:244::5']) assert.ok(headless.includes(ip), headless);
    assert.ok(!headless.includes('10.244.3.9'), headless);
  });

  it('truncates a UDP answer that does not fit and gives all of it over TCP', async () => {
    const endpoints = Array.from({ length: 60 }, (_, i) => ({ ip: `10.244.9.${i + 1}` }));
    await lab.createService({ metadata: { name: 'big', namespace: 'default' }, spec: { clusterIP: 'None' } } as Service);
    await lab.createSlice(headlessSlice('big', 'default', 'big-a', endpoints));
    await poll('big served', async () => (await lab.dig(['+tcp', `big.default.${SVC}`])).answers.length === 60, { timeoutMs: 10_000 });
    const udp = await lab.dig(['+ignore', '+noedns', `big.default.${SVC}`]);
    assert.ok(udp.flags.includes('tc'), udp.raw);
    assert.equal(udp.answers.length, 0);
    // dig retries over TCP on TC by itself.
    const retried = await lab.dig(['+noedns', `big.default.${SVC}`]);
    assert.equal(retried.answers.length, 60);
    assert.ok(!retried.flags.includes('tc'));
    // EDNS0: advertised size, and a 1232-byte buffer holds 60 compressed A records (≈16 bytes each).
    const edns = await lab.dig(['+ignore', '+bufsize=1232', `big.default.${SVC}`]);
    assert.equal(edns.ednsUdp, 1232);
    assert.ok(!edns.flags.includes('tc'));
    assert.equal(edns.answers.length, 60);
  });

  it('follows changes: a Service added and deleted, an endpoint added', async () => {
    const name = `late.default.${SVC}`;
    assert.equal((await lab.dig([name])).status, 'NXDOMAIN');
    const late = await lab.createService({ metadata: { name: 'late', namespace: 'default' }, spec: { ports: [{ port: 80 }] } } as Service);
    await poll('late answered', async () => (await lab.dig([name])).answers[0]?.data === late.spec.clusterIP, { timeoutMs: 10_000 });
    await lab.client.delete(RESOURCE.services, 'late', 'default');
    await poll('late gone', async () => (await lab.dig([name])).status === 'NXDOMAIN', { timeoutMs: 10_000 });

    const slice = await lab.client.get<EndpointSlice>(RESOURCE.endpointslices, 'web-hl-a', 'default');
    assert.ok(slice);
    slice.endpoints.push({ addresses: ['10.244.4.4'], conditions: { ready: true } });
    await lab.client.update(RESOURCE.endpointslices, slice);
    await poll('new endpoint answered', async () => (await lab.dig([`web-hl.default.${SVC}`])).answers.some((r) => r.data === '10.244.4.4'), { timeoutMs: 10_000 });
  });

  it('answers SERVFAIL at once for names outside the cluster domain without an upstream', async () => {
    const answer = await lab.dig(['example.com', 'A']);
    assert.equal(answer.status, 'SERVFAIL');
  });

  it('serves /health, /ready and Prometheus /metrics', async () => {
    assert.equal((await lab.http(8080, '/health')).status, 200);
    assert.equal((await lab.http(8181, '/ready')).status, 200);
    const metrics = await lab.http(9153, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /pontoon_dns_requests_total\{proto="udp",type="A"\} \d+/);
    assert.match(metrics.text, /pontoon_dns_responses_total\{rcode="NXDOMAIN"\} \d+/);
    assert.match(metrics.text, /pontoon_dns_request_duration_seconds_bucket/);
    assert.match(metrics.text, /pontoon_dns_cache_hits_total \d+/);
  });
});
