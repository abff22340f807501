/**
 * nftables through `nft -f -`: a whole table is replaced in one atomic transaction, which is
 * what the proxy's and masquerade's reconcilers want (desired state in, no partial updates).
 */
import { run } from './exec.js';

/** Applies an nft script atomically (all of it or none of it). */
export function nftApply(script: string, netns?: string): void {
  run('nft', ['-f', '-'], netns ? { input: script, netns } : { input: script });
}

/** Lists one table as nft's JSON, or undefined when the table does not exist. */
export function nftListTable(family: string, table: string, netns?: string): unknown {
  try {
    return JSON.parse(run('nft', ['-j', 'list', 'table', family, table], netns ? { netns } : {})) as unknown;
  } catch (err) {
    if (/No such file or directory|does not exist/i.test((err as Error).message)) return undefined;
    throw err;
  }
}

/** Script that creates the table if needed and empties it, so the rest can define it afresh. */
export function replaceTablePrelude(family: string, table: string): string {
  return `table ${family} ${table} {}\nflush table ${family} ${table}\n`;
}
