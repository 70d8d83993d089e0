// A cluster over several hosts: PostgreSQL and every node on a host of its own (network
// namespaces), partitioned by filtering their links. Needs root, iproute2, nftables and the
// PostgreSQL server; each test says why and skips where those are missing.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "support/net_cluster.hpp"
#include "support/sanitizers.hpp"
#include "support/skip.hpp"

namespace emsnode::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

#define REQUIRE_LAB()                                 \
  do {                                                \
    if (const auto why = NetCluster::unavailable()) { \
      skip_test(*why);                                \
      return;                                         \
    }                                                 \
  } while (false)

// Default timers: lease_ttl 2 s, renew_deadline 1.2 s, poll_interval 200 ms.
constexpr auto kLeaseTtl = 2000ms;
constexpr auto kRenewDeadline = 1200ms;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// Starts every node; the index of the one active node once every other is a passive behind it.
std::size_t start_settled(NetCluster& cluster) {
  cluster.start_all();
  const auto active = cluster.await_single_active();
  REQUIRE(active);
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (i != *active) REQUIRE(cluster.await_passive(i));
  }
  return *active;
}

TEST_CASE(
    "an active node cut off from the database stops serving by its renew deadline and a "
    "peer on another host takes over once the lease expires") {
  REQUIRE_LAB();
  TempDir dir;
  NetCluster cluster(EMSNODE_BINARY, dir, 2);
  const std::size_t active = start_settled(cluster);
  const std::size_t peer = 1 - active;
  const std::uint64_t epoch = cluster.status(active).epoch;

  const auto cut = Clock::now();
  cluster.lab().cut(*cluster[active].host, cluster.db_host().address);
  REQUIRE(eventually([&] { return !cluster.serves_echo(active, 200); }, 5s));
  const auto stopped_serving = since(cut);
  REQUIRE(cluster.await_single_active(10s) == peer);
  const auto peer_serving = since(cut);
  INFO("stopped serving after " << stopped_serving.count() << " ms, peer serving after "
                                << peer_serving.count() << " ms");
  CHECK_WALL_CLOCK(stopped_serving < kRenewDeadline + 400ms);
  CHECK(peer_serving > stopped_serving);
  CHECK_WALL_CLOCK(peer_serving < kLeaseTtl + 1500ms);
  CHECK(cluster.status(peer).epoch == epoch + 1);

  // Healed, the deposed node follows the new active: no preemption.
  cluster.lab().heal(*cluster[active].host);
  CHECK(cluster.await_passive(active));
  CHECK(holds_for([&] { return cluster.single_active() == peer; }, 3s));
  CHECK(cluster.status(peer).lease_epoch == epoch + 1);
}

TEST_CASE("a passive node cut off from every host changes no role, and rejoins as passive") {
  REQUIRE_LAB();
  TempDir dir;
  NetCluster cluster(EMSNODE_BINARY, dir, 2);
  const std::size_t active = start_settled(cluster);
  const std::size_t passive = 1 - active;
  const std::uint64_t epoch = cluster.status(active).lease_epoch;

  cluster.lab().isolate(*cluster[passive].host);
  CHECK(holds_for([&] { return cluster.serves_echo(active, 500); }, 4s));
  cluster.lab().heal(*cluster[passive].host);
  CHECK(cluster.await_passive(passive));
  CHECK(cluster.single_active() == active);
  CHECK(cluster.status(active).lease_epoch == epoch);
}

TEST_CASE("clients cut off from the active do not move the lease: only the database decides") {
  REQUIRE_LAB();
  TempDir dir;
  NetCluster cluster(EMSNODE_BINARY, dir, 2);
  const std::size_t active = start_settled(cluster);
  const std::uint64_t epoch = cluster.status(active).lease_epoch;

  cluster.lab().cut(*cluster[active].host, cluster.client().address);
  std::this_thread::sleep_for(kLeaseTtl * 2);
  cluster.lab().heal(*cluster[active].host);
  CHECK(cluster.single_active() == active);
  CHECK(cluster.status(active).lease_epoch == epoch);
}

TEST_CASE(
    "a database restart causes at most one role change, and a node serves again within "
    "one lease period of the database's return") {
  REQUIRE_LAB();
  TempDir dir;
  NetCluster cluster(EMSNODE_BINARY, dir, 2);
  const std::size_t active = start_settled(cluster);
  const std::uint64_t epoch = cluster.status(active).lease_epoch;

  for (const char* mode : {"fast", "immediate"}) {
    INFO("stop mode " << mode);
    const std::uint64_t before = cluster.status(*cluster.await_single_active()).lease_epoch;
    cluster.postgres().stop(mode);
    std::this_thread::sleep_for(kLeaseTtl);  // long enough for the active to self-fence
    cluster.postgres().start();
    const auto back = Clock::now();
    const auto serving = cluster.await_single_active(10s);
    REQUIRE(serving);
    INFO("serving " << since(back).count() << " ms after the database returned");
    CHECK_WALL_CLOCK(since(back) < kLeaseTtl + 1500ms);
    REQUIRE(cluster.await_passive(1 - *serving));
    CHECK(cluster.status(*serving).lease_epoch <= before + 1);
  }
  CHECK(cluster.status(0).lease_epoch <= epoch + 2);
}

TEST_CASE(
    "a switch to a synchronous standby behind the same address causes at most one role "
    "change, and the epoch never goes back") {
  REQUIRE_LAB();
  TempDir dir;
  NetCluster cluster(EMSNODE_BINARY, dir, 2);
  // A streaming standby on a host of its own, synchronous: a commit (an epoch taken, a fenced
  // write) is acknowledged only once the standby has it, so a failover loses none of them.
  const NetLab::Host& standby_host = cluster.lab().add_host("db2");
  const auto standby = PostgresServer::standby_of(cluster.postgres(), standby_host, "standby");
  cluster.postgres().psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
  cluster.postgres().psql("SELECT pg_reload_conf()");
  const std::size_t active = start_settled(cluster);
  const std::uint64_t before = cluster.status(active).lease_epoch;

  // The primary dies; the standby is promoted and takes over its address.
  cluster.postgres().stop("immediate");
  cluster.lab().move_address(cluster.db_host(), standby_host, cluster.db_host().address);
  standby->promote();
  const auto switched = Clock::now();
  const auto serving = cluster.await_single_active(15s);
  REQUIRE(serving);
  INFO("serving " << since(switched).count() << " ms after the standby took over");
  CHECK_WALL_CLOCK(since(switched) < kLeaseTtl + 1500ms);
  REQUIRE(cluster.await_passive(1 - *serving));
  const std::uint64_t after = cluster.status(*serving).lease_epoch;
  CHECK(after >= before);
  CHECK(after <= before + 1);
  CHECK(holds_for([&] { return cluster.single_active() == serving; }, 3s));
}

TEST_CASE("a crashed active on another host is replaced once its lease expires") {
  REQUIRE_LAB();
  TempDir dir;
  NetCluster cluster(EMSNODE_BINARY, dir, 3);
  const std::size_t active = start_settled(cluster);
  const auto killed = Clock::now();
  cluster.kill(active);
  REQUIRE(eventually([&] { return cluster.single_active().has_value(); }, 10s));
  INFO("serving again after " << since(killed).count() << " ms");
  CHECK_WALL_CLOCK(since(killed) < kLeaseTtl + 500ms);

  // The crashed node comes back as a passive.
  cluster.start(active);
  CHECK(cluster.await_passive(active));
}

}  // namespace
}  // namespace emsnode::testing
