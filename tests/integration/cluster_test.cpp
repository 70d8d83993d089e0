// Clusters of real emsnode processes on one host, sharing a database (SQLite, or PostgreSQL in the
// pg: variant): failover, fencing, operator commands, hooks and refusals, as an operator would
// watch them (admin endpoint, CLI, logs, the service port) with the default [role] timers. Tests
// that reach into the SQLite file or its same-host fast path are tagged [sqlite]; those that stop
// a PostgreSQL server under the nodes, [postgresql].
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <regex>
#include <sstream>

#include "integration/sqlite_file.hpp"
#include "support/cluster.hpp"
#include "support/private_postgres.hpp"
#include "support/sanitizers.hpp"
#include "support/skip.hpp"
#include "support/test_postgres.hpp"
#include "support/unwritable.hpp"

using namespace std::chrono_literals;
using emsnode::testing::Cluster;
using emsnode::testing::echo_roundtrip;
using emsnode::testing::eventually;
using emsnode::testing::holds_for;
using emsnode::testing::NodeDatabase;
using emsnode::testing::NodeStatus;
using emsnode::testing::PrivatePostgres;
using emsnode::testing::read_file;
using emsnode::testing::SqliteFile;
using emsnode::testing::TempDir;
using emsnode::testing::Unwritable;
using emsnode::testing::unwritable_unsupported;
using Clock = std::chrono::steady_clock;

namespace {

// The default [role] timers, which every test runs with.
constexpr auto kLeaseTtl = 2000ms;
constexpr auto kRenewDeadline = 1200ms;

// Nodes with an echo port each (instead of one shared address): a probe on a node's own port can
// only be answered by that node.
Cluster::NodeOptions own_echo_port(std::size_t) {
  Cluster::NodeOptions options;
  options.own_echo_port = true;
  return options;
}

// Enables the writer test plugin (tests/integration/plugins/writer).
const std::string kWriterPlugin = "[plugin_host]\ndirs = [\"" +
                                  std::string(EMSNODE_CLUSTER_PLUGIN_DIR) +
                                  "\"]\n\n[plugins.writer]\nperiod = \"20ms\"\n";

enum class Connect { accepted, refused, timed_out };

// What a TCP connect to 127.0.0.1:`port` gets within one second.
Connect connect_outcome(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int error = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = errno;
    if (error == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t len = sizeof error;
      if (::poll(&p, 1, 1000) != 1) {
        ::close(fd);
        return Connect::timed_out;
      }
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    }
  }
  ::close(fd);
  if (error == 0) return Connect::accepted;
  return error == ECONNREFUSED ? Connect::refused : Connect::timed_out;
}

// The value of the series `series` (name and labels, as exposed) in a Prometheus text page.
std::optional<double> metric_value(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// Writes an executable shell script (the test writes hooks itself: no reliance on the file
// modes a checkout kept).
std::filesystem::path write_script(const TempDir& dir, const std::string& name,
                                   const std::string& body) {
  const auto path = dir.write(name, "#!/bin/sh\n" + body);
  ::chmod(path.c_str(), 0755);
  return path;
}

std::string hook_setting(const std::string& hook, const std::filesystem::path& script) {
  return "[role]\n" + hook + " = [\"" + script.string() + "\"]\n";
}

// Whether every thread of process `pid` is stopped (a SIGSTOP has taken effect).
bool all_threads_stopped(pid_t pid) {
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    // The state follows the command name, which is in parentheses and may contain anything.
    const std::string stat = read_file(task.path() / "stat");
    const std::size_t name_end = stat.rfind(')');
    if (name_end == std::string::npos || stat.compare(name_end, 3, ") T") != 0) return false;
  }
  return !error;
}

