/**
 * deploy/dns.yaml applied with the real kubectl to a real apiserver, placeholders filled as
 * the lab fills them: the Service lands at 10.96.0.10 with the kube-dns ports, the Deployment
 * selects its own pods and runs `pontoon dns`. Kinds the apiserver does not serve yet
 * (ServiceAccount, until branch `identity` is merged) are applied only when it does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { findKind } from '../../src/api/resources.js';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { startTestApi, type TestApi } from '../apiserver/server-harness.js';
import { ROOT } from '../helpers/cni.js';
import { tempDir } from '../client/harness.js';

const run = promisify(execFile);
const MANIFEST = join(ROOT, 'deploy', 'dns.yaml');

describe('deploy/dns.yaml', () => {
  const dir = tempDir('dns-manifest');
  let api: TestApi;
  let kubeconfig: string;
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const child = run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir.path, 'cache'), ...args], { encoding: 'utf8' });
    if (input !== undefined) child.child.stdin?.end(input);
    return (await child).stdout;
  };

  before(async () => {
    api = await startTestApi(new MemoryStore());
    kubeconfig = join(dir.path, 'kubeconfig');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: "${api.url}"}\n  name: t\ncontexts:\n- context: {cluster: t, user: u}\n  name: t\ncurrent-context: t\nusers:\n- name: u\n  user: {}\n`);
  });
  after(async () => {
    await api.close();
    dir.remove();
  });

  it('applies, with the Service at 10.96.0.10 and the Deployment selecting its pods', async () => {
    const text = readFileSync(MANIFEST, 'utf8').replaceAll('{{NODE}}', process.execPath).replaceAll('{{PONTOON}}', join(ROOT, 'dist/cli/pontoon.cjs')).replaceAll('{{KUBECONFIG}}', '/etc/pontoon/admin.kubeconfig');
    assert.doesNotMatch(text, /\{\{/);
    const documents = parseAllDocuments(text).map((d) => d.toJSON() as { apiVersion: string; kind: string });
    assert.deepEqual(documents.map((d) => d.kind), ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Service']);
    for (const document of documents) {
      if (!findKind(document.apiVersion, document.kind)) continue;
      await kubectl(['apply', '-f', '-'], JSON.stringify(document));
    }
    const service = JSON.parse(await kubectl(['get', 'service', '-n', 'kube-system', 'kube-dns', '-o', 'json'])) as { spec: { clusterIP: string; selector: Record<string, string>; ports: { name: string; port: number; protocol: string }[] } };
    assert.equal(service.spec.clusterIP, '10.96.0.10');
    assert.deepEqual(service.spec.ports.map((p) => `${p.name} ${p.port}/${p.protocol}`), ['dns 53/UDP', 'dns-tcp 53/TCP', 'metrics 9153/TCP']);
    const deployment = JSON.parse(await kubectl(['get', 'deployment', '-n', 'kube-system', 'pontoon-dns', '-o', 'json'])) as {
      spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: { containers: { command: string[]; args: string[] }[] } } };
    };
    assert.deepEqual(deployment.spec.selector.matchLabels, service.spec.selector);
    assert.equal(deployment.spec.template.metadata.labels['k8s-app'], 'kube-dns');
    assert.deepEqual(deployment.spec.template.spec.containers[0]?.command, [process.execPath, '--single-threaded-gc', join(ROOT, 'dist/cli/pontoon.cjs'), 'dns']);
    // The args are flags `pontoon dns` knows.
    const help = (await run(process.execPath, [join(ROOT, 'build/src/cli/main.js'), 'dns', '--help'], { encoding: 'utf8' })).stdout;
    for (const arg of deployment.spec.template.spec.containers[0]?.args ?? []) assert.ok(help.includes(arg.split('=')[0] ?? '?'), arg);
  });
});
