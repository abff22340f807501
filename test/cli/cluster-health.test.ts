/**
 * `cluster up` waits for each node daemon's first successful sync and fails, with the
 * daemon's log tail, when one dies — the "✔ for every node while each flanneld had
 * died" on a machine without iptables, reproduced by giving flanneld a PATH without it.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import { clusterDown, clusterUp, loadState } from '../../src/cli/cluster/cluster.js';
import { DaemonUnhealthyError, logStartOffset, markLogStart, waitHealthy } from '../../src/cli/cluster/health.js';
import { Lab, TEST_NETNS_PREFIX } from '../helpers/lab.js';
import { run } from '../../src/lib/exec.js';

const lab = new Lab('health');
after(() => lab.cleanup());

describe('daemon health at cluster up', () => {
  test('a process that exits before its milestone fails the wait with its log', async () => {
    const dir = lab.tempDir();
    const logFile = join(dir, 'd.log');
    const child = spawn('sh', ['-c', `echo '{"msg":"starting"}' >> ${logFile}; echo 'fatal: boom' >> ${logFile}; sleep 0.3; exit 3`], { stdio: 'ignore' });
    const pid = child.pid ?? 0;
    await assert.rejects(waitHealthy([{ what: 'd on n1', pid, marker: 'sh', logFile, readyMessage: 'ready' }], 20_000), (err: unknown) => {
      assert.ok(err instanceof DaemonUnhealthyError);
      assert.equal(err.reason, 'exited');
      assert.match(err.message, /fatal: boom/);
      return true;
    });
  });

  test('a process that logged its milestone and stays up is healthy', async () => {
    const dir = lab.tempDir();
    const logFile = join(dir, 'd.log');
    const child = spawn('sh', ['-c', `sleep 0.2; echo '{"level":30,"msg":"ready"}' >> ${logFile}; sleep 30`], { stdio: 'ignore' });
    try {
      await waitHealthy([{ what: 'd on n1', pid: child.pid ?? 0, marker: 'sh', logFile, readyMessage: 'ready' }], 20_000);
    } finally {
      child.kill();
    }
  });

  test('a milestone logged by the previous run of the daemon does not count for this one', async () => {
    const dir = lab.tempDir();
    const logFile = join(dir, 'd.log');
    writeFileSync(logFile, '{"level":30,"msg":"ready"}\n');
    markLogStart(logFile);
    const child = spawn('sh', ['-c', `echo '{"msg":"starting"}' >> ${logFile}; sleep 0.3; exit 1`], { stdio: 'ignore' });
    await assert.rejects(waitHealthy([{ what: 'd on n1', pid: child.pid ?? 0, marker: 'sh', logFile, readyMessage: 'ready', logOffset: logStartOffset(logFile) }], 20_000), DaemonUnhealthyError);
  });

  test('cluster up fails, naming flanneld and its iptables error, when flanneld has no iptables', async () => {
    // A PATH holding only `ip`: what flanneld sees on a machine without iptables.
    const bin = join(lab.tempDir('bin'), 'bin');
    mkdirSync(bin);
    symlinkSync(run('sh', ['-c', 'command -v ip']).trim(), join(bin, 'ip'));
    const name = `${TEST_NETNS_PREFIX}hc`;
    try {
      const lines: string[] = [];
      await assert.rejects(
        clusterUp({
          name,
          nodes: 2,
          backend: 'host-gw',
          racks: 1,
          podsPerNode: 0,
          directRouting: false,
          leaseTtlSeconds: 3600,
          controlPlane: true,
          subnetStore: 'kube',
          proxy: 'none',
          daemonEnv: { flanneld: { PATH: bin } },
          progress: (line) => lines.push(line),
        }),
        (err: unknown) => {
          assert.ok(err instanceof DaemonUnhealthyError, String(err));
          assert.match(err.daemon, /^flanneld on n[12]$/);
          assert.equal(err.reason, 'exited');
          assert.match(err.message, /iptables/);
          return true;
        },
      );
      // No ✔ for the nodes whose daemons died.
      assert.ok(!lines.some((l) => /node\(s\)/.test(l)), lines.join('\n'));
      assert.equal(loadState(name).nodes.length, 2);
    } finally {
      await clusterDown(name);
    }
  });
});
