/** Parallel CNI calls (the sync helper in cni.ts would serialise them). */
import { spawn } from 'node:child_process';
import { CNI_PATH, type CniCall, type CniOutcome, pluginPath } from './cni.js';

export function cniAsync(call: CniCall): Promise<CniOutcome> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), CNI_COMMAND: call.command, CNI_PATH, ...call.env };
  if (call.containerId !== undefined) env['CNI_CONTAINERID'] = call.containerId;
  if (call.netns !== undefined) env['CNI_NETNS'] = call.netns;
  if (call.ifname !== undefined) env['CNI_IFNAME'] = call.ifname;
  const [file, argv] = call.nodeNetns ? ['ip', ['netns', 'exec', call.nodeNetns, pluginPath(call.plugin)]] : [pluginPath(call.plugin), []];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      const outcome: CniOutcome = { status, signal, stdout, stderr };
      try {
        outcome.json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        // DEL prints nothing
      }
      resolve(outcome);
    });
    child.stdin.end(JSON.stringify(call.config));
  });
}
