/**
 * The apiserver's side of pods/exec|attach|portforward without a kubelet: discovery
 * advertises them, a plain request is told to upgrade, and every refusal upstream's
 * apiserver makes before proxying is a Status on the raw socket with its code and message.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Status } from '../../src/api/meta.js';
import { RESOURCE } from '../../src/api/resources.js';
import type { Pod } from '../../src/api/types.js';
import { type RunningApiServer, startApiServer } from '../../src/apiserver/server.js';
import { KubeClient } from '../../src/client/client.js';
import { createLogger } from '../../src/lib/log.js';

let apiserver: RunningApiServer;
let port: number;

/** Sends a WebSocket upgrade request and reads the HTTP answer (status line and body). */
function upgrade(path: string): Promise<{ code: number; status: Status }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const code = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
      resolve({ code, status: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Status });
    });
    socket.write(
      [`GET ${path} HTTP/1.1`, 'Host: x', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol: v5.channel.k8s.io', '', ''].join('\r\n'),
    );
  });
}

describe('pods/exec, attach and portforward in the apiserver', () => {
  before(async () => {
    apiserver = await startApiServer({ store: 'memory:', listen: '127.0.0.1:0', log: createLogger('podstream-test', { level: 'silent' }) });
    port = apiserver.port!;
    const api = new KubeClient({ server: apiserver.url });
    const pod = (name: string, nodeName?: string): Pod => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'x' }] },
    });
    await api.create(RESOURCE.pods, pod('unscheduled'));
    await api.create(RESOURCE.pods, pod('nodeless', 'n-missing'));
    await api.create(RESOURCE.pods, pod('done', 'n-missing'));
    await api.patch(RESOURCE.pods, 'done', 'default', { status: { phase: 'Succeeded' } }, 'merge', 'status');
  });

  after(async () => apiserver.close());

  test('discovery lists the connect subresources with their option kinds', async () => {
    const list = (await (await fetch(`${apiserver.url}/api/v1`)).json()) as { resources: { name: string; kind: string; verbs: string[] }[] };
    for (const [name, kind] of [['pods/exec', 'PodExecOptions'], ['pods/attach', 'PodAttachOptions'], ['pods/portforward', 'PodPortForwardOptions']]) {
      const found = list.resources.find((r) => r.name === name);
      assert.equal(found?.kind, kind, name);
      assert.deepEqual(found?.verbs.sort(), ['create', 'get']);
    }
  });

  test('without an upgrade: 400 Upgrade request required', async () => {
    const answer = await fetch(`${apiserver.url}/api/v1/namespaces/default/pods/nodeless/exec?command=true&container=a`, { method: 'POST' });
    assert.equal(answer.status, 400);
    assert.equal(((await answer.json()) as Status).message, 'Upgrade request required');
  });

  test('refusals before the proxy are Statuses with upstream\'s wording', async () => {
    const cases: [string, number, RegExp][] = [
      ['/api/v1/namespaces/default/pods/ghost/exec?command=true', 404, /pods "ghost" not found/],
      ['/api/v1/namespaces/default/pods/nodeless/exec?command=true&container=zz', 400, /container zz is not valid for pod nodeless/],
      ['/api/v1/namespaces/default/pods/nodeless/exec?command=true', 400, /a container name must be specified for pod nodeless, choose one of: \[a b\]/],
      ['/api/v1/namespaces/default/pods/nodeless/exec?container=a', 400, /at least 1 command/],
      ['/api/v1/namespaces/default/pods/unscheduled/exec?command=true&container=a', 400, /pod unscheduled does not have a host assigned/],
      ['/api/v1/namespaces/default/pods/done/attach?container=a&stdout=true', 400, /cannot attach to a container in a completed pod; current phase is Succeeded/],
      ['/api/v1/namespaces/default/pods/nodeless/portforward', 404, /nodes "n-missing" not found/],
      ['/api/v1/namespaces/default/services/x/exec', 404, /could not find the requested resource/],
      ['/api/v1/namespaces/default/pods', 400, /does not take an upgrade/],
    ];
    for (const [path, code, message] of cases) {
      const answer = await upgrade(path);
      assert.equal(answer.code, code, path);
      assert.equal(answer.status.kind, 'Status');
      assert.equal(answer.status.code, code);
      assert.match(answer.status.message ?? '', message, path);
    }
  });
});