// Freezes node i (SIGSTOP) at a moment it holds no write transaction, and returns when it was
// frozen. A node frozen inside a transaction keeps SQLite's write lock, and no node of the
// host can write until it wakes: SQLite's single writer, not the failover under test. When the
// freeze catches one, the node is woken at once (long before its renew_deadline: it stays
// active) and frozen again.
std::optional<Clock::time_point> freeze_between_writes(Cluster& cluster, std::size_t i,
                                                       SqliteFile& db) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const auto frozen_at = Clock::now();
    cluster.signal(i, SIGSTOP);
    if (!eventually([&] { return all_threads_stopped(cluster[i].process->pid()); }, 1s)) break;
    // The other nodes' transactions are short: a lock held this long is the frozen node's.
    if (db.write_lock_free(300ms)) return frozen_at;
    cluster.signal(i, SIGCONT);
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 7 * attempt));
  }
  return std::nullopt;
}

// Whether the lease row says its holder holds the same-host OS lock. Only then can a passive
// prove by the lock that the holder died (the fast path): a new active that found the lock taken
// (a passive trying it) records it with a later renewal.
bool fast_path_armed(const Cluster& cluster) {
  SqliteFile db(cluster.database());
  return db.integer("SELECT os_lock FROM lease WHERE id = 1") == 1;
}

bool healthz_refuses(const Cluster& cluster, std::size_t i) {
  return cluster.admin(i, "GET", "/healthz/active").status == 503;
}

}  // namespace

TEST_CASE("two nodes started together elect exactly one active") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t passive = 1 - *active;
  // Once it has started and read the lease.
  REQUIRE(cluster.await_passive(passive));
  CHECK(cluster.admin(passive, "GET", "/healthz/active").status == 503);
  CHECK_THAT(cluster.admin(passive, "GET", "/status").body,
             Catch::Contains(R"("role":"passive")") && Catch::Contains("lease_held"));
  // Stays so: no flapping over several lease periods.
  std::this_thread::sleep_for(3s);
  CHECK(cluster.actives() == std::vector<std::size_t>{*active});
}

TEST_CASE("when the active is killed the passive takes over by the same-host fast path",
          "[sqlite]") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto killed = cluster.await_single_active();
  REQUIRE(killed);
  const std::size_t other = 1 - *killed;
  REQUIRE(cluster.await_passive(other));
  const std::uint64_t epoch = cluster.status(*killed).epoch;
  REQUIRE(eventually([&] { return fast_path_armed(cluster); }));

  cluster.kill(*killed);
  REQUIRE(cluster.await_active(other, 5s));
  CHECK(echo_roundtrip(cluster.echo_port(), "after failover") == "after failover");
  CHECK(cluster.admin(other, "GET", "/healthz/active").status == 200);
  const NodeStatus status = cluster.status(other);
  CHECK(status.role == "active");
  CHECK(status.epoch == epoch + 1);
  CHECK(status.last_transition_reason == "fast_path");
}

TEST_CASE("a killed active started again stays passive and the new active keeps its epoch") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto killed = cluster.await_single_active();
  REQUIRE(killed);
  const std::size_t other = 1 - *killed;
  REQUIRE(cluster.await_passive(other));
  cluster.kill(*killed);
  REQUIRE(cluster.await_active(other, 5s));
  const std::uint64_t epoch = cluster.status(other).epoch;

  cluster.start(*killed);
  REQUIRE(cluster.await_passive(*killed));
  // No preemption: over several lease periods, however often it polls the lease.
  CHECK(holds_for(
      [&] {
        const NodeStatus restarted = cluster.status(*killed);
        const NodeStatus active = cluster.status(other);
        return healthz_refuses(cluster, *killed) && restarted.role == "passive" &&
               restarted.not_active_reason == "lease_held" && active.role == "active" &&
               active.epoch == epoch;
      },
      3 * kLeaseTtl));
  CHECK(cluster.serves_echo(other));
  // Promoted once, in its first life.
  CHECK(count_of(cluster.log_of(*killed), "role.promoted") == 1);
}

