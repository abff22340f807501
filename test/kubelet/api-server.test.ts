/**
 * The kubelet's TLS port and the apiserver's client for it, with real certificates from a
 * CA made by pki.ts: who gets 401 (no certificate, a bearer token, a certificate no cluster
 * CA signed), who gets 403 (a cluster certificate outside system:masters, with upstream's
 * attributes in the message), who gets through (the apiserver's kubelet-client identity),
 * and the apiserver refusing a kubelet whose certificate does not name the address it dialled.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { KubeletClient } from '../../src/apiserver/kubelet-client.js';
import { ensurePki, type IssuedCertificate, issueCertificate, type Pki } from '../../src/apiserver/pki.js';
import { KubeletApiServer } from '../../src/kubelet/api-server.js';
import { createLogger } from '../../src/lib/log.js';
import { Lab } from '../helpers/lab.js';

const log = createLogger('kubelet-api-test', { level: process.env['PONTOON_TEST_LOG'] ?? 'silent' });
const lab = new Lab('kapi');

interface Answer {
  code: number;
  body: string;
}

describe('kubelet API over TLS', () => {
  let pki: Pki;
  let admin: IssuedCertificate;
  let nodeClient: IssuedCertificate;
  let selfSigned: IssuedCertificate;
  const servers: KubeletApiServer[] = [];
  let port: number;
  let wrongIpPort: number;

  async function serve(ips: string[]): Promise<number> {
    const dir = lab.tempDir('kapi-serving');
    const serving = issueCertificate(pki, dir, { name: 'kubelet', commonName: 'system:node:n1', organizations: ['system:nodes'], ips, usage: 'serverAuth' });
    const server = new KubeletApiServer(
      { address: '127.0.0.1', port: 0, certFile: serving.certPath, keyFile: serving.keyPath, clientCaFile: pki.caCertPath },
      {
        request: (req, res) => res.end(`served ${req.method} ${req.url}`),
        upgrade: (_req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
      },
      log,
    );
    await server.start();
    servers.push(server);
    return server.port();
  }

  before(async () => {
    const dir = lab.tempDir('kapi-pki');
    pki = ensurePki(join(dir, 'pki'), { ips: [], hosts: [] });
    admin = issueCertificate(pki, join(dir, 'client'), { name: 'admin', commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'], usage: 'clientAuth' });
    nodeClient = issueCertificate(pki, join(dir, 'client'), { name: 'node', commonName: 'system:node:n2', organizations: ['system:nodes'], usage: 'clientAuth' });
    selfSigned = { certPath: join(dir, 'self.crt'), keyPath: join(dir, 'self.key') };
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/O=system:masters/CN=kube-apiserver-kubelet-client', '-keyout', selfSigned.keyPath, '-out', selfSigned.certPath], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    port = await serve(['127.0.0.1']);
    wrongIpPort = await serve(['10.1.2.3']);
  });

  after(async () => {
    for (const server of servers) await server.stop();
    lab.cleanup();
  });

  function get(path: string, options: { cert?: IssuedCertificate; headers?: Record<string, string>; method?: string } = {}): Promise<Answer> {
    const tls: RequestOptions = { host: '127.0.0.1', port, path, method: options.method ?? 'GET', ca: pki.caPem, headers: options.headers ?? {} };
    if (options.cert) Object.assign(tls, { cert: readFileSync(options.cert.certPath), key: readFileSync(options.cert.keyPath) });
    return new Promise((resolve, reject) => {
      const req = request(tls, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('no client certificate: 401 Unauthorized, for /pods, /healthz and /metrics alike', async () => {
    for (const path of ['/pods', '/healthz', '/metrics', '/containerLogs/default/p/c']) {
      assert.deepEqual(await get(path), { code: 401, body: 'Unauthorized' }, path);
    }
  });

  test('a bearer token authenticates nothing here: 401', async () => {
    assert.equal((await get('/pods', { headers: { Authorization: 'Bearer some-service-account-token' } })).code, 401);
  });

  test('a self-signed certificate claiming system:masters: 401', async () => {
    assert.equal((await get('/pods', { cert: selfSigned })).code, 401);
  });

  test('a cluster certificate outside system:masters: 403 with upstream’s request attributes', async () => {
    assert.deepEqual(await get('/pods', { cert: nodeClient }), { code: 403, body: 'Forbidden (user=system:node:n2, verb=get, resource=nodes, subresource=proxy)' });
    assert.equal((await get('/metrics', { cert: nodeClient })).body, 'Forbidden (user=system:node:n2, verb=get, resource=nodes, subresource=metrics)');
    assert.equal((await get('/exec/default/p/c?command=id', { cert: nodeClient, method: 'POST' })).body, 'Forbidden (user=system:node:n2, verb=create, resource=nodes, subresource=proxy)');
  });

  test('the apiserver’s kubelet-client identity is served', async () => {
    assert.deepEqual(await get('/pods', { cert: admin }), { code: 200, body: 'served GET /pods' });
  });

  test('an upgrade (exec) without credentials is refused before the handshake', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.caPem }, () => {
        socket.write('GET /exec/default/p/c?command=id HTTP/1.1\r\nHost: kubelet\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 401 /);
  });

  test('the apiserver’s client: authenticated round trip over TLS, and refusal of a kubelet whose certificate names another address', async () => {
    const client = new KubeletClient({ clientCertFile: admin.certPath, clientKeyFile: admin.keyPath, certificateAuthorityFile: pki.caCertPath });
    const socket = await client.dial({ nodeName: 'n1', kind: 'tls', host: '127.0.0.1', port });
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ createConnection: () => socket, path: '/containerLogs/default/p/c', headers: { Host: 'kubelet' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(`${res.statusCode} ${text}`));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, '200 served GET /containerLogs/default/p/c');

    await assert.rejects(client.dial({ nodeName: 'n1', kind: 'tls', host: '127.0.0.1', port: wrongIpPort }), (err: Error & { status?: { code: number } }) => {
      assert.equal(err.status?.code, 503);
      assert.match(err.message, /IP: 127\.0\.0\.1 is not in the cert's list/);
      return true;
    });
    // The pooled GET path (pods/log) checks the certificate the same way, twice over one agent.
    for (let i = 0; i < 2; i++) {
      const pooled = await new Promise<string>((resolve, reject) => {
        const req = client.get({ nodeName: 'n1', kind: 'tls', host: '127.0.0.1', port }, '/containerLogs/default/p/c', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(`${res.statusCode} ${text}`));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(pooled, '200 served GET /containerLogs/default/p/c');
    }
    const refused = await new Promise<Error>((resolve) => {
      const req = client.get({ nodeName: 'n1', kind: 'tls', host: '127.0.0.1', port: wrongIpPort }, '/pods', () => resolve(new Error('answered')));
      req.on('error', resolve);
      req.end();
    });
    assert.match(refused.message, /IP: 127\.0\.0\.1 is not in the cert's list/);
    client.close();
    const withoutCa = new KubeletClient({ clientCertFile: admin.certPath, clientKeyFile: admin.keyPath });
    await assert.rejects(withoutCa.dial({ nodeName: 'n1', kind: 'tls', host: '127.0.0.1', port }), (err: Error & { status?: { code: number } }) => err.status?.code === 503);
  });
});
