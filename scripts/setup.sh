#!/usr/bin/env bash
# Installs what Pontoon needs on a Debian machine (as root) and builds it. Idempotent: it
# installs only what is missing, so running it again costs a second.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
# The kubelet builds each container's mount and UTS namespaces with unshare/mount and enters them with nsenter.
{ have unshare && have nsenter; } || need+=(util-linux)
have mount || need+=(mount)
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
# kubectl exec enters containers with nsenter and gives -t a controlling terminal with
# setsid --ctty (util-linux); the streaming tests drive kubectl -it under script (bsdutils).
{ have nsenter && have setsid; } || need+=(util-linux)
have script || need+=(bsdutils)
# The demo and the compatibility tests drive the cluster with kubectl (1.32 is what this
# project is tested with; Debian's own package is older but speaks the same API).
have kubectl || need+=(kubernetes-client)
have openssl || need+=(openssl)
have hyperfine || need+=(hyperfine)
# Interop peers for the BGP speaker (test/bgp/peers/) and packet captures.
have bird || need+=(bird2)
have gobgpd || need+=(gobgpd)
have tshark || need+=(tshark)
# pontoon trace --probe and the tunnel tests capture with tcpdump; the proxy clears UDP
# conntrack entries of removed endpoints with conntrack(8).
have tcpdump || need+=(tcpdump)
have conntrack || need+=(conntrack)
# The docs' `pi` Job (perl -Mbignum=bpi -wle 'print bpi(2000)'): bookworm's core Math::BigInt
# dies above ~1000 digits ("Can't use an undefined value as an ARRAY reference"); the newer one works.
[ -d /usr/share/perl5/Math/BigInt ] || need+=(libmath-bigint-perl)
# Cluster DNS: dig as the test client, dnsperf for bench/dns.ts, dnsmasq as its reference and the tests' upstream.
have dig || need+=(bind9-dnsutils)
have dnsperf || need+=(dnsperf)
# pontoon topology --svg --graphviz lays out with dot(1); the metrics tests parse every daemon's
# /metrics with the official Python client's parser as well as ours.
have dot || need+=(graphviz)
# Debian's python3 (a pyenv or venv python3 first on PATH would not see Debian's packages).
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || need+=(python3-prometheus-client)
have dnsmasq || need+=(dnsmasq)
# The official Python client: its watch sends watch=True (test/apiserver/python-client.test.ts).
/usr/bin/python3 -c 'import kubernetes' 2>/dev/null || need+=(python3-kubernetes)
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
