// A cluster spread over several hosts: PostgreSQL on a lab host of its own, each emsnode node on
// its own host, and one client host from which the test talks to the nodes (admin endpoint and
// services), as users and load balancers would. Every node listens on its own address with the
// same ports; only the active binds its service ports. The nodes share a store folder (the
// machine's filesystem stands in for the network share; the database is what crosses the lab's
// network).
//
// A node may run with its wall clock stepped (libfaketime, package faketime): its monotonic clock
// is left alone, as a real clock step leaves it.
#pragma once

#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/net.hpp"
#include "support/netns.hpp"
#include "support/postgres_server.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

class NetCluster {
 public:
  static constexpr std::uint16_t kAdminPort = 8440;
  static constexpr std::uint16_t kEchoPort = 18013;
  static constexpr std::uint16_t kPostgresPort = 5432;
  static constexpr const char* kToken = "test-token-0123456789";
  static constexpr const char* kDatabase = "emsnode";
  static constexpr const char* kFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

  struct Node {
    std::string id;  // node1, node2, ...
    const NetLab::Host* host = nullptr;
    std::filesystem::path conf;
    std::filesystem::path log;
    std::filesystem::path clock;  // libfaketime's offset file: "+0" when the clock is true
    std::unique_ptr<Process> process;
    bool exit_expected = false;
  };

  // Why a cluster cannot run here, or nullopt.
  static std::optional<std::string> unavailable() {
    if (auto why = NetLab::unavailable()) return why;
    if (auto why = PostgresServer::unavailable()) return why;
    return std::nullopt;
  }

  // `extra`: TOML appended to every node's config (plugins, [role] timers). `steppable_clocks`:
  // the nodes run under libfaketime so that step_clock() works (not under AddressSanitizer,
  // whose runtime must be the first library loaded).
  NetCluster(std::string emsnode, const TempDir& dir, std::size_t size,
             const std::string& extra = "", bool steppable_clocks = false)
      : emsnode_(std::move(emsnode)),
        steppable_clocks_(steppable_clocks && can_step_clocks()),
        dir_(dir),
        db_host_(lab_.add_host("db")),
        client_(lab_.add_host("client")),
        postgres_(dir, db_host_.address, kPostgresPort, &db_host_) {
    postgres_.psql(std::string("CREATE DATABASE ") + kDatabase);
    std::filesystem::create_directories(tmp_);
    for (std::size_t i = 0; i < size; ++i) {
      Node node;
      node.id = "node" + std::to_string(i + 1);
      node.host = &lab_.add_host(node.id);
      node.log = dir_.path() / (node.id + ".log");
      node.clock = dir_.write(node.id + ".clock", "+0\n");
      node.conf = dir_.write(node.id + ".toml", config_of(node, extra));
      nodes_.push_back(std::move(node));
    }
  }

  // When a REQUIRE failed, the end of every node's log is the first thing to read.
  ~NetCluster() {
    if (std::uncaught_exceptions() == 0) return;
    for (const Node& node : nodes_) {
      const std::string log = read_file(node.log);
      std::cerr << "---- " << node.id << " log (last 3000 bytes):\n"
                << log.substr(log.size() > 3000 ? log.size() - 3000 : 0) << '\n';
      if (node.process) std::cerr << "---- " << node.id << " stderr:\n" << node.process->err();
    }
  }
  NetCluster(const NetCluster&) = delete;
  NetCluster& operator=(const NetCluster&) = delete;

  std::size_t size() const { return nodes_.size(); }
  Node& operator[](std::size_t i) { return nodes_.at(i); }
  NetLab& lab() { return lab_; }
  const NetLab::Host& client() const { return client_; }
  const NetLab::Host& db_host() const { return db_host_; }
  PostgresServer& postgres() { return postgres_; }

  void start(std::size_t i) {
    Node& node = nodes_.at(i);
    node.exit_expected = false;
    // A temporary folder of the cluster's own, as each host has: a node keeps its identity lock
    // there, and clusters of other tests on this machine use the same addresses and node ids.
    std::vector<std::string> env = {"TMPDIR=" + tmp_.string()};
    if (steppable_clocks_) {
      env.insert(env.end(), {std::string("LD_PRELOAD=") + kFaketime,
                             "FAKETIME_TIMESTAMP_FILE=" + node.clock.string(),
                             "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"});
    }
    node.process = std::make_unique<Process>(
        NetLab::inside(*node.host, {emsnode_, "--conf", node.conf.string()}), dir_.path(), env);
  }
  // Whether step_clock() works here (libfaketime is installed).
  static bool can_step_clocks() { return ::access(kFaketime, R_OK) == 0; }
  void start_all() {
    for (std::size_t i = 0; i < size(); ++i) start(i);
  }
  bool running(std::size_t i) { return nodes_.at(i).process && nodes_[i].process->running(); }
  void signal(std::size_t i, int sig) { nodes_.at(i).process->signal(sig); }
  void kill(std::size_t i) {
    nodes_.at(i).exit_expected = true;
    signal(i, SIGKILL);
    nodes_[i].process->wait(std::chrono::seconds(10));
  }
  std::optional<int> stop(std::size_t i) {
    nodes_.at(i).exit_expected = true;
    signal(i, SIGTERM);
    return nodes_[i].process->wait(std::chrono::seconds(15));
  }
  // Steps node i's wall clock to `offset_s` seconds from the true time (the node reads it
  // within a second). Needs steppable_clocks.
  void step_clock(std::size_t i, long offset_s) {
    dir_.write(nodes_.at(i).clock, (offset_s >= 0 ? "+" : "") + std::to_string(offset_s) + "\n");
  }

