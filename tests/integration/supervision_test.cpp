// Holding the lease means serving, with real emsnode processes: a node whose required plugin
// stays down hands the role to a healthy peer, a lone node serves what it can, and a node with a
// faulted plugin stays out while another can serve. The plugin is t-flaky (tests/host/plugins),
// steered by files in each node's own control folder. On SQLite and, as "pg: ...", PostgreSQL.
#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>

#include "support/cluster.hpp"
#include "support/test_postgres.hpp"

using namespace std::chrono_literals;
using emsnode::testing::Cluster;
using emsnode::testing::eventually;
using emsnode::testing::holds_for;
using emsnode::testing::NodeDatabase;
using emsnode::testing::read_file;
using emsnode::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kGrace = 1s;
constexpr auto kLeaseTtl = 2s;  // the cluster's default [role] timers

std::filesystem::path control_of(const TempDir& dir, std::size_t i) {
  return dir / ("control" + std::to_string(i + 1));
}

// Every node runs t-flaky (required) with a control folder of its own, and short supervision
// timers.
std::function<Cluster::NodeOptions(std::size_t)> flaky_nodes(const TempDir& dir,
                                                             std::string stop_deadline = "2s") {
  return [&dir, stop_deadline](std::size_t i) {
    std::filesystem::create_directories(control_of(dir, i));
    Cluster::NodeOptions options;
    options.extra = "[plugin_host]\ndirs = [\"" + std::string(EMSNODE_TEST_PLUGIN_DIR) +
                    "\"]\nrestart_backoff = \"100ms\"\nrestart_backoff_max = \"1s\"\n"
                    "failure_grace = \"1s\"\n"
                    "handover_holdoff = \"30s\"\nstop_deadline = \"" +
                    stop_deadline + "\"\n\n[plugins.t-flaky]\ncontrol = \"" +
                    control_of(dir, i).string() + "\"\n";
    return options;
  };
}

void tell(const TempDir& dir, std::size_t i, const std::string& what) {
  std::ofstream(control_of(dir, i) / what).put('\n');
}

std::string healthz(const Cluster& cluster, std::size_t i, const std::string& probe) {
  const auto reply = cluster.admin(i, "GET", "/healthz/" + probe);
  return std::to_string(reply.status) + " " + reply.body;
}

std::chrono::milliseconds since(Clock::time_point from) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - from);
}

}  // namespace

TEST_CASE("an active whose required plugin stays down hands the role to the healthy passive") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2, flaky_nodes(dir));
  cluster.start_all();
  const auto active = cluster.await_single_active(10s);
  REQUIRE(active);
  const std::size_t other = 1 - *active;
  REQUIRE(eventually([&] { return healthz(cluster, other, "ready") == "200 ready\n"; }, 5s));
  CHECK(healthz(cluster, *active, "live") == "200 live\n");

  tell(dir, *active, "fail_start");
  const auto broken_at = Clock::now();
  tell(dir, *active, "report_failed");
  // The load balancer is told at once which part is missing...
  REQUIRE(eventually(
      [&] {
        return healthz(cluster, *active, "active")
                   .rfind("503 active but not serving: t-flaky", 0) == 0;
      },
      2s));
  const auto unhealthy_after = since(broken_at);
  // ...and after the grace the role moves to the node that can serve.
  REQUIRE(eventually([&] { return cluster.is_active(other); }, kGrace + kLeaseTtl + 5s));
  const auto moved_after = since(broken_at);
  std::cout << "supervision: healthz/active 503 after " << unhealthy_after.count()
            << " ms, the peer active after " << moved_after.count() << " ms (grace "
            << std::chrono::milliseconds(kGrace).count() << " ms)\n";
  CHECK(moved_after >= kGrace);
  CHECK(cluster.status(*active).not_active_reason == "plugin_failed:t-flaky");
  CHECK(cluster.status(*active).last_transition_reason == "plugin_failed:t-flaky");
  CHECK(healthz(cluster, *active, "ready") == "503 not ready: plugin_failed:t-flaky\n");
  CHECK(read_file(cluster[*active].log)
            .find("supervisor.handover id=t-flaky to=" + cluster[other].id) != std::string::npos);

  // Repaired, the node stays passive: held off, and no preemption after.
  std::filesystem::remove(control_of(dir, *active) / "fail_start");
  std::filesystem::remove(control_of(dir, *active) / "report_failed");
  CHECK(holds_for([&] { return cluster.is_active(other) && !cluster.is_active(*active); }, 3s));
}

