/** `pontoon network ...`: read and write the network config and leases in the subnet store. */
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, PontoonError } from '../lib/errors.js';
import { formatIpNet, parseIpNet } from '../lib/ip.js';
import { parseNetworkConfig } from '../flanneld/config.js';
import { DEFAULT_ETCD_PREFIX, EtcdSubnetStore } from '../flanneld/subnet/etcd.js';
import { FileSubnetStore } from '../flanneld/subnet/file.js';
import { formatTable } from './table.js';

interface StoreFlags {
  etcdEndpoints: string;
  etcdPrefix: string;
  subnetStoreFile?: string;
}

function openStore(flags: StoreFlags): EtcdSubnetStore | FileSubnetStore {
  return flags.subnetStoreFile
    ? new FileSubnetStore(flags.subnetStoreFile)
    : new EtcdSubnetStore({ endpoints: flags.etcdEndpoints.split(','), prefix: flags.etcdPrefix });
}

function storeOptions(command: Command): Command {
  return command
    .option('--etcd-endpoints <urls>', 'comma-separated etcd client URLs', 'http://127.0.0.1:2379')
    .option('--etcd-prefix <prefix>', 'etcd key prefix of the network', DEFAULT_ETCD_PREFIX)
    .option('--subnet-store-file <path>', 'use a lease file instead of etcd');
}

export function registerNetwork(program: Command): void {
  const network = program.command('network').description('network config and subnet leases in the store');

  storeOptions(network.command('config'))
    .description('print the network config, or store a new one with --set')
    .option('--set <json>', 'network config JSON to store (validated first)')
    .option('--wait <seconds>', 'retry this long while the store is unreachable', '0')
    .action(async (flags: StoreFlags & { set?: string; wait: string }) => {
      const store = openStore(flags);
      const deadline = Date.now() + Number(flags.wait) * 1000;
      try {
        for (;;) {
          try {
            if (flags.set !== undefined) {
              parseNetworkConfig(flags.set);
              await store.putNetworkConfig(flags.set);
            } else {
              console.log((await store.getNetworkConfig()) ?? '(no network config stored)');
            }
            return;
          } catch (err) {
            if (Date.now() >= deadline || (err as Error).name === 'NetworkConfigError') throw err;
            await sleep(250);
          }
        }
      } finally {
        await store.close();
      }
    });

  storeOptions(network.command('leases'))
    .description('list subnet leases')
    .option('--json', 'print JSON')
    .action(async (flags: StoreFlags & { json?: boolean }) => {
      const store = openStore(flags);
      try {
        const { leases, stop } = await store.watchLeases(() => undefined, () => undefined);
        stop();
        const rows = leases.map((l) => [formatIpNet(l.subnet), l.attrs.publicIp, l.attrs.backendType, JSON.stringify(l.attrs.backendData)]);
        if (flags.json) console.log(JSON.stringify(leases.map((l) => ({ subnet: formatIpNet(l.subnet), ...l.attrs })), null, 2));
        else console.log(formatTable(['SUBNET', 'PUBLIC IP', 'BACKEND', 'BACKEND DATA'], rows));
      } finally {
        await store.close();
      }
    });

  storeOptions(network.command('remove-lease'))
    .description('delete a lease (a node leaving for good); other nodes drop its routes')
    .argument('<subnet>', 'e.g. 10.244.3.0/24')
    .action(async (subnet: string, flags: StoreFlags) => {
      const store = openStore(flags);
      try {
        await store.removeLease(parseIpNet(subnet));
      } catch (err) {
        throw new PontoonError(`failed to remove lease ${subnet}: ${describeError(err)}`, { cause: err });
      } finally {
        await store.close();
      }
    });
}
