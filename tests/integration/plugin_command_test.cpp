// Plugin control commands run through the emsnode CLI against real nodes (SQLite, or PostgreSQL in
// the pg: variant): the echo example's active-only `stats` command, forwarded by the CLI from a
// passive node to the active one, and the CLI's refusals when that cannot be done.
#include <catch2/catch.hpp>

#include <regex>

#include "support/cluster.hpp"
#include "support/test_postgres.hpp"

using namespace std::chrono_literals;
using emsnode::testing::Cluster;
using emsnode::testing::eventually;
using emsnode::testing::NodeDatabase;
using emsnode::testing::NodeStatus;
using emsnode::testing::PortReservation;
using emsnode::testing::TempDir;

namespace {

// The number of connections the echo server says it has served, from the stats answer; -1 when
// the answer has no such field.
long served_in(const std::string& answer) {
  std::smatch match;
  if (!std::regex_search(answer, match, std::regex(R"("served": (\d+))"))) return -1;
  return std::stol(match[1]);
}

}  // namespace

TEST_CASE("an active-only command run on the passive is forwarded to the active and answered") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t passive = 1 - *active;
  REQUIRE(cluster.await_passive(passive));

  // The active's own answer: its echo server has served the probes that found it active.
  const auto direct = cluster.cli(*active, {"echo", "stats"});
  INFO(direct.err);
  REQUIRE(direct.status == 0);
  CHECK(direct.err.empty());
  CHECK(served_in(direct.out) >= 1);

  const auto forwarded = cluster.cli(passive, {"echo", "stats"});
  INFO(forwarded.err);
  CHECK(forwarded.status == 0);
  // Nothing connected to the echo port between the two calls: the same count, the active's.
  CHECK(forwarded.out == direct.out);
  CHECK(forwarded.err ==
        "emsnode: this node is not active; forwarded to the active node " + cluster[*active].id +
            " (admin endpoint 127.0.0.1:" + std::to_string(cluster[*active].admin_port) + ")\n");
  // The passive itself refuses it, naming the active for the forward.
  const auto refusal = cluster.admin(passive, "POST", "/plugins/echo/commands/stats", "{}");
  CHECK(refusal.status == 409);
  CHECK_THAT(refusal.body, Catch::Contains(R"("not_active":true)") &&
                               Catch::Contains(R"("id":")" + cluster[*active].id + "\""));
}

TEST_CASE("the CLI refuses to forward to an active it cannot reach and names it") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 2);
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  const std::size_t passive = 1 - *active;
  REQUIRE(cluster.await_passive(passive));

  // The registry names an admin address where nothing listens (reserved, so no other test's node
  // takes it meanwhile): the active is alive and keeps the lease, but the CLI cannot reach it.
  const PortReservation nowhere;
  const std::string address = "127.0.0.1:" + std::to_string(nowhere.port());
  const auto changed = shared.run_sql(
      "UPDATE nodes SET admin_address = '" + address + "' WHERE id = '" + cluster[*active].id + "'",
      dir.path());
  INFO(changed.err);
  REQUIRE(changed.status == 0);

  const std::string named = "emsnode: echo stats runs on the active node " + cluster[*active].id +
                            " (admin endpoint " + address + "), which could not be reached: ";
  emsnode::testing::Completed refused;
  CHECK(eventually([&] {
    refused = cluster.cli(passive, {"echo", "stats"});
    return refused.err.rfind(named, 0) == 0;
  }));
  INFO(refused.err);
  CHECK(refused.status == 1);
  CHECK(refused.out.empty());
  CHECK(std::count(refused.err.begin(), refused.err.end(), '\n') == 1);

  // An address that is no host:port at all is named as unusable.
  REQUIRE(shared
              .run_sql("UPDATE nodes SET admin_address = 'nowhere' WHERE id = '" +
                           cluster[*active].id + "'",
                       dir.path())
              .status == 0);
  const std::string unusable = "emsnode: echo stats runs on the active node " +
                               cluster[*active].id +
                               " (admin endpoint nowhere); its address cannot be used: run it "
                               "there\n";
  CHECK(eventually([&] {
    refused = cluster.cli(passive, {"echo", "stats"});
    return refused.err == unusable;
  }));
  CHECK(refused.status == 1);
  CHECK(cluster.actives() == std::vector<std::size_t>{*active});
}

TEST_CASE("an active-only command fails with exit status 1 when no node is active") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 1);
  cluster.start(0);
  REQUIRE(cluster.await_active(0));
  // The only node, paused: it gives the lease up and no node takes it.
  const auto pause = cluster.cli(0, {"pause"});
  INFO(pause.err);
  REQUIRE(pause.status == 0);
  REQUIRE(eventually([&] {
    const NodeStatus s = cluster.status(0);
    return s.role == "passive" && s.paused;
  }));

  emsnode::testing::Completed refused;
  CHECK(eventually([&] {
    refused = cluster.cli(0, {"echo", "stats"});
    return refused.status == 1;
  }));
  CHECK(refused.err ==
        "emsnode: echo stats runs on the active node only, and no node is active "
        "now\n");
  CHECK(refused.out.empty());
}

TEST_CASE("a command with an argument it does not declare is refused by the CLI with status 2") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 1);
  cluster.start(0);
  REQUIRE(cluster.await_active(0));

  const auto bogus = cluster.cli(0, {"echo", "stats", "--bogus", "x"});
  CHECK(bogus.status == 2);
  CHECK(bogus.out.empty());
  CHECK(bogus.err ==
        "emsnode: echo stats: --bogus: stats has no such argument (it takes none) (see emsnode "
        "help echo)\n");

  const auto unknown = cluster.cli(0, {"echo", "reset"});
  CHECK(unknown.status == 2);
  CHECK(unknown.err ==
        "emsnode: echo reset: plugin echo has no command \"reset\" (its commands: "
        "stats) (see emsnode help echo)\n");
}

TEST_CASE("emsnode help echo lists the stats command") {
  TempDir dir;
  const NodeDatabase shared((dir / "cluster.db").string());
  Cluster cluster(EMSNODE_BINARY, dir, shared.toml(), 1);

  // Read from the manifests: no node needs to run.
  const auto help = cluster.cli(0, {"help", "echo"});
  INFO(help.err);
  CHECK(help.status == 0);
  CHECK_THAT(help.out, Catch::StartsWith("echo 1.0.0: TCP echo service"));
  CHECK_THAT(help.out,
             Catch::Contains("\n  stats  Connections served since this node became active, and "
                             "open now [active node, no token]\n"));
}
