#!/usr/bin/env bash
# Installs what Pontoon needs on a Debian machine (as root) and builds it. Idempotent: it
# installs only what is missing, so running it again costs a second.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have iptables-restore || need+=(iptables)
have nft || need+=(nftables)
have ping || need+=(iputils-ping)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have podman || need+=(podman)
have runc || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
have iperf3 || need+=(iperf3)
have etcd || need+=(etcd-server)
have socat || need+=(socat)
have curl || need+=(curl)
# The demo and the compatibility tests drive the cluster with kubectl (1.32 is what this
# project is tested with; Debian's own package is older but speaks the same API).
have kubectl || need+=(kubernetes-client)
have openssl || need+=(openssl)
have hyperfine || need+=(hyperfine)
# Interop peers for the BGP speaker (test/bgp/peers/) and packet captures.
have bird || need+=(bird2)
have gobgpd || need+=(gobgpd)
have tshark || need+=(tshark)
have node || need+=(nodejs npm)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm 11 skips dependencies' install scripts unless package.json approves them (allowScripts).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