TEST_CASE("SIGTERM on the active hands over in well under a second and exits 0") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, own_echo_port);
  cluster.start_all();
  const auto stopped = cluster.await_single_active();
  REQUIRE(stopped);
  const std::size_t other = 1 - *stopped;
  REQUIRE(cluster.await_passive(other));

  const auto asked = Clock::now();
  cluster.signal(*stopped, SIGTERM);
  // The other node's own port: only the new active can answer there.
  bool served = false;
  while (!served && Clock::now() - asked < 5s) {
    served = cluster.serves_echo(other);
    if (!served) std::this_thread::sleep_for(1ms);
  }
  const auto handover = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - asked);
  INFO("handover took " << handover.count() << " ms");
  REQUIRE(served);
  CHECK_WALL_CLOCK(handover < 1s);
  CHECK(cluster[*stopped].process->wait(10s) == 0);
  CHECK_THAT(cluster.log_of(*stopped), Catch::Contains("lease.released"));
  // Its plugins serve first; its status says so a moment later.
  CHECK(eventually([&] { return cluster.status(other).role == "active"; }, 2s));
}

TEST_CASE("a frozen active fences itself when it wakes and never writes under its old epoch",
          "[sqlite]") {
  TempDir dir;
  // Ports of their own: a frozen process keeps its listening socket.
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, [](std::size_t i) {
    Cluster::NodeOptions options = own_echo_port(i);
    options.extra = kWriterPlugin;
    return options;
  });
  cluster.start_all();
  const auto frozen = cluster.await_single_active();
  REQUIRE(frozen);
  const std::size_t other = 1 - *frozen;
  REQUIRE(cluster.await_passive(other));
  const std::uint64_t old_epoch = cluster.status(*frozen).epoch;
  SqliteFile db(cluster.database());
  const auto rows = [&](const std::string& where) {
    return db.integer("SELECT COUNT(*) FROM writer_log WHERE " + where).value_or(0);
  };
  const auto rows_of = [&](std::uint64_t epoch, const std::string& node) {
    return rows("epoch = " + std::to_string(epoch) + " AND node = '" + node + "'");
  };
  REQUIRE(eventually([&] { return rows_of(old_epoch, cluster[*frozen].id) > 0; }));

  // Frozen between two transactions: one caught holding SQLite's write lock would stop every
  // node of this host from writing until it wakes (see freeze_between_writes).
  const auto frozen_at = freeze_between_writes(cluster, *frozen, db);
  REQUIRE(frozen_at);
  // Longer than the lease: the other node takes it over meanwhile.
  CHECK(eventually([&] { return cluster.is_active(other); }, kLeaseTtl + 2s));
  std::this_thread::sleep_until(*frozen_at + kLeaseTtl + 1s);
  cluster.signal(*frozen, SIGCONT);

  REQUIRE(eventually([&] { return cluster.is_active(other) && cluster.serves_echo(other); }, 5s));
  const std::uint64_t new_epoch = cluster.status(other).epoch;
  CHECK(new_epoch > old_epoch);
  const auto acquired_at =
      db.integer("SELECT acquired_at_ms FROM lease WHERE epoch = " + std::to_string(new_epoch));
  REQUIRE(acquired_at);
  REQUIRE(eventually([&] { return rows_of(new_epoch, cluster[other].id) > 0; }));

  // Woken, it fenced itself (its plugins stopped) and stays passive under the new holder.
  REQUIRE(eventually(
      [&] {
        const std::string log = cluster.log_of(*frozen);
        return log.find("role.self_fenced epoch=" + std::to_string(old_epoch)) !=
                   std::string::npos &&
               log.find("plugin.stopped id=writer") != std::string::npos;
      },
      5s));
  REQUIRE(cluster.await_passive(*frozen, 5s));
  CHECK(healthz_refuses(cluster, *frozen));
  CHECK(connect_outcome(cluster[*frozen].echo_port) == Connect::refused);
  INFO("writes refused as fenced: " << count_of(cluster.log_of(*frozen), "writer.fenced"));
  CHECK(rows_of(old_epoch, cluster[*frozen].id) > 0);
  CHECK(rows("epoch <> " + std::to_string(new_epoch) + " AND at_ms > " +
             std::to_string(*acquired_at)) == 0);
  CHECK(rows("node = '" + cluster[*frozen].id + "' AND at_ms > " + std::to_string(*acquired_at)) ==
        0);
}

