#!/bin/sh
# pontoon-bridge-shim: the bridge CNI plugin, run by a `pontoon cni-server` already running on
# this node (src/cni-plugin/server.ts), so an ADD does not start Node. When no server answers,
# it execs pontoon-bridge (next to this file) with the same input: same result, slower.
# Only shell builtins, cat and socat: this file is started once per invocation.
sock=${PONTOON_CNI_SOCKET:-/run/pontoon/cni.sock}
plugin=${0%/*}/pontoon-bridge
nl='
'
if [ ! -S "$sock" ] || ! command -v socat >/dev/null 2>&1; then exec "$plugin"; fi
# The config, trailing newlines kept (the x), for the server or the fallback.
input=$(cat; echo x)
input=${input%x}
reply=$({ printf 'CNI_COMMAND=%s\nCNI_CONTAINERID=%s\nCNI_NETNS=%s\nCNI_IFNAME=%s\nCNI_ARGS=%s\nCNI_PATH=%s\n\n' \
  "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH"
  printf '%s' "$input"; } | socat -t 120 - "UNIX-CONNECT:$sock" 2>/dev/null; echo x)
reply=${reply%x}
case $reply in
  "pontoon-cni 1$nl"*) ;;
  # Nobody greeted: nothing ran. The plugin itself does the work.
  # (A pipeline runs in a subshell, so exec would not end this script: exit with its status.)
  *) printf '%s' "$input" | "$plugin"; exit $? ;;
esac
rest=${reply#"pontoon-cni 1$nl"}
code=${rest%%"$nl"*}
case $code in
  '' | *[!0-9]*)
    # The server took the request and went away: whether it ran is unknown.
    printf '{"cniVersion":"1.1.0","code":11,"msg":"pontoon cni-server closed the connection before answering; try again"}\n'
    exit 1 ;;
esac
printf '%s' "${rest#*"$nl"}"
exit "$code"
