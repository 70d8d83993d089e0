#!/usr/bin/env bash
# Builds the MQTT decoder fuzzer with clang's libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, straight from the codec sources (the main build uses gcc), then
# runs it for a bounded time.
#
#   tests/fuzz/run.sh SECONDS [WORK_DIR]
#
# WORK_DIR (default: a fresh temporary directory) receives the binary, the corpus grown from
# the seeds in corpus/mqtt/ (which stay untouched) and any crash reproducer. Exit status 0 when
# no crash or invariant violation was found, 77 (a skip) when clang-14 is missing outside CI.
# Needs clang-14 and libclang-rt-14-dev.
set -euo pipefail

seconds=${1:?usage: run.sh SECONDS [WORK_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${2:-$(mktemp -d -t mqtt-fuzz.XXXXXX)}
mkdir -p "$work/corpus"
cxx=${CXX_FUZZ:-clang++-14}
if ! command -v "$cxx" > /dev/null; then
  # Exit status 77 is a skip for ctest; CI must have the fuzzer, so there it is a failure.
  echo "run.sh: $cxx not found: install clang-14 and libclang-rt-14-dev" \
    "(packaging/install-deps.sh)" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi

mq="$repo/plugins/mq"
binary="$work/mqtt_decoder_fuzzer"
sources=("$here/mqtt_decoder_fuzzer.cpp" "$mq/mqtt_codec.cpp" "$mq/mqtt_packet.cpp"
  "$mq/topic.cpp")
# Rebuilt only when a source changed.
if [ ! -x "$binary" ] || [ -n "$(find "${sources[@]}" "$mq"/*.hpp -newer "$binary")" ]; then
  echo "run.sh: building $binary"
  "$cxx" -std=c++17 -g -O1 -Wall -Wextra -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$mq" "${sources[@]}" -o "$binary"
fi

cd "$work"
# One worker: the build machines are shared. The dictionary steers mutations toward the
# protocol's fixed strings and property identifiers.
exec "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -dict="$here/mqtt.dict" -artifact_prefix="$work/" "$work/corpus" "$here/corpus/mqtt"