TEST_CASE("an active that cannot write the database demotes and a node serves again once it can",
          "[sqlite]") {
  TempDir dir;
  const std::string unsupported = unwritable_unsupported(dir.path());
  if (!unsupported.empty()) {
    emsnode::testing::skip_test(unsupported);
    return;
  }
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t other = 1 - *active;
  REQUIRE(cluster.await_passive(other));

  const auto broken_at = Clock::now();
  Unwritable unwritable(cluster.database());
  const bool demoted =
      eventually([&] { return healthz_refuses(cluster, *active); }, kRenewDeadline + 3s);
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - broken_at);
  INFO("demoted after " << elapsed.count() << " ms");
  REQUIRE(demoted);
  CHECK_WALL_CLOCK(elapsed < kRenewDeadline + 800ms);
  // Nobody serves while the database cannot be written: not past the lease's expiry either.
  CHECK(holds_for(
      [&] {
        return healthz_refuses(cluster, *active) && healthz_refuses(cluster, other) &&
               connect_outcome(cluster.echo_port()) == Connect::refused;
      },
      kLeaseTtl + 500ms));
  const std::regex fenced(R"(role\.self_fenced epoch=\d+ reason=(db_unreachable|renew_deadline))");
  CHECK(std::regex_search(cluster.log_of(*active), fenced));

  unwritable.restore();
  CHECK(cluster.await_single_active(4 * kLeaseTtl));
}

TEST_CASE("a passive node refuses connections on its service port at once") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, own_echo_port);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t passive = 1 - *active;
  REQUIRE(cluster.await_passive(passive));

  CHECK(connect_outcome(cluster[*active].echo_port) == Connect::accepted);
  CHECK(holds_for(
      [&] {
        const auto asked = Clock::now();
        return connect_outcome(cluster[passive].echo_port) == Connect::refused &&
               (!emsnode::testing::kWallClockAsserted || Clock::now() - asked < 200ms);
      },
      1s));
}

TEST_CASE("switchover through the CLI moves the role to the other node and fails on a passive") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t other = 1 - *active;
  REQUIRE(cluster.await_passive(other));

  const auto moved = cluster.cli(*active, {"switchover"});
  INFO(moved.err);
  CHECK(moved.status == 0);
  CHECK(moved.out == "switchover requested\n");
  REQUIRE(cluster.await_active(other));

  // Back in the competition (lease_held): it knows who holds the lease now.
  REQUIRE(cluster.await_passive(*active));
  const auto refused = cluster.cli(*active, {"switchover"});
  CHECK(refused.status == 1);
  CHECK_THAT(refused.err, Catch::StartsWith("emsnode: switchover: this node (" +
                                            cluster[*active].id + ") is not the active"));
  CHECK_THAT(refused.err, Catch::Contains("held by " + cluster[other].id));
  CHECK(cluster.actives() == std::vector<std::size_t>{other});
}

TEST_CASE("switchover --to hands the role to the named node of three") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 3);
  cluster.start(0);
  REQUIRE(cluster.await_active(0));
  cluster.start(1);
  cluster.start(2);
  REQUIRE(cluster.await_passive(1));
  REQUIRE(cluster.await_passive(2));

  // Twice, each time with node3 as a rival that would win half the time without --to.
  const auto to_node2 = cluster.cli(0, {"switchover", "--to", "node2"});
  INFO(to_node2.err);
  CHECK(to_node2.status == 0);
  CHECK(to_node2.out == "switchover to node2 requested\n");
  REQUIRE(cluster.await_active(1));
  CHECK_THAT(cluster.log_of(0), Catch::Contains("role.handover_reserved"));

  REQUIRE(cluster.await_passive(0));
  const auto to_node1 = cluster.cli(1, {"switchover", "--to", "node1"});
  INFO(to_node1.err);
  CHECK(to_node1.status == 0);
  REQUIRE(cluster.await_active(0));
  CHECK(cluster.status(2).role == "passive");
  CHECK(count_of(cluster.log_of(2), "role.promoted") == 0);
}