  // Node i's admin endpoint, asked from the client host; status 0 when it does not answer.
  HttpReply admin(std::size_t i, const std::string& method, const std::string& path,
                  int timeout_ms = 1000) {
    return lab_.from(client_, [&] {
      return http_request(nodes_.at(i).host->address, kAdminPort, method, path, "", kToken,
                          timeout_ms);
    });
  }
  NodeStatus status(std::size_t i) {
    const HttpReply reply = admin(i, "GET", "/status");
    return reply.status == 200 ? parse_status(reply.body) : NodeStatus{};
  }
  bool is_active(std::size_t i) { return admin(i, "GET", "/healthz/active").status == 200; }
  // An echo round-trip with node i's service port, from the client host.
  bool serves_echo(std::size_t i, int timeout_ms = 1000) {
    return lab_.from(client_, [&] {
      return echo_roundtrip(nodes_.at(i).host->address, kEchoPort, "ping", timeout_ms);
    }) == std::optional<std::string>("ping");
  }

  // The one active node: every running node answers, exactly one says it is active, and it
  // serves its echo port. Nullopt otherwise.
  std::optional<std::size_t> single_active() {
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < size(); ++i) {
      if (!nodes_[i].process || !running(i)) {
        if (nodes_[i].exit_expected || !nodes_[i].process) continue;
        return std::nullopt;
      }
      const int healthz = admin(i, "GET", "/healthz/active").status;
      if (healthz == 0) return std::nullopt;
      if (healthz == 200) found.push_back(i);
    }
    if (found.size() != 1 || !serves_echo(found.front())) return std::nullopt;
    return found.front();
  }
  std::optional<std::size_t> await_single_active(
      std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    std::optional<std::size_t> active;
    eventually([&] { return (active = single_active()).has_value(); }, timeout);
    return active;
  }
  // Node i is up and passive behind another node's lease.
  bool await_passive(std::size_t i, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    return eventually(
        [&] {
          const NodeStatus s = status(i);
          return s.role == "passive" && s.not_active_reason == "lease_held";
        },
        timeout);
  }

  std::string log_of(std::size_t i) const { return read_file(nodes_.at(i).log); }

 private:
  std::string config_of(const Node& node, const std::string& extra) const {
    const std::string& address = node.host->address;
    return "[node]\nid = \"" + node.id + "\"\ndata_dir = \"" + (dir_.path() / node.id).string() +
           "\"\n\n[database]\nbackend = \"postgresql\"\nurl = \"" + postgres_.url(kDatabase) +
           "\"\nmigrate = true\nconnect_timeout = \"1s\"\nstatement_timeout = \"1s\"\n"
           // The test's server, in a namespace of its own, has no certificate.
           "sslmode = \"disable\"\ninsecure = true\n\n"
           "[store]\npath = \"" +
           (dir_.path() / "share").string() + "\"\n\n[log]\nconsole = false\nfile = \"" +
           node.log.string() + "\"\n\n[admin]\nlisten = \"" + address + ":" +
           std::to_string(kAdminPort) + "\"\ntoken = \"" + kToken +
           // Plain HTTP on the lab's private links, on purpose: these tests probe failover, and
           // the endpoint's TLS has tests of its own (tests/security).
           "\"\ninsecure = true\n\n[plugins.echo]\nlisten = \"" + address + ":" +
           std::to_string(kEchoPort) + "\"\n\n" + extra;
  }

  std::string emsnode_;
  bool steppable_clocks_;
  const TempDir& dir_;
  NetLab lab_;
  const NetLab::Host& db_host_;
  const NetLab::Host& client_;
  PostgresServer postgres_;
  std::filesystem::path tmp_ = dir_.path() / "tmp";
  std::vector<Node> nodes_;
};

}  // namespace emsnode::testing
