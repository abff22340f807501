// Bundles the CNI plugins and the CLI into single files with esbuild.
//
// Startup is the CNI plugin's main cost (a runtime execs it for every ADD/DEL), so each
// plugin is one CommonJS file with no module resolution at run time, and its shebang drops
// NODE_EXTRA_CA_CERTS: loading a CA bundle costs ~70 ms here and a CNI plugin opens no TLS
// connection. koffi's native module is copied beside the plugins so an installed copy in
// /opt/cni/bin needs no node_modules.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const shebang = '#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // Native or file-loading packages stay in node_modules: koffi (a .node file), etcd3 (reads
  // its .proto files from its own directory), pino (spawns worker files).
  external: ['koffi', 'etcd3', 'pino', 'better-sqlite3'],
  define: { 'import.meta.url': '__pontoonImportMetaUrl', PONTOON_VERSION: JSON.stringify(version) },
  banner: { js: `${shebang}\nconst __pontoonImportMetaUrl = require('node:url').pathToFileURL(__filename).href;` },
  logLevel: 'warning',
  legalComments: 'none',
};

const outputs = [
  { entry: 'src/cni-plugin/bridge/main.ts', out: 'dist/cni/pontoon-bridge' },
  { entry: 'src/cni-plugin/ipam/main.ts', out: 'dist/cni/pontoon-ipam' },
  { entry: 'src/cni-plugin/flannel/main.ts', out: 'dist/cni/pontoon-flannel' },
  // The CLI proper; dist/cli/pontoon.cjs is the launcher written below.
  { entry: 'src/cli/main.ts', out: 'dist/cli/pontoon-main.cjs', launched: true },
  // The udp backend's packet loops run in worker threads, which load their own file.
  { entry: 'src/flanneld/backend/udp-loop.ts', out: 'dist/cli/udp-loop.cjs' },
  { entry: 'src/bgp/ipip/loop.ts', out: 'dist/cli/ipip-loop.cjs' },
  { entry: 'src/dns/udp-loop.ts', out: 'dist/cli/dns-udp-loop.cjs' },
];

// A launched bundle is wrapped and compiled by the launcher, where a shebang line is a syntax error.
const withoutShebang = { js: common.banner.js.slice(common.banner.js.indexOf('\n') + 1) };
await Promise.all(outputs.map(({ entry, out, launched }) => build({ ...common, ...(launched ? { banner: withoutShebang } : {}), entryPoints: [join(root, entry)], outfile: join(root, out) })));
for (const { out } of outputs) chmodSync(join(root, out), 0o755);

// Extensionless files under a "type": "module" package would not load as CommonJS.
writeFileSync(join(root, 'dist/cni/package.json'), '{ "type": "commonjs" }\n');
const require = createRequire(import.meta.url);
const arch = process.arch;
const koffiNative = require.resolve(`@koromix/koffi-linux-${arch}/linux_${arch}/koffi.node`);
mkdirSync(join(root, 'dist/cni'), { recursive: true });
// Copy then rename: a plugin process running meanwhile has the old file mapped, and
// overwriting a mapped shared object in place crashes it (SIGBUS/SIGSEGV).
const koffiTarget = join(root, 'dist/cni/pontoon-koffi.node');
copyFileSync(koffiNative, `${koffiTarget}.tmp`);
renameSync(`${koffiTarget}.tmp`, koffiTarget);
// The thick plugins' shim is a shell script (src/cni-plugin/server.ts says why), copied as is,
// once per plugin it fronts (it runs the plugin its own name names).
for (const plugin of ['pontoon-bridge', 'pontoon-flannel']) {
  const shim = join(root, `dist/cni/${plugin}-shim`);
  copyFileSync(join(root, 'src/cni-plugin/shim.sh'), `${shim}.tmp`);
  chmodSync(`${shim}.tmp`, 0o755);
  renameSync(`${shim}.tmp`, shim);
}

// The CLI launcher: it runs pontoon-main.cjs through vm.Script with V8's code cache of it,
// made here by running `--version` once. Compiling the 2.4 MB bundle was a third of every
// command's start (72 of 204 ms in a profile); a cache V8 rejects (another Node) only costs
// that compile again.
const cli = join(root, 'dist/cli/pontoon.cjs');
writeFileSync(
  cli,
  `${shebang}
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { join } = require('node:path');
const vm = require('node:vm');
const file = join(__dirname, 'pontoon-main.cjs');
let cachedData;
try {
  cachedData = readFileSync(file + '.cache');
} catch {}
const script = new vm.Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
const cacheOut = process.env.PONTOON_WRITE_CODE_CACHE;
if (cacheOut) process.once('exit', () => writeFileSync(cacheOut, script.createCachedData()));
const main = new Module(file, module);
main.filename = file;
main.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext()(main.exports, Module.createRequire(file), main, file, __dirname);
`,
);
chmodSync(cli, 0o755);
const cacheFile = join(root, 'dist/cli/pontoon-main.cjs.cache');
const made = spawnSync(process.execPath, [cli, '--version'], { env: { ...process.env, PONTOON_WRITE_CODE_CACHE: `${cacheFile}.tmp` }, encoding: 'utf8' });
if (made.status !== 0) throw new Error(`the CLI did not start to make its code cache: ${made.stderr}`);
renameSync(`${cacheFile}.tmp`, cacheFile);