TEST_CASE("a paused passive does not promote when the active dies but promotes once resumed") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t paused = 1 - *active;
  REQUIRE(cluster.await_passive(paused));

  const auto pause = cluster.cli(paused, {"pause"});
  INFO(pause.err);
  REQUIRE(pause.status == 0);
  REQUIRE(eventually([&] {
    const NodeStatus s = cluster.status(paused);
    return s.paused && s.not_active_reason == "paused";
  }));

  cluster.kill(*active);
  // Past the lease's expiry: neither the fast path nor the expiry tempts it.
  CHECK(holds_for(
      [&] {
        const NodeStatus s = cluster.status(paused);
        return healthz_refuses(cluster, paused) && s.role == "passive" &&
               s.not_active_reason == "paused";
      },
      kLeaseTtl + 1s));
  CHECK(connect_outcome(cluster.echo_port()) == Connect::refused);

  const auto resume = cluster.cli(paused, {"resume"});
  INFO(resume.err);
  CHECK(resume.status == 0);
  CHECK(cluster.await_active(paused, 5s));
  CHECK_FALSE(cluster.status(paused).paused);
}

TEST_CASE("pausing the active hands the role over to the other node") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto paused = cluster.await_single_active();
  REQUIRE(paused);
  const std::size_t other = 1 - *paused;
  REQUIRE(cluster.await_passive(other));

  const auto pause = cluster.cli(*paused, {"pause"});
  INFO(pause.err);
  REQUIRE(pause.status == 0);
  REQUIRE(cluster.await_active(other, 5s));
  // Paused, it stays out even once its stay-out after the handover is over.
  CHECK(holds_for(
      [&] {
        const NodeStatus s = cluster.status(*paused);
        return healthz_refuses(cluster, *paused) && s.paused && s.not_active_reason == "paused";
      },
      kLeaseTtl + 500ms));
  CHECK(cluster.actives() == std::vector<std::size_t>{other});
}

TEST_CASE("a pre_promote hook that exits 1 vetoes the promotion") {
  TempDir dir;
  const auto veto = write_script(dir, "hooks/veto.sh", "echo 'not on this node' >&2\nexit 1\n");
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, [&](std::size_t i) {
    Cluster::NodeOptions options;
    if (i == 0) options.extra = hook_setting("pre_promote", veto);
    return options;
  });
  // Alone: the lease is free, and only the hook stands in the way.
  cluster.start(0);
  REQUIRE(eventually([&] { return cluster.status(0).not_active_reason == "hook_veto"; }));
  CHECK(holds_for(
      [&] {
        return healthz_refuses(cluster, 0) && cluster.status(0).role == "passive" &&
               connect_outcome(cluster.echo_port()) == Connect::refused;
      },
      2 * kLeaseTtl));
  CHECK_THAT(cluster.log_of(0), Catch::Contains("role.not_promoting reason=hook_veto"));
  CHECK(count_of(cluster.log_of(0), "role.promoted") == 0);

  // It hands the lease back each time: a node without the hook takes it.
  cluster.start(1);
  CHECK(cluster.await_active(1));
}

TEST_CASE(
    "a post_promote hook gets the promotion's epoch and reason and the node id in its "
    "environment",
    "[sqlite]") {
  TempDir dir;
  const auto seen = dir / "post_promote.env";
  const auto hook =
      write_script(dir, "hooks/record_env.sh",
                   "env | grep '^EMSNODE_' | sort > '" + seen.string() + ".tmp' && mv '" +
                       seen.string() + ".tmp' '" + seen.string() + "'\n");
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, [&](std::size_t i) {
    Cluster::NodeOptions options;
    if (i == 1) options.extra = hook_setting("post_promote", hook);
    return options;
  });
  cluster.start(0);
  REQUIRE(cluster.await_active(0));
  cluster.start(1);
  REQUIRE(cluster.await_passive(1));
  CHECK_FALSE(std::filesystem::exists(seen));
  REQUIRE(eventually([&] { return fast_path_armed(cluster); }));

  cluster.kill(0);
  REQUIRE(cluster.await_active(1));
  REQUIRE(eventually([&] { return std::filesystem::exists(seen); }, 5s));
  const std::string env = read_file(seen);
  CHECK_THAT(env, Catch::Contains("EMSNODE_EVENT=post_promote\n"));
  CHECK_THAT(env,
             Catch::Contains("EMSNODE_EPOCH=" + std::to_string(cluster.status(1).epoch) + "\n"));
  CHECK_THAT(env, Catch::Contains("EMSNODE_NODE_ID=node2\n"));
  CHECK_THAT(env, Catch::Contains("EMSNODE_REASON=fast_path\n"));
}

