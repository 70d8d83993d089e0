// A private PostgreSQL server for one test: a fresh cluster (initdb) in the test's folder, run as
// the `postgres` user (the server refuses root), listening on one address and port, optionally
// inside a network namespace of a NetLab. Stopped (immediately) when destroyed. The server can
// be restarted or stopped and started again by the test, as an operator or a crash would.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/netns.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

class PostgresServer {
 public:
  // The folder of Debian's server binaries (postgresql-15), or nullopt.
  static std::optional<std::filesystem::path> bin_dir() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      if (std::filesystem::exists(entry.path() / "bin" / "pg_ctl")) return entry.path() / "bin";
    }
    return std::nullopt;
  }

  // Why no server can be started here, or nullopt.
  static std::optional<std::string> unavailable() {
    if (!bin_dir()) return "PostgreSQL server binaries are missing (package postgresql)";
    if (::geteuid() != 0) return "starting PostgreSQL as the postgres user needs root";
    if (::access("/usr/sbin/runuser", X_OK) != 0) return "runuser is missing (package util-linux)";
    return std::nullopt;
  }

  // `host`: the lab host to run in (nullptr: this namespace, on `address`). `name` tells servers
  // of one test apart (their folders).
  PostgresServer(const TempDir& dir, std::string address, std::uint16_t port,
                 const NetLab::Host* host = nullptr, const std::string& name = "postgres")
      : PostgresServer(dir, std::move(address), port, host, name, nullptr) {}

  // A streaming standby of `primary` (pg_basebackup), listening on every address of its host, so
  // that it also answers on an address moved to its host when it is promoted.
  static std::unique_ptr<PostgresServer> standby_of(const PostgresServer& primary,
                                                    const NetLab::Host& host,
                                                    const std::string& name) {
    return std::unique_ptr<PostgresServer>(
        new PostgresServer(primary.dir_, host.address, primary.port_, &host, name, &primary));
  }

  ~PostgresServer() {
    try {
      stop("immediate");
    } catch (const std::exception&) {
      // Nothing else to do; the data folder goes with the test's.
    }
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  void start() {
    as_postgres({(bin_ / "pg_ctl").string(), "-D", data_.string(), "-l",
                 (root_ / "server.log").string(), "-w", "-t", "30", "-o",
                 "-c listen_addresses='" + listen_ + "' -c port=" + std::to_string(port_) +
                     " -c unix_socket_directories=" + sockets_.string() + " -c max_connections=200",
                 "start"});
  }
  // A standby becomes a primary (the way a PostgreSQL HA manager fails over).
  void promote() {
    as_postgres({(bin_ / "pg_ctl").string(), "-D", data_.string(), "-w", "promote"});
  }
  // mode: "fast" (an operator's stop: clients are disconnected, the server shuts down cleanly)
  // or "immediate" (as a crash: no checkpoint, recovery at the next start).
  void stop(const std::string& mode = "fast") {
    as_postgres({(bin_ / "pg_ctl").string(), "-D", data_.string(), "-m", mode, "-w", "stop"});
  }
  void restart(const std::string& mode = "fast") {
    stop(mode);
    start();
  }

  const std::string& address() const { return address_; }
  std::uint16_t port() const { return port_; }
  // A libpq URL for `database` as the superuser (trusted, no password).
  std::string url(const std::string& database) const {
    return "postgresql://postgres@" + address_ + ":" + std::to_string(port_) + "/" + database;
  }

  // Runs SQL through psql on the server's Unix socket (which works from any namespace).
  std::string psql(const std::string& sql, const std::string& database = "postgres") const {
    Completed done =
        run({(bin_ / "psql").string(), "-h", sockets_.string(), "-p", std::to_string(port_), "-U",
             "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql},
            dir_.path(), std::chrono::seconds(30));
    if (done.status != 0) throw std::runtime_error("psql `" + sql + "` failed: " + done.err);
    return done.out;
  }

 private:
  PostgresServer(const TempDir& dir, std::string address, std::uint16_t port,
                 const NetLab::Host* host, const std::string& name, const PostgresServer* primary)
      : dir_(dir),
        bin_(*bin_dir()),
        address_(std::move(address)),
        port_(port),
        listen_(primary ? "*" : address_),
        netns_(host ? std::optional<NetLab::Host>(*host) : std::nullopt),
        root_(dir.path() / name),
        data_(root_ / "data"),
        sockets_(root_ / "run") {
    // The server runs as postgres: it must reach its folders through the test's private one.
    std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all |
                                                  std::filesystem::perms::group_exec |
                                                  std::filesystem::perms::others_exec);
    std::filesystem::create_directories(data_);
    std::filesystem::permissions(data_, std::filesystem::perms::owner_all);  // as the server asks
    std::filesystem::create_directories(sockets_);
    as_postgres({"/usr/bin/chown", "-R", "postgres:postgres", root_.string()}, false);
    if (primary) {
      // -R writes standby.signal and the connection to the primary.
      as_postgres({(bin_ / "pg_basebackup").string(), "-h", primary->address_, "-p",
                   std::to_string(primary->port_), "-U", "postgres", "-D", data_.string(), "-R",
                   "-X", "stream", "-c", "fast"});
    } else {
      as_postgres({(bin_ / "initdb").string(), "-D", data_.string(), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"});
      // Any address of the lab may connect, and a standby may stream; the server listens only
      // on its own address.
      dir_.write(data_ / "pg_hba.conf",
                 "local all all trust\nhost all all 0.0.0.0/0 trust\n"
                 "host replication all 0.0.0.0/0 trust\n");
      as_postgres({"/usr/bin/chown", "postgres:postgres", (data_ / "pg_hba.conf").string()}, false);
    }
    start();
  }

  void as_postgres(std::vector<std::string> argv, bool switch_user = true) const {
    if (switch_user) argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
    if (netns_) argv = NetLab::inside(*netns_, std::move(argv));
    std::string text;
    for (const auto& a : argv) text += " " + a;
    Completed done = run(std::move(argv), dir_.path(), std::chrono::seconds(60));
    if (done.status != 0) {
      throw std::runtime_error("PostgreSQL:" + text + " failed: " + done.err + done.out +
                               read_file(root_ / "server.log"));
    }
  }

  const TempDir& dir_;
  std::filesystem::path bin_;
  std::string address_;
  std::uint16_t port_;
  std::string listen_;
  std::optional<NetLab::Host> netns_;
  std::filesystem::path root_;
  std::filesystem::path data_;
  std::filesystem::path sockets_;
};

}  // namespace emsnode::testing
