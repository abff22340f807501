/** The `pontoon` command. */
import { Command } from 'commander';
import { describeError } from '../lib/errors.js';
import { pontoonVersion } from '../lib/version.js';
import { DEFAULT_CNI_BIN_DIR, installCniPlugins } from './cni.js';
import { registerCluster } from './cluster/command.js';
import { registerFlanneld } from './flanneld.js';
import { registerNetwork } from './network.js';
import { registerApiserver } from './apiserver.js';
import { registerScheduler } from './scheduler.js';
import { registerControllerManager } from './controller-manager.js';
import { registerKubelet } from './kubelet.js';
import { registerProxy } from './proxy.js';
import { registerBgp } from './bgp.js';
import { registerInstallCni } from './install-cni.js';
import { registerDns } from './dns.js';
import { registerJoin } from './join.js';
import { registerInit } from './init.js';
import { registerToken } from './token.js';
import { registerStatus } from './status/command.js';
import { registerTrace } from './trace.js';
import { registerCniServer } from './cni-server.js';


const program = new Command('pontoon').description('Pontoon container networking').version(pontoonVersion);

const cni = program.command('cni').description('CNI plugin binaries');
cni
  .command('install')
  .description('install pontoon-bridge and pontoon-ipam into a CNI bin directory')
  .option('--dir <dir>', 'CNI bin directory', DEFAULT_CNI_BIN_DIR)
  .action((options: { dir: string }) => {
    for (const path of installCniPlugins(options.dir)) console.log(`installed ${path}`);
  });

registerFlanneld(program);
registerNetwork(program);
registerCluster(program);
registerApiserver(program);
registerScheduler(program);
registerControllerManager(program);
registerKubelet(program);
registerProxy(program);
registerBgp(program);
registerInstallCni(program);
registerDns(program);
registerToken(program);
registerInit(program);
registerJoin(program);
registerStatus(program);
registerTrace(program);
registerCniServer(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`pontoon: ${describeError(err)}`);
  process.exitCode = 1;
});
