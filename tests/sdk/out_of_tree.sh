#!/usr/bin/env bash
# Builds the echo example out of tree against the installed SDK, as a third party would:
# installs the `sdk` component of <build dir> into a temporary prefix, checks the pkg-config
# module compiles the headers on their own, configures the installed copy of the example
# (<prefix>/share/emsnode-sdk/examples/echo) standalone with -DCMAKE_PREFIX_PATH=<prefix> and
# -DECHO_BUILD_TESTS=ON, builds it and runs its unit tests, checks the plugin directory it
# produced and runs the installed emsnode-plugin-check on it, and checks that emsnode_add_plugin
# refuses a manifest written for another ABI.
#
# Usage: out_of_tree.sh <build dir> <source dir>
# The last line of output is plugin_dir=<path>. Everything lives under /tmp/emsnode-oot-<pid>,
# removed on exit unless KEEP=1.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <build dir> <source dir>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
source=$(cd "$2" && pwd)
work=/tmp/emsnode-oot-$$
prefix=$work/prefix
# The copy the SDK installs, as a third party gets it; the source tree's is checked against it.
example=$prefix/share/emsnode-sdk/examples/echo

cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "out_of_tree: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
fail() {
  echo "out_of_tree: FAILED: $*" >&2
  exit 1
}
step() { echo "out_of_tree: $*"; }

mkdir -p "$work"

step "installing the SDK from $build into $prefix"
cmake --install "$build" --prefix "$prefix" --component sdk >"$work/install.log" ||
  { cat "$work/install.log" >&2; fail "cmake --install"; }
for f in include/emsnode/plugin_abi.h include/emsnode/plugin.hpp \
         include/emsnode/listen_address.hpp include/emsnode/testing/fake_host.hpp \
         lib/cmake/EmsnodeSDK/EmsnodeSDKConfig.cmake \
         lib/cmake/EmsnodeSDK/EmsnodeSDKConfigVersion.cmake \
         lib/cmake/EmsnodeSDK/EmsnodeSDKTargets.cmake \
         lib/cmake/EmsnodeSDK/EmsnodePlugin.cmake \
         lib/pkgconfig/emsnode-sdk.pc bin/emsnode-plugin-check \
         share/emsnode-sdk/examples/echo/CMakeLists.txt \
         share/emsnode-sdk/examples/echo/tests/echo_test.cpp; do
  [ -f "$prefix/$f" ] || fail "the install lacks $f"
done

step "compiling the headers with nothing but pkg-config's flags"
cflags=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags emsnode-sdk) ||
  fail "pkg-config cannot read emsnode-sdk.pc"
for header in plugin.hpp listen_address.hpp testing/fake_host.hpp; do
  printf '#include <emsnode/%s>\n' "$header" |
    c++ -std=c++17 -Wall -Wextra -Werror $cflags -fsyntax-only -x c++ - ||
    fail "the installed emsnode/$header does not compile on its own with: $cflags"
done

step "configuring $example against $prefix"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
diff -r "$source/sdk/examples/echo" "$example" >/dev/null ||
  fail "the installed example differs from $source/sdk/examples/echo"
cmake -S "$example" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" -DECHO_BUILD_TESTS=ON >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log" >&2; fail "configure"; }
grep -q "EmsnodeSDK_DIR:PATH=$prefix/lib/cmake/EmsnodeSDK" "$work/build/CMakeCache.txt" ||
  fail "find_package(EmsnodeSDK) did not pick the package installed in $prefix"

step "building"
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; fail "build"; }

step "running the example's unit tests"
ctest --test-dir "$work/build" --output-on-failure >"$work/test.log" 2>&1 ||
  { cat "$work/test.log" >&2; fail "the example's unit tests"; }
grep -q "100% tests passed" "$work/test.log" || { cat "$work/test.log" >&2; fail "no test ran"; }

id=$(sed -n 's/^id *= *"\([^"]*\)".*/\1/p' "$example/plugin.toml" | head -n 1)
plugin_dir=$work/build/plugins/$id
[ -f "$plugin_dir/$id.so" ] || fail "no $plugin_dir/$id.so"
[ -f "$plugin_dir/plugin.toml" ] || fail "no $plugin_dir/plugin.toml"
cmp -s "$plugin_dir/plugin.toml" "$example/plugin.toml" || fail "plugin.toml differs from $example"
exported=$(nm -D --defined-only "$plugin_dir/$id.so" | awk '{ print $NF }' | tr '\n' ' ')
[ "$exported" = "emsnode_plugin_entry " ] ||
  fail "$id.so must export emsnode_plugin_entry and nothing else; it exports: $exported"

step "checking the plugin with the installed emsnode-plugin-check"
"$prefix/bin/emsnode-plugin-check" "$plugin_dir" >"$work/check.log" 2>&1 ||
  { cat "$work/check.log" >&2; fail "emsnode-plugin-check $plugin_dir"; }
tail -n 1 "$work/check.log" | grep -q "^PASS $id " ||
  { cat "$work/check.log" >&2; fail "emsnode-plugin-check did not pass $id"; }

step "checking that emsnode_add_plugin refuses a manifest for another ABI major"
cp -r "$example" "$work/wrong-abi"
sed -i 's/^abi *= *".*"/abi = "999.0"/' "$work/wrong-abi/plugin.toml"
if cmake -S "$work/wrong-abi" -B "$work/wrong-abi-build" -DCMAKE_PREFIX_PATH="$prefix" \
     >"$work/wrong-abi.log" 2>&1; then
  fail "a plugin.toml with abi = \"999.0\" was accepted"
fi
grep -q 'abi = "999.0", but this SDK' "$work/wrong-abi.log" ||
  { cat "$work/wrong-abi.log" >&2; fail "the refusal of abi = \"999.0\" does not say why"; }

step "ok"
echo "plugin_dir=$plugin_dir"
