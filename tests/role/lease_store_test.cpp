// The lease SQL on a real database (a SQLite file, or PostgreSQL in the pg: variant), each "node"
// with its own connection as separate processes would have.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "db/db_test_support.hpp"
#include "role/lease_store.hpp"

using namespace std::chrono_literals;
using emsnode::db::testing::DbDir;
using emsnode::db::testing::set_lease;
using emsnode::role::SqlLeaseStore;

TEST_CASE("the first acquisition of a fresh lease gets epoch 1 and runs for the ttl") {
  DbDir dir;
  auto database = dir.open_migrated();
  SqlLeaseStore store(*database);

  const auto result = store.try_acquire("n1", 2000ms, false);
  REQUIRE(result.acquired);
  CHECK(result.epoch == 1);
  CHECK_FALSE(result.fast_path);
  CHECK(result.lease.holder == "n1");
  CHECK(result.lease.expires_in_ms == 2000);
  const auto view = store.read();
  CHECK(view.holder == "n1");
  CHECK(view.epoch == 1);
  CHECK(view.expires_in_ms > 1500);
  CHECK(view.expires_in_ms <= 2000);
}

TEST_CASE("a live lease is refused to another node, which is told the holder") {
  DbDir dir;
  auto db1 = dir.open_migrated();
  auto db2 = dir.open();
  SqlLeaseStore n1(*db1);
  SqlLeaseStore n2(*db2);
  REQUIRE(n1.try_acquire("n1", 60s, false).acquired);

  // Holding the OS lock proves nothing when the holder never recorded it.
  const auto refused = n2.try_acquire("n2", 60s, true);
  CHECK_FALSE(refused.acquired);
  CHECK(refused.lease.holder == "n1");
  CHECK(refused.lease.epoch == 1);
  CHECK(refused.lease.expires_in_ms > 0);
  CHECK(n1.read().epoch == 1);
}

TEST_CASE("an expired lease is taken by another node with the next epoch") {
  DbDir dir;
  auto db1 = dir.open_migrated();
  auto db2 = dir.open();
  SqlLeaseStore n1(*db1);
  SqlLeaseStore n2(*db2);
  REQUIRE(n1.try_acquire("n1", 60s, false).acquired);
  set_lease(*db1, "n1", 1, -1);

  const auto taken = n2.try_acquire("n2", 60s, false);
  REQUIRE(taken.acquired);
  CHECK(taken.epoch == 2);
  CHECK_FALSE(taken.fast_path);
  CHECK_FALSE(n1.renew("n1", 1, 60s, false));
  CHECK(n1.read().holder == "n2");
}

TEST_CASE("only the holder at its epoch renews, even just after the expiry") {
  DbDir dir;
  auto database = dir.open_migrated();
  SqlLeaseStore store(*database);
  REQUIRE(store.try_acquire("n1", 60s, false).acquired);
  set_lease(*database, "n1", 1, -50);  // expired, but nobody took it: still ours

  CHECK(store.renew("n1", 1, 2000ms, true));
  const auto view = store.read();
  CHECK(view.expires_in_ms > 1500);
  CHECK(view.os_lock);
  CHECK_FALSE(store.renew("n1", 2, 2000ms, false));
  CHECK_FALSE(store.renew("n2", 1, 2000ms, false));
  CHECK(store.read().os_lock);
}

TEST_CASE("a release ends the lease at once, and a stale release changes nothing") {
  DbDir dir;
  auto db1 = dir.open_migrated();
  auto db2 = dir.open();
  SqlLeaseStore n1(*db1);
  SqlLeaseStore n2(*db2);
  REQUIRE(n1.try_acquire("n1", 60s, true).acquired);

  CHECK(n1.release("n1", 1));
  const auto released = n1.read();
  CHECK(released.expires_in_ms <= 0);
  CHECK_FALSE(released.os_lock);
  const auto taken = n2.try_acquire("n2", 60s, false);
  REQUIRE(taken.acquired);
  CHECK(taken.epoch == 2);
  CHECK_FALSE(n1.release("n1", 1));
  CHECK(n1.read().holder == "n2");
  CHECK(n1.read().expires_in_ms > 0);
}

