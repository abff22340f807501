/** deploy/pontoon.yaml as the lab fills it, and install-cni's host-root rewrite. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { AgentsError, componentOf, readDeployTemplate, renderManifest } from '../../src/cli/cluster/agents.js';
import { rootConflist } from '../../src/cli/install-cni.js';

const VALUES = {
  NODE: '/usr/bin/node',
  PONTOON: '/opt/pontoon/dist/cli/pontoon.cjs',
  CNI_SOURCE: '/opt/pontoon/dist/cni',
  NET_CONF: '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}',
  APISERVER_HOST: '198.18.0.2',
  APISERVER_PORT: '6443',
  HOST_ROOT: '/',
  PROXY_MODE: 'nftables',
  CLUSTER_CIDR: '10.244.0.0/16',
  IPIP_MODE: 'cross-subnet',
};

type Obj = { kind: string; metadata: { name: string; namespace?: string }; data?: Record<string, string>; spec?: { template: { spec: { hostNetwork?: boolean; initContainers?: { name: string }[]; containers: { command: string[]; env?: { name: string; value?: string }[] }[] } } } };
const objects = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJSON() as Obj);

test('the filled manifest: kube-system ServiceAccount, ConfigMap with both files, hostNetwork agent DaemonSets reaching the apiserver directly', () => {
  const all = objects(renderManifest(readDeployTemplate('pontoon.yaml'), VALUES));
  assert.deepEqual(all.map((o) => `${o.kind}/${o.metadata.name}`), ['ServiceAccount/pontoon', 'ClusterRole/pontoon', 'ClusterRoleBinding/pontoon', 'ConfigMap/pontoon-cfg', 'DaemonSet/pontoon-agent', 'DaemonSet/pontoon-proxy', 'DaemonSet/pontoon-bgp']);
  assert.ok(all.every((o) => o.metadata.namespace === 'kube-system' || o.kind.startsWith('ClusterRole')));
  const config = all.find((o) => o.kind === 'ConfigMap');
  assert.deepEqual(JSON.parse(config?.data?.['net-conf.json'] ?? ''), JSON.parse(VALUES.NET_CONF));
  assert.equal(JSON.parse(config?.data?.['cni-conf.json'] ?? '').plugins[0].type, 'pontoon-flannel');
  const agent = all.find((o) => o.metadata.name === 'pontoon-agent')?.spec?.template.spec;
  assert.equal(agent?.hostNetwork, true);
  assert.deepEqual(agent?.initContainers?.map((c) => c.name), ['install-cni']);
  assert.deepEqual(agent?.containers[0]?.command, ['/usr/bin/node', VALUES.PONTOON, 'flanneld']);
  const env = Object.fromEntries((agent?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
  assert.equal(env['KUBERNETES_SERVICE_HOST'], '198.18.0.2');
  assert.equal(env['KUBERNETES_SERVICE_PORT'], '6443');
});

test('agents the cluster does not run are left out', () => {
  const kept = objects(renderManifest(readDeployTemplate('pontoon.yaml'), VALUES, (o) => o['kind'] !== 'DaemonSet' || componentOf(o) === 'flanneld'));
  assert.deepEqual(kept.filter((o) => o.kind === 'DaemonSet').map((o) => o.metadata.name), ['pontoon-agent']);
});

test('a placeholder without a value is an error naming it', () => {
  const { APISERVER_HOST: _dropped, ...missing } = VALUES;
  assert.throws(() => renderManifest(readDeployTemplate('pontoon.yaml'), missing), (err: unknown) => err instanceof AgentsError && /\{\{APISERVER_HOST\}\}/.test(err.message));
});

test('install-cni --host-root puts pontoon-flannel’s node files (defaults included) under the node’s root, other plugins untouched', () => {
  const conflist = { cniVersion: '1.1.0', name: 'pontoon', plugins: [{ type: 'pontoon-flannel', delegate: { bridge: 'cni0' } }, { type: 'portmap', capabilities: { portMappings: true } }] };
  const rooted = rootConflist(conflist, '/lab/n1/root') as { plugins: Record<string, unknown>[] };
  assert.equal(rooted.plugins[0]?.['subnetFile'], '/lab/n1/root/run/flannel/subnet.env');
  assert.equal(rooted.plugins[0]?.['dataDir'], '/lab/n1/root/var/lib/cni/flannel');
  assert.deepEqual((rooted.plugins[0]?.['delegate'] as { ipam: unknown }).ipam, { dataDir: '/lab/n1/root/var/lib/cni/networks' });
  assert.deepEqual(rooted.plugins[1], conflist.plugins[1]);
});
