#!/usr/bin/env bash
# Removes what test runs, benchmarks and demos left behind when they died before their own
# cleanup: namespaces named ptest-<pid36>-... or pontoon-demo-<pid>-..., cluster state under
# /run/pontoon, and daemons started for them. Leftovers of runs whose process still lives are
# kept, so a developer's concurrent test run or benchmark is not pulled out from under it.
set -u
alive() { [ -d "/proc/$1" ]; }
owner_pid() { # prints the decimal pid embedded in a name, or nothing
  case "$1" in
    ptest-*) local id=${1#ptest-}; id=${id%%-*}; [[ "$id" =~ ^[0-9a-z]+$ ]] && echo $((36#$id)) ;;
    pontoon-demo-*) local id=${1#pontoon-demo-}; id=${id%%-*}; [[ "$id" =~ ^[0-9]+$ ]] && echo "$id" ;;
  esac
}
stale() { local pid; pid=$(owner_pid "$1"); [ -n "$pid" ] && ! alive "$pid"; }

for dir in /run/pontoon/ptest-* /run/pontoon/pontoon-demo-*; do
  [ -d "$dir" ] || continue
  stale "$(basename "$dir")" || continue
  pkill -KILL -f -- "$dir/" 2>/dev/null || true
  # Pod volumes (tmpfs, bind mounts) outlive a killed kubelet; a mount point cannot be removed.
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(ptest-|pontoon-demo-)' || true); do
  stale "$ns" || continue
  # Pod containers live only in their namespace's process list, not under a state dir.
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  ip netns delete "$ns" 2>/dev/null
done
exit 0