TEST_CASE("a node older than the database's schema never becomes active (schema_newer)",
          "[sqlite]") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, [](std::size_t i) {
    Cluster::NodeOptions options;
    options.migrate = i == 0;
    return options;
  });
  cluster.start(0);
  REQUIRE(cluster.await_active(0));
  REQUIRE(cluster.stop(0) == 0);  // the lease is free from now on
  {
    SqliteFile db(cluster.database());
    db.exec("UPDATE schema_versions SET version = 99 WHERE component = 'core'");
    REQUIRE(db.integer("SELECT version FROM schema_versions WHERE component = 'core'") == 99);
  }

  cluster.start(1);
  REQUIRE(eventually([&] { return cluster.status(1).not_active_reason == "schema_newer"; }));
  CHECK(holds_for(
      [&] {
        return healthz_refuses(cluster, 1) && cluster.status(1).not_active_reason == "schema_newer";
      },
      kLeaseTtl + 1s));
  CHECK_THAT(cluster.log_of(1), Catch::Contains("role.not_promoting reason=schema_newer"));
}

TEST_CASE("starting a second process with a running node's id fails and names that node") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 1);
  cluster.start(0);
  REQUIRE(cluster.await_active(0));

  // Another data dir and admin port, the same id.
  Cluster::NodeOptions duplicate;
  duplicate.id = cluster[0].id;
  const std::size_t intruder = cluster.add(duplicate);
  cluster.start(intruder);
  cluster.expect_exit(intruder);
  REQUIRE(cluster[intruder].process->wait(15s) == 2);
  const std::string err = cluster[intruder].process->err();
  CHECK_THAT(err, Catch::Contains("node id \"node1\" is already used by a running node"));
  CHECK_THAT(cluster.log_of(intruder), !Catch::Contains("node.started"));
  CHECK(cluster.actives() == std::vector<std::size_t>{0});
  CHECK(cluster.serves_echo(0));
}

TEST_CASE("starting a node with another node's backup dir fails and names that node") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 1);
  cluster.start(0);
  REQUIRE(cluster.await_active(0));

  Cluster::NodeOptions sharing;
  sharing.backup_dir = cluster[0].data_dir / "backup";  // node1's, by default
  const std::size_t intruder = cluster.add(sharing);
  cluster.start(intruder);
  cluster.expect_exit(intruder);
  REQUIRE(cluster[intruder].process->wait(15s) == 2);
  const std::string err = cluster[intruder].process->err();
  CHECK_THAT(err, Catch::Contains("is already the backup dir of node \"node1\""));
  CHECK_THAT(cluster.log_of(intruder), !Catch::Contains("node.started"));
  CHECK(cluster.actives() == std::vector<std::size_t>{0});
}

TEST_CASE("cluster settings are set on the active and read on any node") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t passive = 1 - *active;
  REQUIRE(cluster.await_passive(passive));

  const auto set = cluster.cli(*active, {"settings", "set", "greeting", "hello cluster"});
  INFO(set.err);
  CHECK(set.status == 0);
  const auto got = cluster.cli(passive, {"settings", "get", "greeting"});
  INFO(got.err);
  CHECK(got.status == 0);
  CHECK(got.out == "hello cluster\n");

  const auto refused = cluster.cli(passive, {"settings", "set", "greeting", "from the passive"});
  CHECK(refused.status == 1);
  CHECK_THAT(refused.err, Catch::Contains("cluster settings are changed on the active node (" +
                                          cluster[*active].id + ")"));
  CHECK(cluster.cli(*active, {"settings", "get", "greeting"}).out == "hello cluster\n");
}