TEST_CASE("the fast path takes a live lease only when its holder recorded the OS lock") {
  DbDir dir;
  auto db1 = dir.open_migrated();
  auto db2 = dir.open();
  SqlLeaseStore n1(*db1);
  SqlLeaseStore n2(*db2);
  REQUIRE(n1.try_acquire("n1", 60s, true).acquired);

  CHECK_FALSE(n2.try_acquire("n2", 60s, false).acquired);
  const auto fast = n2.try_acquire("n2", 60s, true);
  REQUIRE(fast.acquired);
  CHECK(fast.fast_path);
  CHECK(fast.epoch == 2);

  REQUIRE(n2.renew("n2", 2, 60s, false));  // n2 holds it without the OS lock
  CHECK_FALSE(n1.try_acquire("n1", 60s, true).acquired);
}

TEST_CASE("a switchover reservation admits only its target until it lapses, fast path included") {
  DbDir dir;
  auto database = dir.open_migrated();
  SqlLeaseStore store(*database);
  REQUIRE(store.try_acquire("n1", 60s, true).acquired);
  CHECK_FALSE(store.reserve_handover("n2", 1, "n3", 60s));  // only the holder reserves
  REQUIRE(store.reserve_handover("n1", 1, "n3", 60s));
  REQUIRE(store.release("n1", 1));

  const auto refused = store.try_acquire("n2", 60s, true);
  CHECK_FALSE(refused.acquired);
  CHECK(refused.lease.handover_to == "n3");
  const auto target = store.try_acquire("n3", 60s, false);
  REQUIRE(target.acquired);
  CHECK(target.epoch == 2);
  CHECK(store.read().handover_to.empty());

  // A reservation that has lapsed binds nobody.
  REQUIRE(store.reserve_handover("n3", 2, "n4", 0ms));
  REQUIRE(store.release("n3", 2));
  const auto after = store.try_acquire("n2", 60s, false);
  CHECK(after.acquired);
  CHECK(after.epoch == 3);
}

TEST_CASE("nodes racing on one database never take a live lease twice nor reuse an epoch") {
  DbDir dir;
  dir.open_migrated();
  constexpr int kNodes = 4;

  SECTION("a live lease goes to exactly one of them") {
    std::atomic<int> winners{0};
    std::vector<std::thread> nodes;
    for (int i = 0; i < kNodes; ++i) {
      nodes.emplace_back([&, i] {
        auto database = dir.open(10000);
        SqlLeaseStore store(*database);
        if (store.try_acquire("n" + std::to_string(i), 60s, false).acquired) ++winners;
      });
    }
    for (auto& node : nodes) node.join();
    CHECK(winners == 1);
  }

  SECTION("a lease that expires at once is taken over and over, each time with a new epoch") {
    std::mutex mutex;
    std::vector<std::uint64_t> epochs;
    std::vector<std::thread> nodes;
    for (int i = 0; i < kNodes; ++i) {
      nodes.emplace_back([&, i] {
        auto database = dir.open(10000);
        SqlLeaseStore store(*database);
        for (int round = 0; round < 25; ++round) {
          const auto result = store.try_acquire("n" + std::to_string(i), 0ms, false);
          if (!result.acquired) continue;
          std::lock_guard lock(mutex);
          epochs.push_back(result.epoch);
        }
      });
    }
    for (auto& node : nodes) node.join();
    const std::set<std::uint64_t> distinct(epochs.begin(), epochs.end());
    CHECK(distinct.size() == epochs.size());
    auto database = dir.open();
    CHECK(SqlLeaseStore(*database).read().epoch == epochs.size());
  }
}
