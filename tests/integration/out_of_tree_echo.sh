#!/usr/bin/env bash
# A plugin author's whole path: build the echo example out of tree against the installed SDK
# (tests/sdk/out_of_tree.sh), install emsnode itself to a fresh prefix without its own echo, and
# load the out-of-tree plugin into that installed node, which must serve it and stop cleanly.
#
# Usage: out_of_tree_echo.sh <build dir> <source dir>
set -euo pipefail

build=$(cd "$1" && pwd)
source=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/emsnode-oot-node-XXXXXX)
oot_work=""
node_pid=""

cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then kill -KILL "$node_pid"; fi
  rm -rf "$work"
  [ -z "$oot_work" ] || rm -rf "$oot_work"
}
trap cleanup EXIT
fail() {
  echo "out_of_tree_echo: FAILED: $*" >&2
  [ -f "$work/node.log" ] && sed 's/^/  node.log: /' "$work/node.log" >&2
  exit 1
}

KEEP=1 bash "$source/tests/sdk/out_of_tree.sh" "$build" "$source" >"$work/oot.log" 2>&1 ||
  { cat "$work/oot.log" >&2; fail "the out-of-tree build"; }
plugin_dir=$(sed -n 's/^plugin_dir=//p' "$work/oot.log" | tail -n 1)
oot_work=${plugin_dir%/build/plugins/echo}
[ -f "$plugin_dir/echo.so" ] || fail "no echo.so in $plugin_dir"

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" ||
  { cat "$work/install.log" >&2; fail "cmake --install"; }
[ -x "$work/prefix/bin/emsnode" ] || fail "the install has no bin/emsnode"
rm -rf "$work/prefix/lib/emsnode/plugins/echo"  # the node must load the out-of-tree build

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
while port_in_use "$port" || port_in_use $((port + 1)); do port=$((20000 + RANDOM % 20000)); done

cat >"$work/node.toml" <<TOML
[node]
id = "oot"
data_dir = "state"
[database]
migrate = true
[admin]
listen = "127.0.0.1:$((port + 1))"
[log]
console = false
file = "node.log"
[plugin_host]
dirs = ["$(dirname "$plugin_dir")"]
[plugins.echo]
listen = "127.0.0.1:$port"
TOML

"$work/prefix/bin/emsnode" --conf "$work/node.toml" &
node_pid=$!

echoed=""
for _ in $(seq 1 100); do
  if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
    printf 'out-of-tree' >&3
    read -r -t 2 -N 11 echoed <&3 || true
    exec 3>&-
    break
  fi
  sleep 0.1
done
[ "$echoed" = "out-of-tree" ] || fail "no echo from the out-of-tree plugin on port $port"
grep -q "plugin.loaded id=echo .*$plugin_dir" "$work/node.log" ||
  fail "the node did not log loading echo from $plugin_dir"

kill -TERM "$node_pid"
status=0
wait "$node_pid" || status=$?
node_pid=""
[ "$status" -eq 0 ] || fail "the node exited with $status after SIGTERM"
echo "out_of_tree_echo: ok (the installed node served echo built out of tree in $plugin_dir)"