TEST_CASE("the active's metrics show its role and the lease and its plugins' metrics") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t passive = 1 - *active;
  REQUIRE(cluster.await_passive(passive));

  const std::string connections = R"(emsnode_plugin_echo_connections_total{plugin="echo"})";
  const auto connections_now = [&] {
    return metric_value(cluster.admin(*active, "GET", "/metrics").body, connections);
  };
  const auto before = connections_now();
  REQUIRE(before);
  for (int i = 0; i < 3; ++i) REQUIRE(echo_roundtrip(cluster.echo_port(), "count me"));
  CHECK(eventually([&] { return connections_now() == *before + 3; }, 2s));

  // One renewal at least (every renew_interval) for the latency histogram.
  const std::string renewals = "emsnode_lease_renew_seconds_count";
  CHECK(eventually(
      [&] { return metric_value(cluster.admin(*active, "GET", "/metrics").body, renewals) >= 1.0; },
      2s));
  const auto page = cluster.admin(*active, "GET", "/metrics");
  REQUIRE(page.status == 200);
  CHECK(metric_value(page.body, R"(emsnode_role{role="active"})") == 1.0);
  CHECK(metric_value(page.body, R"(emsnode_role{role="passive"})") == 0.0);
  CHECK(metric_value(page.body, "emsnode_lease_epoch") ==
        static_cast<double>(cluster.status(*active).epoch));
  CHECK(metric_value(page.body, R"(emsnode_role_transitions_total{reason="acquired"})") == 1.0);
  CHECK(metric_value(page.body, R"(emsnode_lease_renew_seconds_bucket{le="+Inf"})") ==
        metric_value(page.body, renewals));
  CHECK(metric_value(page.body, R"(emsnode_plugin_echo_bytes_echoed_total{plugin="echo"})") >=
        3.0 * 8);

  const auto passive_page = cluster.admin(passive, "GET", "/metrics").body;
  CHECK(metric_value(passive_page, R"(emsnode_role{role="active"})") == 0.0);
  CHECK(metric_value(passive_page, R"(emsnode_role{role="passive"})") == 1.0);
}

TEST_CASE("a node started while its database is down waits passive and serves once it is up",
          "[postgresql]") {
  const NodeDatabase skip_without_server("");  // skips where PostgreSQL cannot run
  TempDir dir;
  // A server of this test's own: the run's server must stay up for the other tests.
  PrivatePostgres server(EMSNODE_PG_FIXTURE);
  server.stop();
  Cluster cluster(EMSNODE_BINARY, dir,
                  "backend = \"postgresql\"\nurl = \"" + server.url() +
                      "\"\nsslmode = \"disable\"\nconnect_timeout = \"1s\"\n",
                  1);
  cluster.start(0);
  REQUIRE(eventually(
      [&] {
        const NodeStatus status = cluster.status(0);
        return status.role == "passive" && status.not_active_reason == "db_unreachable";
      },
      10s));
  CHECK(healthz_refuses(cluster, 0));
  CHECK(connect_outcome(cluster.echo_port()) == Connect::refused);
  CHECK_THAT(cluster.log_of(0), Catch::Contains("db.unreachable_at_start"));

  server.start();
  REQUIRE(cluster.await_single_active(10s));
  CHECK(cluster.status(0).epoch == 1);

  // The server going away under the active: it fences itself (nobody may trust a lease it cannot
  // renew), and serves again once the server is back.
  server.stop();
  // The probe may refuse first (a plugin's write failed); the fencing follows within the deadline.
  CHECK(eventually(
      [&] {
        const NodeStatus status = cluster.status(0);
        return status.role == "passive" && status.not_active_reason == "db_unreachable";
      },
      kRenewDeadline + 3s));
  CHECK(healthz_refuses(cluster, 0));
  server.start();
  CHECK(cluster.await_single_active(4 * kLeaseTtl));
  CHECK(cluster.status(0).epoch == 2);
  CHECK(cluster.stop(0) == 0);
}
