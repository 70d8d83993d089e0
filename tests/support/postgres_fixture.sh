#!/usr/bin/env bash
# A private PostgreSQL server for tests, run as the postgres user (the server refuses root) on a
# loopback port of its own, with its data in a temporary folder. The test run's server is a ctest
# fixture (tests/CMakeLists.txt: `start` before the `pg: ` tests, `destroy` after); a test that
# must stop and restart a server (a lost connection, a node started before its database) starts
# one of its own with the same commands.
#
#   postgres_fixture.sh start STATE_DIR         initdb + start; STATE_DIR/url receives the URL
#   postgres_fixture.sh stop-server STATE_DIR   stops the server at once (data kept)
#   postgres_fixture.sh start-server STATE_DIR  starts it again on the same port
#   postgres_fixture.sh destroy STATE_DIR       stops it and removes its data
#
# The server trusts loopback connections, except for the role emsnode_pw, which must give the
# password in STATE_DIR/password (scram-sha-256), so that password authentication is tested too.
# fsync is off (a crash of the test machine loses nothing a test needs), synchronous_commit is
# not: a test that stops the server at once must find every acknowledged commit after it.
#
# Without the server binaries or without root, `start` fails when CI=true, and otherwise writes
# "unavailable: <why>" into STATE_DIR/url and exits 77 (ctest's SKIP_RETURN_CODE), and the tests
# that need the server skip with that reason.
set -euo pipefail

command=${1:?usage: postgres_fixture.sh start|stop-server|start-server|destroy STATE_DIR}
state=${2:?usage: postgres_fixture.sh $command STATE_DIR}
mkdir -p "$state"
state=$(cd "$state" && pwd)

readonly ports_dir=${TMPDIR:-/tmp}/emsnode-test-ports
readonly first_port=20000 last_port=32000

as_postgres() { runuser -u postgres -- "$@"; }

bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [[ -x $dir/pg_ctl && -x $dir/initdb ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

unavailable() {
  if [[ ${CI:-} == true ]]; then
    echo "postgres_fixture: FAILED: $1 (CI=true: the PostgreSQL tests must run in CI)" >&2
    exit 1
  fi
  echo "unavailable: $1" >"$state/url"
  echo "postgres_fixture: SKIPPED: $1; the pg: tests skip" >&2
  exit 77
}

# The data dir of the server this state dir started, if any.
data_dir() { [[ -f $state/datadir ]] && cat "$state/datadir"; }

stop_server() {
  local data
  data=$(data_dir) || return 0
  if [[ -f $data/postmaster.pid ]]; then
    # Immediate: the tests' databases need no clean shutdown, and a test that stops the server
    # wants the connections cut as a crash would cut them.
    as_postgres "$(bin_dir)/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
  fi
}

start_server() {
  local data
  data=$(data_dir)
  as_postgres "$(bin_dir)/pg_ctl" -D "$data" -l "$data/../server.log" -w -t 60 start >/dev/null
}

# A port in the tests' range that no other test process has reserved (support/net.hpp) and that
# is free; its lock file is held on fd 9 until the server listens on it.
reserve_port() {
  mkdir -p "$ports_dir"
  local attempt port
  for ((attempt = 0; attempt < 200; attempt++)); do
    port=$((first_port + RANDOM % (last_port - first_port + 1)))
    exec 9>"$ports_dir/$port.lock"
    if flock -n 9 && ! (: >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    exec 9>&-
  done
  echo "postgres_fixture: no free port in $first_port..$last_port" >&2
  return 1
}

start() {
  local bin
  bin=$(bin_dir) || unavailable "the PostgreSQL server binaries are missing (package postgresql)"
  [[ $(id -u) -eq 0 ]] || unavailable "starting PostgreSQL as the postgres user needs root"
  command -v runuser >/dev/null || unavailable "runuser is missing (package util-linux)"
  id postgres >/dev/null 2>&1 || unavailable "there is no postgres user (package postgresql)"

  # What an earlier run of this state dir left (a killed ctest) goes first.
  stop_server || true
  if [[ -f $state/root ]]; then rm -rf "$(cat "$state/root")"; fi
  rm -f "$state/url" "$state/datadir" "$state/root"

  local root data port password
  root=$(mktemp -d "${TMPDIR:-/tmp}/emsnode-pg.XXXXXX")
  chmod 755 "$root"
  data=$root/data
  mkdir -p "$data" "$root/sockets"
  chown -R postgres:postgres "$root"
  echo "$root" >"$state/root"
  echo "$data" >"$state/datadir"
  password=emsnode-test-$RANDOM$RANDOM
  echo "$password" >"$state/password"

  as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$root/initdb.log" 2>&1 || { cat "$root/initdb.log" >&2; exit 1; }
  cat >"$data/pg_hba.conf" <<EOF
local all all trust
host all emsnode_pw 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
EOF
  port=$(reserve_port)
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root/sockets'
max_connections = 300
fsync = off
full_page_writes = off
password_encryption = 'scram-sha-256'
EOF
  start_server
  exec 9>&-
  rm -f "$ports_dir/$port.lock"
  as_postgres "$bin/psql" -h "$root/sockets" -p "$port" -U postgres -d postgres -qAt \
    -c "CREATE ROLE emsnode_pw LOGIN CREATEDB PASSWORD '$password'" >/dev/null
  echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$state/url"
  echo "postgres_fixture: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on" \
    "127.0.0.1:$port, data in $data"
}

case $command in
  start) start ;;
  stop-server) stop_server ;;
  start-server) start_server ;;
  destroy)
    stop_server || true
    if [[ -f $state/root ]]; then rm -rf "$(cat "$state/root")"; fi
    rm -f "$state/url" "$state/datadir" "$state/root" "$state/password"
    ;;
  *)
    echo "postgres_fixture: unknown command $command" >&2
    exit 2
    ;;
esac
