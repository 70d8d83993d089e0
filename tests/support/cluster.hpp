// Several real emsnode processes on this host sharing one database (a SQLite file, as
// conf/examples/two-node-sqlite runs them, or the [database] keys a test gives: PostgreSQL) and
// one share directory: for integration tests and benchmarks.
// Every node has its own data dir, backup dir, admin port and log file; by default all of them
// enable the echo plugin on one shared service address, which only the active binds. Per node,
// a test may give an echo port of its own, another id (a duplicate), another backup dir,
// migrate = false and more TOML (hooks, plugins). Ports are reserved against the other tests
// running at the same time (PortReservation).
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdint>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::testing {

// What a node's admin endpoint says in GET /status (the top-level fields a test asserts on).
struct NodeStatus {
  bool answered = false;
  std::string role;
  std::uint64_t epoch = 0;
  std::string not_active_reason;
  bool paused = false;
  std::string lease_holder;
  std::uint64_t lease_epoch = 0;
  std::string last_transition_reason;  // empty before the first transition
};

namespace cluster_detail {

// The raw value of `"key":` in `json` from `from` on: a string's contents (the node ids and
// reasons the tests compare contain no escapes) or a number's or literal's text.
inline std::string json_value(const std::string& json, const std::string& key,
                              std::size_t from = 0) {
  const std::string quoted = "\"" + key + "\":";
  const std::size_t at = json.find(quoted, from);
  if (at == std::string::npos) return "";
  std::size_t begin = at + quoted.size();
  if (begin < json.size() && json[begin] == '"') {
    ++begin;
    return json.substr(begin, json.find('"', begin) - begin);
  }
  return json.substr(begin, json.find_first_of(",}", begin) - begin);
}

inline std::uint64_t to_number(const std::string& text) {
  return text.empty() ? 0 : std::stoull(text);
}

}  // namespace cluster_detail

// Reads the top-level fields of a GET /status body.
inline NodeStatus parse_status(const std::string& json) {
  using cluster_detail::json_value;
  // The node list that follows has fields of the same names.
  const std::string top = json.substr(0, json.find("\"nodes\":"));
  NodeStatus status;
  status.answered = !top.empty();
  status.role = json_value(top, "role");
  status.epoch = cluster_detail::to_number(json_value(top, "epoch"));
  status.not_active_reason = json_value(top, "not_active_reason");
  status.paused = json_value(top, "paused") == "true";
  status.lease_holder = json_value(top, "lease_holder");
  status.lease_epoch = cluster_detail::to_number(json_value(top, "lease_epoch"));
  const std::size_t transition = top.find("\"last_transition\":{");
  if (transition != std::string::npos) {
    status.last_transition_reason = json_value(top, "reason", transition);
  }
  return status;
}

class Cluster {
 public:
  // What one node's config says beyond what every node of the cluster has.
  struct NodeOptions {
    std::string id;                    // [node] id; empty: the node's name (node1, node2, ...)
    bool own_echo_port = false;        // an echo port of its own, not the shared one
    bool migrate = true;               // [database] migrate
    std::filesystem::path backup_dir;  // [node] backup_dir; empty: the default in its data dir
    std::string extra;                 // TOML appended: more sections ([role], plugins)
  };

  struct Node {
    std::string name;  // node<N>: names its config, log and data dir in the cluster's folder
    std::string id;
    std::filesystem::path conf;
    std::filesystem::path log;
    std::filesystem::path data_dir;
    std::uint16_t admin_port = 0;
    std::uint16_t echo_port = 0;
    std::unique_ptr<Process> process;
    bool exit_expected = false;  // the test stopped it, or expects it to exit
  };

  // `options(i)` tells node i apart from the others (nullptr: nothing does).
  Cluster(std::string emsnode, const TempDir& dir, std::size_t size,
          const std::function<NodeOptions(std::size_t)>& options = nullptr)
      : Cluster(std::move(emsnode), dir, std::string(), size, options) {}
  // `database`: the [database] keys every node gets (without `migrate`); empty for the SQLite
  // file database().
  Cluster(std::string emsnode, const TempDir& dir, std::string database, std::size_t size,
          const std::function<NodeOptions(std::size_t)>& options = nullptr)
      : emsnode_(std::move(emsnode)),
        dir_(dir),
        database_(database.empty() ? "path = \"" + this->database().string() + "\"\n"
                                   : std::move(database)),
        echo_port_(reserve_port()) {
    for (std::size_t i = 0; i < size; ++i) add(options ? options(i) : NodeOptions{});
  }

  // When a REQUIRE failed (the test is unwinding), prints the end of every node's log and its
  // standard error: what the nodes saw is the first thing to read.
  ~Cluster() {
    if (std::uncaught_exceptions() == 0) return;
    for (const Node& node : nodes_) {
      if (node.process) std::cerr << "---- " << node.name << " stderr:\n" << node.process->err();
      const std::string log = read_file(node.log);
      std::size_t from = log.size();
      int lines = 0;  // the last line's newline counts too
      while (from > 0 && !(log[from - 1] == '\n' && ++lines > kLogLinesShown)) --from;
      std::cerr << "---- " << node.name << " (" << node.log.string() << "), last lines:\n"
                << log.substr(from) << '\n';
    }
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Adds a node (not started) named node<size() + 1>; returns its index.
  std::size_t add(const NodeOptions& options) {
    Node node;
    node.name = "node" + std::to_string(nodes_.size() + 1);
    node.id = options.id.empty() ? node.name : options.id;
    node.admin_port = reserve_port();
    node.echo_port = options.own_echo_port ? reserve_port() : echo_port_;
    node.log = dir_.path() / (node.name + ".log");
    node.data_dir = dir_.path() / node.name;
    node.conf = dir_.write(node.name + ".toml", config_of(node, options));
    nodes_.push_back(std::move(node));
    return nodes_.size() - 1;
  }

  std::size_t size() const { return nodes_.size(); }
  Node& operator[](std::size_t i) { return nodes_.at(i); }
  std::uint16_t echo_port() const { return echo_port_; }
  std::filesystem::path database() const { return dir_.path() / "cluster.db"; }
  static constexpr const char* kToken = "test-token-0123456789";

  // Starts node i, or starts it again after it stopped (its log file is appended to).
  void start(std::size_t i) {
    nodes_.at(i).exit_expected = false;
    nodes_[i].process = std::make_unique<Process>(
        std::vector<std::string>{emsnode_, "--conf", nodes_[i].conf.string()}, dir_.path());
  }
  void start_all() {
    for (std::size_t i = 0; i < size(); ++i) start(i);
  }
  void signal(std::size_t i, int sig) { nodes_.at(i).process->signal(sig); }
  // Node i is expected to exit (a refused start): single_active() does not wait for it.
  void expect_exit(std::size_t i) { nodes_.at(i).exit_expected = true; }
  // Kills node i (SIGKILL) and reaps it.
  void kill(std::size_t i) {
    expect_exit(i);
    signal(i, SIGKILL);
    nodes_[i].process->wait(std::chrono::seconds(10));
  }
  // Stops node i as an operator does (SIGTERM); its exit status, or nullopt after `timeout`.
  std::optional<int> stop(std::size_t i,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    expect_exit(i);
    signal(i, SIGTERM);
    return nodes_[i].process->wait(timeout);
  }
  bool running(std::size_t i) { return nodes_.at(i).process && nodes_[i].process->running(); }

  // What node i's admin endpoint answers; status 0 when it does not answer.
  HttpReply admin(std::size_t i, const std::string& method, const std::string& path,
                  const std::string& body = "") const {
    return http_request(nodes_.at(i).admin_port, method, path, body, kToken);
  }
  bool is_active(std::size_t i) const { return admin(i, "GET", "/healthz/active").status == 200; }
  NodeStatus status(std::size_t i) const {
    const HttpReply reply = admin(i, "GET", "/status");
    return reply.status == 200 ? parse_status(reply.body) : NodeStatus{};
  }

  // Runs the emsnode CLI against node i's config: `emsnode VERB... --conf nodeN.toml`.
  Completed cli(std::size_t i, std::vector<std::string> verb) const {
    verb.insert(verb.begin(), emsnode_);
    verb.push_back("--conf");
    verb.push_back(nodes_.at(i).conf.string());
    return run(std::move(verb), dir_.path(), std::chrono::seconds(15));
  }

  // The nodes whose admin endpoint says they are active.
  std::vector<std::size_t> actives() {
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < size(); ++i) {
      if (running(i) && is_active(i)) found.push_back(i);
    }
    return found;
  }
  // Whether node i answers an echo round-trip on its echo port.
  bool serves_echo(std::size_t i) const {
    return echo_roundtrip(nodes_.at(i).echo_port, "ping") == "ping";
  }
  // The one active node now: every node started answers (unless the test stopped it), exactly
  // one says it is active, and that one serves its echo port. Nullopt otherwise, and for good
  // when a node died on its own.
  std::optional<std::size_t> single_active() {
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < size(); ++i) {
      if (!nodes_[i].process) continue;
      if (!running(i)) {
        if (nodes_[i].exit_expected) continue;
        return std::nullopt;
      }
      const int healthz = admin(i, "GET", "/healthz/active").status;
      if (healthz == 0) return std::nullopt;
      if (healthz == 200) found.push_back(i);
    }
    if (found.size() != 1 || !serves_echo(found.front())) return std::nullopt;
    return found.front();
  }
  // The one active node (single_active()), once there is one within `timeout`.
  std::optional<std::size_t> await_single_active(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::optional<std::size_t> active;
    eventually([&] { return (active = single_active()).has_value(); }, timeout);
    return active;
  }
  // Whether node i becomes the one active node (single_active()) within `timeout`.
  bool await_active(std::size_t i, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return eventually([&] { return single_active() == i; }, timeout);
  }
  // Every running node answers on its admin port (it has started, passive or active).
  bool await_all_up(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return eventually(
        [&] {
          for (std::size_t i = 0; i < size(); ++i) {
            if (running(i) && admin(i, "GET", "/healthz/active").status == 0) return false;
          }
          return true;
        },
        timeout);
  }
  // Node i is up and passive, and has read the lease held by another node (reason lease_held).
  bool await_passive(std::size_t i, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return eventually(
        [&] {
          const NodeStatus s = status(i);
          return s.role == "passive" && s.not_active_reason == "lease_held";
        },
        timeout);
  }

  std::string log_of(std::size_t i) const { return read_file(nodes_.at(i).log); }

 private:
  std::string config_of(const Node& node, const NodeOptions& options) const {
    std::string backup_dir;
    if (!options.backup_dir.empty()) {
      backup_dir = "backup_dir = \"" + options.backup_dir.string() + "\"\n";
    }
    return "[node]\nid = \"" + node.id + "\"\ndata_dir = \"" + node.data_dir.string() + "\"\n" +
           backup_dir + "\n[database]\n" + database_ +
           "migrate = " + (options.migrate ? "true" : "false") + "\n\n[store]\npath = \"" +
           (dir_.path() / "share").string() + "\"\n\n[log]\nconsole = false\nfile = \"" +
           node.log.string() +
           "\"\n\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(node.admin_port) +
           "\"\ntoken = \"" + kToken +
           "\"\n\n[plugins.echo]\nlisten = \"127.0.0.1:" + std::to_string(node.echo_port) +
           "\"\n\n" + options.extra;
  }

  static constexpr int kLogLinesShown = 40;

  std::uint16_t reserve_port() {
    ports_.push_back(std::make_unique<PortReservation>());
    return ports_.back()->port();
  }

  std::string emsnode_;
  const TempDir& dir_;
  std::string database_;  // the [database] keys but `migrate`
  // Released after the nodes are gone (members are destroyed in reverse order).
  std::vector<std::unique_ptr<PortReservation>> ports_;
  std::uint16_t echo_port_;
  std::vector<Node> nodes_;
};

// Polls `holds` for `duration` (every 20 ms); false as soon as it is false once.
template <typename Predicate>
bool holds_for(Predicate holds, std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
    if (!holds()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return holds();
}

}  // namespace emsnode::testing