TEST_CASE("a lone active whose plugin stays down keeps serving what it can and says so") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 1, flaky_nodes(dir));
  cluster.start_all();
  REQUIRE(cluster.await_single_active(10s));
  tell(dir, 0, "fail_start");
  tell(dir, 0, "report_failed");
  REQUIRE(eventually(
      [&] {
        return read_file(cluster[0].log).find("supervisor.no_peer id=t-flaky") != std::string::npos;
      },
      kGrace + 5s));
  CHECK(cluster.status(0).role == "active");
  // Failed, or caught in one of its restarts.
  CHECK(healthz(cluster, 0, "active").rfind("503 active but not serving: t-flaky", 0) == 0);
  CHECK(eventually(
      [&] {
        return cluster.admin(0, "GET", "/status").body.find("\"state\":\"failed\"") !=
               std::string::npos;
      },
      2s));

  // Restarted with backoff: serving again once the cause is gone.
  std::filesystem::remove(control_of(dir, 0) / "fail_start");
  std::filesystem::remove(control_of(dir, 0) / "report_failed");
  CHECK(eventually([&] { return healthz(cluster, 0, "active") == "200 active\n"; }, 5s));
}

TEST_CASE("a node with a faulted plugin stays out while a healthy node can serve, not when alone") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 3, flaky_nodes(dir, "300ms"));
  cluster.start_all();
  const auto first = cluster.await_single_active(10s);
  REQUIRE(first);
  // Its stop hangs: the switchover faults the plugin.
  tell(dir, *first, "hang_stop");
  REQUIRE(cluster.admin(*first, "POST", "/switchover").status == 200);
  const auto second = [&]() -> std::optional<std::size_t> {
    std::optional<std::size_t> found;
    eventually(
        [&] {
          for (std::size_t i = 0; i < cluster.size(); ++i) {
            if (i != *first && cluster.is_active(i)) found = i;
          }
          return found.has_value();
        },
        10s);
    return found;
  }();
  REQUIRE(second);
  REQUIRE(eventually(
      [&] { return healthz(cluster, *first, "ready") == "503 not ready: plugin_faulted\n"; }, 5s));

  // The active dies, again and again: a healthy node takes over each time, never the faulted one
  // (which, racing for the same-host lock, would win about half of the races otherwise).
  std::size_t dying = *second;
  for (int round = 0; round < 4; ++round) {
    const std::size_t heir = 3 - *first - dying;
    cluster.kill(dying);
    REQUIRE(eventually([&] { return cluster.is_active(heir); }, kLeaseTtl + 5s));
    CHECK_FALSE(cluster.is_active(*first));
    CHECK(cluster.status(*first).role == "passive");
    cluster.start(dying);
    REQUIRE(eventually([&] { return cluster.status(dying).role == "passive"; }, 10s));
    dying = heir;
  }
  // Alone now, the faulted node serves what it can.
  cluster.kill(3 - *first - dying);
  cluster.kill(dying);
  REQUIRE(eventually([&] { return cluster.status(*first).role == "active"; }, 2 * kLeaseTtl + 8s));
  CHECK(
      healthz(cluster, *first, "active").rfind("503 active but not serving: t-flaky faulted", 0) ==
      0);
  tell(dir, *first, "release");
}
