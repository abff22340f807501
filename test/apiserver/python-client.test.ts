/**
 * The official Python client (Debian python3-kubernetes) against our apiserver. Its Watch
 * sends `watch=True` (Python's str(True)), which the apiserver once read as false and
 * answered with a plain list, so the client saw no events.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { MemoryStore } from '../../src/apiserver/store/memory.js';
import { pod, startTestApi, type TestApi } from './server-harness.js';

const PYTHON = '/usr/bin/python3';

/** Watches pods in `default` and prints one JSON line per event until it sees `stopAt` ADDED. */
const WATCH_SCRIPT = `
import json, sys
from kubernetes import client, watch
cfg = client.Configuration()
cfg.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(cfg))
w = watch.Watch()
for event in w.stream(api.list_namespaced_pod, namespace="default", allow_watch_bookmarks=True, timeout_seconds=30):
    if event["type"] == "BOOKMARK":
        continue
    obj = event["object"]
    print(json.dumps({"type": event["type"], "name": obj.metadata.name, "image": obj.spec.containers[0].image}), flush=True)
    if event["type"] == "ADDED" and obj.metadata.name == sys.argv[2]:
        w.stop()
print(json.dumps({"type": "END"}), flush=True)
`;

interface PrintedEvent {
  type: string;
  name?: string;
  image?: string;
}

// scripts/setup.sh installs python3-kubernetes: without it these tests fail (they never skip).
describe('official Python client (python3-kubernetes)', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi(new MemoryStore());
  });
  after(async () => {
    await api?.close();
  });

  test('watch.Watch().stream(list_namespaced_pod) gets the existing pod, then one created later', async () => {
    assert.equal((await api.call('POST', '/api/v1/namespaces/default/pods', pod('py-1'))).status, 201);
    const child = spawn(PYTHON, ['-c', WATCH_SCRIPT, api.url, 'py-2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const events: PrintedEvent[] = [];
    try {
      const lines = createInterface({ input: child.stdout });
      for await (const line of lines) {
        const event = JSON.parse(line) as PrintedEvent;
        events.push(event);
        // Only once the client shows it is watching does the second pod appear.
        if (event.type === 'ADDED' && event.name === 'py-1') {
          assert.equal((await api.call('POST', '/api/v1/namespaces/default/pods', pod('py-2'))).status, 201);
        }
        if (event.type === 'END') break;
      }
    } finally {
      child.kill();
    }
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.name ?? ''}`.trim()),
      ['ADDED py-1', 'ADDED py-2', 'END'],
      `python client events (stderr: ${stderr})`,
    );
    assert.equal(events[0]?.image, 'busybox', 'the pod decoded into a V1Pod');
  });
});
