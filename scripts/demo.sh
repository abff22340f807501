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
python3 - <<'PY'
import json, subprocess
state = json.load(open('/run/pontoon/pontoon/state.json'))
pods = [(n['name'], p) for n in state['nodes'] for p in n['pods']]
ok = failed = 0
for node_a, a in pods:
    for node_b, b in pods:
        if node_a == node_b:
            continue
        r = subprocess.run(['ip', 'netns', 'exec', a['netns'], 'ping', '-c', '1', '-W', '2', b['ip']], capture_output=True, text=True)
        rtt = r.stdout.split('time=')[1].split()[0] if r.returncode == 0 else '-'
        print(f"  {a['name']:>6} ({a['ip']:<13}) -> {b['name']:>6} ({b['ip']:<13})  {'ok' if r.returncode == 0 else 'FAILED'}  {rtt} ms")
        ok, failed = ok + (r.returncode == 0), failed + (r.returncode != 0)
print(f"\n  {ok} reachable, {failed} failed")
PY

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
