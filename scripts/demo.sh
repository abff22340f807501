#!/usr/bin/env bash
# The Pontoon demo: a 3-node Kubernetes-style cluster of network namespaces on this machine
# (apiserver, controller-manager, scheduler; a kubelet on every node, and the node agents —
# flanneld with the VXLAN backend and a service proxy — as DaemonSet pods from
# deploy/pontoon.yaml; AGENTS=process starts them as plain processes instead), then a Deployment of web servers and a Service through
# kubectl, every pod fetching a page from every pod on the other nodes, then from the
# Service's cluster IP, and the node port on every node. The cluster stays up for you to
# explore; the last lines say how. Nothing touches the root namespace's network.
#   BACKEND=host-gw|vxlan|udp PROXY=nftables|iptables NODES=3 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

pontoon() { node dist/cli/pontoon.cjs "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
backend=${BACKEND:-vxlan}
proxy=${PROXY:-nftables}
nodes=${NODES:-3}
agents=${AGENTS:-daemonset}

say "pontoon cluster up --nodes $nodes --backend $backend --proxy $proxy --agents $agents"
pontoon cluster down --name pontoon >/dev/null
pontoon cluster up --name pontoon --nodes "$nodes" --backend "$backend" --proxy "$proxy" --agents "$agents" | tee /tmp/pontoon-up.log
eval "$(tail -1 /tmp/pontoon-up.log)"   # export KUBECONFIG=...

say "kubectl get nodes -o wide"
kubectl wait --for=condition=Ready nodes --all --timeout=60s >/dev/null
kubectl get nodes -o wide

say "kubectl -n kube-system get daemonsets,pods -o wide (the node agents)"
kubectl -n kube-system get daemonsets,pods -o wide

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

cluster_ip=$(kubectl get service web -o jsonpath='{.spec.clusterIP}')
node_port=$(kubectl get service web -o jsonpath='{.spec.ports[0].nodePort}')
say "every pod fetches http://$cluster_ip/ (the Service's cluster IP) three times: the proxy spreads them"
while read -r from _ from_node; do
  for _ in 1 2 3; do
    if answer=$(pontoon cluster exec "pod/$from" -- curl -sS -m 3 "http://$cluster_ip/" 2>&1); then
      printf '  %-22s (%s) -> %s\n' "$from" "$from_node" "$answer"; ok=$((ok + 1))
    else
      printf '  %-22s (%s) -> FAILED: %s\n' "$from" "$from_node" "$answer"; failed=$((failed + 1))
    fi
  done
done </tmp/pontoon-pods.txt

if kubectl -n kube-system get service kube-dns >/dev/null 2>&1; then
  say "kubectl exec deploy/web -- busybox nslookup web (cluster DNS through the search path)"
  # busybox nslookup also tries the later search suffixes and exits 1 on their NXDOMAIN.
  kubectl exec deploy/web -- busybox nslookup web || true
  kubectl exec deploy/web -- getent hosts web
fi

say "a pod reaches the apiserver through the kubernetes Service with its ServiceAccount token"
kubectl exec deploy/web -- sh -c 'curl -sS -m 5 --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt -H "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" https://$KUBERNETES_SERVICE_HOST/version' || failed=$((failed + 1))
echo

say "node port $node_port on every node's address (asked from node n1)"
for ip in $(kubectl get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}'); do
  if answer=$(pontoon cluster exec n1 -- curl -sS -m 3 "http://$ip:$node_port/" 2>&1); then
    printf '  %-15s -> %s\n' "$ip:$node_port" "$answer"; ok=$((ok + 1))
  else
    printf '  %-15s -> FAILED: %s\n' "$ip:$node_port" "$answer"; failed=$((failed + 1))
  fi
done
printf '\n  %d answered, %d failed\n' "$ok" "$failed"

say "node n1: the proxy's rules for the Service ($proxy mode)"
if [ "$proxy" = iptables ]; then
  pontoon cluster exec n1 -- iptables-save -t nat | grep -E 'default/web' | head -12
else
  pontoon cluster exec n1 -- nft list table ip pontoon | grep -E 'default/web|map endpoints|: [0-9.]+ \. 8080' | head -12
fi

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
  kubectl scale deployment web --replicas=0      # the Service now refuses at once
  kubectl logs deployment/web
  node dist/cli/pontoon.cjs cluster status
  node dist/cli/pontoon.cjs cluster add-node     # a 4th node; its agents come from the DaemonSets
  node dist/cli/pontoon.cjs cluster restart flanneld n2   # deletes that agent pod; the DaemonSet brings it back
  node dist/cli/pontoon.cjs cluster pods        # each pod's sandbox, veth pair and bridge
  node dist/cli/pontoon.cjs cluster exec pod/<pod name> -- ip addr
Remove it:
  node dist/cli/pontoon.cjs cluster down
TXT
[ "$failed" -eq 0 ]
