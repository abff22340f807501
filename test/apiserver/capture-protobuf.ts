/**
 * Regenerates test/fixtures/protobuf (see its README): runs real kubectl generator commands
 * against our apiserver through a recording proxy, and keeps, per command, the protobuf body
 * kubectl POSTed (`NAME.pb`) and the JSON kubectl prints for the same command with
 * `--dry-run=client -o json` (`NAME.json`). Not a test; run it by hand:
 *
 *   node build/test/apiserver/capture-protobuf.js
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { ensurePki } from '../../src/apiserver/pki.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { ROOT } from '../helpers/cni.js';
import { startTestApi } from './server-harness.js';

/** Fixture name → kubectl arguments of a command that creates one object. */
export const CAPTURED: Record<string, string[]> = {
  deployment: ['create', 'deployment', 'gen', '--image=busybox:1', '--port=8080', '--replicas=2', '--', 'sleep', '3600'],
  configmap: ['create', 'configmap', 'gen', '--from-literal=a=b', '--from-literal=c=d'],
  'service-nodeport': ['create', 'service', 'nodeport', 'gen-np', '--tcp=80:http'],
  'service-clusterip': ['create', 'service', 'clusterip', 'gen-ip', '--tcp=5678:8080', '--tcp=53:53'],
  secret: ['create', 'secret', 'generic', 'gen', '--from-literal=user=admin', '--from-literal=pass=s3cr3t'],
  job: ['create', 'job', 'gen', '--image=busybox', '--', 'echo', 'hi'],
  namespace: ['create', 'namespace', 'gen'],
  serviceaccount: ['create', 'serviceaccount', 'gen'],
  role: ['create', 'role', 'gen', '--verb=get,list', '--resource=pods,services'],
  rolebinding: ['create', 'rolebinding', 'gen', '--role=gen', '--user=alice', '--serviceaccount=default:gen'],
  clusterrole: ['create', 'clusterrole', 'gen', '--verb=get', '--resource=nodes', '--non-resource-url=/healthz'],
};

/** What the proxy recorded (a function: the compiler cannot see the proxy write it). */
const taken = (seen: { body?: Buffer }): Buffer | undefined => seen.body;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pontoon-capture-'));
  const out = join(ROOT, 'test', 'fixtures', 'protobuf');
  const tokensFile = join(dir, 'tokens.csv');
  writeFileSync(tokensFile, 'capture-token,admin,1,"system:masters"\n');
  const api = await startTestApi(new MemoryStore(), { tokensFile });
  const target = new URL(api.url);
  // The last protobuf body POSTed (kubectl runs as a child: this process must keep serving).
  const seen: { body?: Buffer } = {};
  // TLS in front (kubectl sends no token over plain HTTP), plain HTTP behind.
  const pki = ensurePki(join(dir, 'pki'), { ips: ['127.0.0.1'], hosts: ['localhost'] });
  const proxy = createServer({ cert: readFileSync(pki.certPath), key: readFileSync(pki.keyPath) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && /protobuf/.test(req.headers['content-type'] ?? '')) seen.body = body;
      const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: "https://127.0.0.1:${(proxy.address() as AddressInfo).port}", certificate-authority-data: ${Buffer.from(pki.caPem).toString('base64')}}\n  name: c\ncontexts:\n- context: {cluster: c, user: u}\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user: {token: capture-token}\n`,
  );
  const kubectl = async (args: string[]): Promise<string> =>
    (await promisify(execFile)('/usr/bin/kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { encoding: 'utf8', env: { ...process.env, HOME: dir } })).stdout;
  try {
    const version = JSON.parse(await kubectl(['version', '--client', '-o', 'json'])) as { clientVersion: { gitVersion: string } };
    for (const [name, args] of Object.entries(CAPTURED)) {
      const dashes = args.indexOf('--');
      const withFlags = (extra: string[]): string[] => (dashes < 0 ? [...args, ...extra] : [...args.slice(0, dashes), ...extra, ...args.slice(dashes)]);
      const json = await kubectl(withFlags(['--dry-run=client', '-o', 'json']));
      delete seen.body;
      await kubectl(args);
      const body = taken(seen);
      if (!body) {
        console.log(`${name}: kubectl sent JSON, not protobuf; no fixture`);
        continue;
      }
      writeFileSync(join(out, `${name}.pb`), body);
      writeFileSync(join(out, `${name}.json`), json);
      console.log(`${name}: ${body.length} bytes`);
    }
    writeFileSync(join(out, 'KUBECTL_VERSION'), `${version.clientVersion.gitVersion}\n`);
  } finally {
    proxy.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('capture-protobuf.js')) void main();
