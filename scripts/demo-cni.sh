#!/usr/bin/env bash
# The Pontoon demo: give two containers a network through our CNI binaries exactly the way a
# container runtime does, show their addresses, ping across the bridge, and tear it all down.
# Everything happens inside network namespaces this script creates (a simulated node and two
# pods); the root namespace's network is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

prefix="pontoon-demo-$$"
node="$prefix-node"
work=$(mktemp -d /tmp/pontoon-demo.XXXXXX)
cleanup() {
  for ns in "$node" "$prefix-pod1" "$prefix-pod2"; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing the CNI plugins into $work/bin"
node dist/cli/pontoon.cjs cni install --dir "$work/bin"

cat >"$work/net.conf" <<CONF
{
  "cniVersion": "1.1.0",
  "name": "pontoon-demo",
  "type": "pontoon-bridge",
  "bridge": "cni0",
  "isDefaultGateway": true,
  "ipMasq": true,
  "ipam": {
    "type": "pontoon-ipam",
    "ranges": [[{ "subnet": "10.244.1.0/24" }], [{ "subnet": "fd00:244:1::/64" }]],
    "dataDir": "$work/ipam"
  }
}
CONF
step "network config"
cat "$work/net.conf"

step "creating a node namespace and two pod namespaces"
ip netns add "$node"
ip netns add "$prefix-pod1"
ip netns add "$prefix-pod2"
ip netns list | grep "$prefix"

cni() { # cni COMMAND POD
  ip netns exec "$node" env CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/run/netns/$prefix-$2" \
    CNI_IFNAME=eth0 CNI_PATH="$work/bin" "$work/bin/pontoon-bridge" <"$work/net.conf"
}

for pod in pod1 pod2; do
  step "CNI ADD $pod (as a runtime would: CNI_* env + config on stdin)"
  start=$(date +%s%N)
  cni ADD "$pod" | tee "$work/$pod.json"
  echo "  took $(( ($(date +%s%N) - start) / 1000000 )) ms"
done

step "pod1's interface and routes"
ip netns exec "$prefix-pod1" ip -brief addr show eth0
ip netns exec "$prefix-pod1" ip route

pod2_ip=$(ip netns exec "$prefix-pod2" ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
step "pod1 pings the gateway (10.244.1.1), pod2 ($pod2_ip) and pod2 over IPv6"
ip netns exec "$prefix-pod1" ping -c 2 -W 2 10.244.1.1
ip netns exec "$prefix-pod1" ping -c 2 -W 2 "$pod2_ip"
ip netns exec "$prefix-pod1" ping -6 -c 2 -W 2 fd00:244:1::3

step "CNI CHECK pod1"
node - "$work" <<'JS'
const fs = require('node:fs');
const work = process.argv[2];
const conf = JSON.parse(fs.readFileSync(`${work}/net.conf`, 'utf8'));
conf.prevResult = JSON.parse(fs.readFileSync(`${work}/pod1.json`, 'utf8'));
fs.writeFileSync(`${work}/check.conf`, JSON.stringify(conf));
JS
ip netns exec "$node" env CNI_COMMAND=CHECK CNI_CONTAINERID=pod1 CNI_NETNS="/run/netns/$prefix-pod1" \
  CNI_IFNAME=eth0 CNI_PATH="$work/bin" "$work/bin/pontoon-bridge" <"$work/check.conf" && echo "  CHECK passed"

step "the node's bridge and masquerade rules"
ip netns exec "$node" ip -brief addr show cni0
ip netns exec "$node" iptables -t nat -S POSTROUTING

step "IPAM state (host-local layout)"
ls "$work/ipam/pontoon-demo"

for pod in pod1 pod2; do
  step "CNI DEL $pod"
  cni DEL "$pod" && echo "  deleted"
done
step "after DEL: pod1 has only lo, no addresses are held"
ip netns exec "$prefix-pod1" ip -brief link
ls "$work/ipam/pontoon-demo"
echo
echo "demo finished; namespaces are removed on exit"
