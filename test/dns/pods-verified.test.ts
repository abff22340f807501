/**
 * `--pods verified` (CoreDNS `pods verified`): a pod record answers only while a pod in that
 * namespace has the IP, following the pod's status through the Pods informer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RESOURCE } from '../../src/api/resources.js';
import type { Pod } from '../../src/api/types.js';
import { podObject } from '../client/harness.js';
import { poll } from '../helpers/wait.js';
import { DnsLab } from './harness.js';

describe('pontoon dns --pods verified', () => {
  const lab = new DnsLab();
  before(() => lab.start(['--pods', 'verified']));
  after(() => lab.stop());

  it('answers a pod name only while a pod there has that IP', async () => {
    const name = '10-244-7-7.default.pod.cluster.local';
    assert.equal((await lab.dig([name])).status, 'NXDOMAIN');
    const pod = await lab.client.create<Pod>(RESOURCE.pods, podObject('p1'));
    await lab.client.patch(RESOURCE.pods, 'p1', 'default', { status: { podIP: '10.244.7.7', podIPs: [{ ip: '10.244.7.7' }] } }, 'merge', 'status');
    await poll('pod record answered', async () => (await lab.dig([name])).answers[0]?.data === '10.244.7.7', { timeoutMs: 10_000 });
    // The same IP in another namespace is no pod of that namespace.
    assert.equal((await lab.dig(['10-244-7-7.kube-system.pod.cluster.local'])).status, 'NXDOMAIN');
    await lab.client.delete(RESOURCE.pods, pod.metadata.name ?? '', 'default', { gracePeriodSeconds: 0 });
    await poll('pod record gone', async () => (await lab.dig([name])).status === 'NXDOMAIN', { timeoutMs: 10_000 });
  });
});
