/** The `--debug-address` flag the node agents share: starts their DebugServer. */
import { hostname } from 'node:os';
import { DebugServer } from '../debug/server.js';
import type { Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { FlagError } from './daemon.js';

export interface DebugFlags {
  debugAddress: string;
  podNetnsDir?: string;
  podNetnsPrefix?: string;
}

export async function startDebugEndpoint(flags: DebugFlags, nodeName: string | undefined, log: Logger): Promise<DebugServer | undefined> {
  if (flags.debugAddress === 'off' || flags.debugAddress === '') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(flags.debugAddress);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new FlagError(`--debug-address must be host:port or "off", got "${flags.debugAddress}"`);
  const server = new DebugServer(
    {
      node: nodeName ?? hostname(),
      ...(flags.podNetnsDir ? { podNetnsDir: flags.podNetnsDir } : {}),
      podNetnsPrefix: flags.podNetnsPrefix ?? '',
    },
    log,
  );
  try {
    await server.listen(match[1] ?? match[2] ?? '', port);
  } catch (err) {
    // The data plane matters more than its debug view: keep running, loudly.
    log.warn({ err: describeError(err), address: flags.debugAddress }, 'cannot serve the debug endpoint; pontoon trace cannot read this node');
    return undefined;
  }
  return server;
}
