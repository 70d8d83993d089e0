#!/usr/bin/env bash
# Installs what building and testing emsnode needs on Debian 12, and nothing already present.
# Idempotent: run it as often as you like. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libboost-log-dev libboost-program-options-dev libboost-filesystem-dev
  libsqlite3-dev libuv1-dev libtomlplusplus-dev catch2 libssl-dev nlohmann-json3-dev
  curl procps
  samba smbnetfs fuse3
  postgresql libpq-dev
  clang-14 libclang-rt-14-dev
  iproute2 nftables faketime
  mosquitto
  mosquitto-clients python3-paho-mqtt python3 openssl sqlite3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
