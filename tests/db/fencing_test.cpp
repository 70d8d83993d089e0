#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "db_test_support.hpp"
#include "support/sanitizers.hpp"

using namespace emsnode::db;
using emsnode::db::testing::DbDir;
using emsnode::db::testing::set_lease;

namespace {

void create_writes(Database& database) {
  database.transaction(
      [](Transaction& tx) { tx.exec("CREATE TABLE writes (seq INTEGER NOT NULL, by TEXT)"); });
}

// Numbered in order without AUTOINCREMENT, which is not portable.
void insert_write(Transaction& tx, const std::string& node) {
  tx.exec("INSERT INTO writes (seq, by) SELECT COALESCE(MAX(seq), 0) + 1, ? FROM writes", {node});
}

void fenced_write(Database& database, const std::string& node, std::uint64_t epoch) {
  database.fenced(node, epoch, [&](Transaction& tx) { insert_write(tx, node); });
}

std::int64_t writes(Database& database) {
  return database.query("SELECT COUNT(*) FROM writes").front().integer(0);
}

}  // namespace

TEST_CASE("a fenced write by the lease holder at its epoch is committed") {
  DbDir dir;
  auto db = dir.open_migrated();
  create_writes(*db);
  set_lease(*db, "n1", 4, 10'000);
  fenced_write(*db, "n1", 4);
  CHECK(writes(*dir.open()) == 1);
}

TEST_CASE("a fenced write with a stale epoch fails and writes nothing") {
  DbDir dir;
  auto db = dir.open_migrated();
  create_writes(*db);
  set_lease(*db, "n1", 5, 10'000);
  CHECK_THROWS_AS(fenced_write(*db, "n1", 4), FencedError);
  CHECK_THROWS_WITH(fenced_write(*db, "n1", 4),
                    "fenced: this node (n1, epoch 4) no longer holds the lease; holder n1 at "
                    "epoch 5");
  CHECK(writes(*db) == 0);
}

TEST_CASE("a fenced write by a node that is not the holder fails and writes nothing") {
  DbDir dir;
  auto db = dir.open_migrated();
  create_writes(*db);
  set_lease(*db, "n2", 5, 10'000);
  CHECK_THROWS_WITH(fenced_write(*db, "n1", 4),
                    "fenced: this node (n1, epoch 4) no longer holds the lease; holder n2 at "
                    "epoch 5");
  CHECK(writes(*db) == 0);
}

TEST_CASE("a fenced write under an expired lease fails and writes nothing") {
  DbDir dir;
  auto db = dir.open_migrated();
  create_writes(*db);
  set_lease(*db, "n1", 4, -1500);
  CHECK_THROWS_AS(fenced_write(*db, "n1", 4), FencedError);
  CHECK_THROWS_WITH(fenced_write(*db, "n1", 4),
                    Catch::Matchers::StartsWith(
                        "fenced: this node (n1, epoch 4) no longer holds the lease; it expired") &&
                        Catch::Matchers::EndsWith("ms ago"));
  CHECK(writes(*db) == 0);
}

TEST_CASE("a fenced write while the lease was never taken fails") {
  DbDir dir;
  auto db = dir.open_migrated();
  create_writes(*db);
  CHECK_THROWS_WITH(fenced_write(*db, "n1", 1),
                    "fenced: this node (n1, epoch 1) no longer holds the lease; the lease is free "
                    "at epoch 0");
  CHECK(writes(*db) == 0);
}

TEST_CASE("a fenced write whose body throws writes nothing") {
  DbDir dir;
  auto db = dir.open_migrated();
  create_writes(*db);
  set_lease(*db, "n1", 4, 10'000);
  CHECK_THROWS_WITH(db->fenced("n1", 4,
                               [](Transaction& tx) {
                                 insert_write(tx, "n1");
                                 throw DbError("plugin refused");
                               }),
                    "plugin refused");
  CHECK(writes(*db) == 0);
}

TEST_CASE("a stale active's fenced write fails once another node took the lease") {
  DbDir dir;
  auto old_active = dir.open_migrated();
  auto new_active = dir.open();
  create_writes(*old_active);
  set_lease(*old_active, "n1", 4, 10'000);
  fenced_write(*old_active, "n1", 4);
  set_lease(*new_active, "n2", 5, 10'000);
  CHECK_THROWS_AS(fenced_write(*old_active, "n1", 4), FencedError);
  fenced_write(*new_active, "n2", 5);
  const Rows rows = new_active->query("SELECT by FROM writes ORDER BY seq");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].text(0) == "n1");
  CHECK(rows[1].text(0) == "n2");
}

TEST_CASE("a takeover waits for a fenced transaction in flight, which then writes no more") {
  // The holder's fenced transaction checks the lease and, while it runs, the lease expires and
  // another node takes it. The takeover must wait for the transaction (SQLite: its write lock;
  // PostgreSQL: the lease row it locked FOR SHARE), so that no write of the old tenure commits
  // after the new tenure began.
  DbDir dir;
  auto old_active = dir.open_migrated();
  auto new_active = dir.open(/*busy_timeout_ms=*/5000);
  create_writes(*old_active);
  set_lease(*old_active, "n1", 4, 300);
  std::promise<void> inside;
  std::thread holder([&] {
    old_active->fenced("n1", 4, [&](Transaction& tx) {
      insert_write(tx, "n1");
      inside.set_value();
      std::this_thread::sleep_for(std::chrono::milliseconds(900));  // the lease expires
      insert_write(tx, "n1");
    });
  });
  inside.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::int64_t taken = 0;
  std::int64_t seen_by_new_tenure = -1;
  new_active->transaction([&](Transaction& tx) {
    taken = tx.exec(
        "UPDATE lease SET holder = 'n2', epoch = epoch + 1, expires_at_ms = ? "
        "WHERE id = 1 AND expires_at_ms <= ?",
        {new_active->now_ms() + 10'000, new_active->now_ms()});
    seen_by_new_tenure = tx.query("SELECT COUNT(*) FROM writes").front().integer(0);
  });
  holder.join();
  REQUIRE(taken == 1);
  // Both writes of the old tenure were committed before the new one began, none after.
  CHECK(seen_by_new_tenure == 2);
  CHECK_THROWS_AS(fenced_write(*old_active, "n1", 4), FencedError);
  CHECK(writes(*new_active) == 2);
}

TEST_CASE("a fenced write at epoch 0 is refused without asking the database") {
  DbDir dir;
  const auto database = dir.open_migrated();
  set_lease(*database, "n1", 0, 5000);  // even a lease row that says epoch 0 is not held by it
  CHECK_THROWS_AS(database->fenced("n1", 0, [](Transaction&) { FAIL("the body ran"); }),
                  FencedError);
}

TEST_CASE("a call waiting on the database fails at once when interrupted from another thread") {
  DbDir dir;
  const auto database = dir.open(10000);
  // A statement that runs for seconds on either backend.
  const std::string slow =
      database->backend() == "postgresql"
          ? "SELECT CAST(pg_sleep(5) AS TEXT)"
          : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000) "
            "SELECT COUNT(*) FROM c";
  const auto started = std::chrono::steady_clock::now();
  auto call = std::async(std::launch::async, [&] { database->query(slow); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  database->interrupt();
  CHECK_THROWS_AS(call.get(), DbError);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
  // The next call runs normally (PostgreSQL: on a new connection).
  CHECK(database->query("SELECT 1").front().integer(0) == 1);
}
