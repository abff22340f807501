#!/usr/bin/env bash
# The Pontoon demo: a 3-node cluster of network namespaces on this machine (etcd, a flanneld
# per node with the VXLAN backend, pods networked by our CNI plugins), then every pod pings
# every pod on the other nodes. The cluster stays up for you to explore; the last lines say
# how to look around and how to remove it. Nothing touches the root namespace's network.
#   BACKEND=host-gw|vxlan|udp NODES=3 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

pontoon() { node dist/cli/pontoon.cjs "$@"; }
backend=${BACKEND:-vxlan}
nodes=${NODES:-3}

printf '\n\033[1m==> pontoon cluster up --nodes %s --backend %s\033[0m\n' "$nodes" "$backend"
pontoon cluster down --name pontoon >/dev/null
pontoon cluster up --name pontoon --nodes "$nodes" --backend "$backend"

printf '\n\033[1m==> every pod pings every pod on another node\033[0m\n'
node - <<'JS'
const { spawnSync } = require('node:child_process');
const state = JSON.parse(require('node:fs').readFileSync('/run/pontoon/pontoon/state.json', 'utf8'));
const pods = state.nodes.flatMap((node) => node.pods.map((pod) => ({ node: node.name, ...pod })));
let ok = 0;
let failed = 0;
for (const a of pods) {
  for (const b of pods) {
    if (a.node === b.node) continue;
    const ping = spawnSync('ip', ['netns', 'exec', a.netns, 'ping', '-c', '1', '-W', '2', b.ip], { encoding: 'utf8' });
    const rtt = ping.status === 0 ? (/time=([\d.]+)/.exec(ping.stdout)?.[1] ?? '?') : '-';
    console.log(`  ${a.name.padStart(6)} (${a.ip.padEnd(13)}) -> ${b.name.padStart(6)} (${b.ip.padEnd(13)})  ${ping.status === 0 ? 'ok' : 'FAILED'}  ${rtt} ms`);
    if (ping.status === 0) ok++;
    else failed++;
  }
}
console.log(`\n  ${ok} reachable, ${failed} failed`);
JS

printf '\n\033[1m==> node n1: routes, VXLAN neighbours and FDB installed by flanneld\033[0m\n'
pontoon cluster exec n1 -- ip route
pontoon cluster exec n1 -- ip neigh show nud permanent || true
pontoon cluster exec n1 -- bridge fdb show dev flannel.1 2>/dev/null || true

printf '\n\033[1m==> subnet leases in etcd\033[0m\n'
pontoon cluster leases

cat <<'TXT'

The cluster is still running. Look around:
  node dist/cli/pontoon.cjs cluster status
  node dist/cli/pontoon.cjs cluster exec n1-p1 -- ip addr
  node dist/cli/pontoon.cjs cluster exec n2 -- ip route
  node dist/cli/pontoon.cjs cluster restart-flanneld n2
Remove it:
  node dist/cli/pontoon.cjs cluster down
TXT
