#!/bin/sh
# pontoon-<plugin>-shim: one of our CNI plugins (pontoon-bridge, pontoon-flannel: the name
# minus "-shim"), run by a `pontoon cni-server` already running on this node
# (src/cni-plugin/server.ts; wire format src/cni/thick.ts), so an ADD does not start Node.
# When no server answers, it execs the plugin (next to this file) with the same input: same
# result, slower. The server's socket is the network config's "serverSocket", else
# $PONTOON_CNI_SOCKET, else /run/pontoon/cni.sock.
# Only shell builtins, cat and socat: this file is started once per invocation.
case $0 in
  *-shim) plugin=${0%-shim} ;;
  *) printf '{"cniVersion":"1.1.0","code":4,"msg":"a pontoon shim must be named <plugin>-shim, not %s"}\n' "${0##*/}"; exit 1 ;;
esac
nl='
'
# The config, trailing newlines kept (the x), for the server or the fallback.
input=$(cat; echo x)
input=${input%x}
sock=${PONTOON_CNI_SOCKET:-/run/pontoon/cni.sock}
case $input in
  *'"serverSocket"'*)
    value=${input#*'"serverSocket"'}
    value=${value#*'"'}
    sock=${value%%'"'*} ;;
esac
if [ ! -S "$sock" ] || ! command -v socat >/dev/null 2>&1; then
  printf '%s' "$input" | "$plugin"; exit $?
fi
reply=$({ printf 'PONTOON_PLUGIN=%s\nCNI_COMMAND=%s\nCNI_CONTAINERID=%s\nCNI_NETNS=%s\nCNI_IFNAME=%s\nCNI_ARGS=%s\nCNI_PATH=%s\n\n' \
  "${plugin##*/}" "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH"
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
