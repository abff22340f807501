#!/usr/bin/env bash
# The Pontoon demo: a 3-node Kubernetes-style cluster of network namespaces on this machine
# (apiserver, controller-manager, scheduler; a kubelet and a flanneld with the VXLAN backend
# on every node), then a Deployment of web servers through kubectl, and every pod fetching
# a page from every pod on the other nodes. The cluster stays up for you to explore; the
# last lines say how. Nothing touches the root namespace's network.
#   BACKEND=host-gw|vxlan|udp NODES=3 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

pontoon() { node dist/cli/pontoon.cjs "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
backend=${BACKEND:-vxlan}
nodes=${NODES:-3}

say "pontoon cluster up --nodes $nodes --backend $backend"
pontoon cluster down --name pontoon >/dev/null
pontoon cluster up --name pontoon --nodes "$nodes" --backend "$backend" | tee /tmp/pontoon-up.log
eval "$(tail -1 /tmp/pontoon-up.log)"   # export KUBECONFIG=...

say "kubectl get nodes -o wide"
kubectl wait --for=condition=Ready nodes --all --timeout=60s >/dev/null
kubectl get nodes -o wide

say "kubectl apply -f examples/web.yaml"
kubectl apply -f examples/web.yaml
kubectl rollout status deployment/web --timeout=120s
kubectl get pods -o wide
kubectl get service,endpoints web

say "every pod fetches http://<pod>:8080/ from every pod on another node"
kubectl get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP} {.spec.nodeName}{"\n"}{end}' >/tmp/pontoon-pods.txt
ok=0; failed=0
while read -r from _ from_node; do
  while read -r _ to_ip to_node; do
    [ "$from_node" = "$to_node" ] && continue
    if answer=$(pontoon cluster exec "pod/$from" -- curl -sS -m 3 "http://$to_ip:8080/" 2>&1); then
      printf '  %-22s (%s) -> %-15s %s\n' "$from" "$from_node" "$to_ip" "$answer"; ok=$((ok + 1))
    else
      printf '  %-22s (%s) -> %-15s FAILED: %s\n' "$from" "$from_node" "$to_ip" "$answer"; failed=$((failed + 1))
    fi
  done </tmp/pontoon-pods.txt
done </tmp/pontoon-pods.txt
printf '\n  %d reachable, %d failed\n' "$ok" "$failed"

say "subnet leases: Node podCIDRs from node-ipam, VTEPs from flanneld"
pontoon cluster leases

say "node n1: routes, VXLAN neighbours and FDB entries installed by flanneld"
pontoon cluster exec n1 -- ip route
pontoon cluster exec n1 -- bridge fdb show dev flannel.1 2>/dev/null || true

cat <<TXT

The cluster is still running. Point kubectl at it and look around:
  export KUBECONFIG=$KUBECONFIG
  kubectl get pods -o wide
  kubectl scale deployment web --replicas=9
  kubectl logs deployment/web
  node dist/cli/pontoon.cjs cluster status
  node dist/cli/pontoon.cjs cluster pods        # each pod's sandbox, veth pair and bridge
  node dist/cli/pontoon.cjs cluster exec pod/<pod name> -- ip addr
Remove it:
  node dist/cli/pontoon.cjs cluster down
TXT
[ "$failed" -eq 0 ]
