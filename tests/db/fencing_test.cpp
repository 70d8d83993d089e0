#include <catch2/catch.hpp>
#include <string>

#include "db_test_support.hpp"

using namespace emsnode::db;
using emsnode::db::testing::DbDir;
using emsnode::db::testing::set_lease;

namespace {

void create_writes(Database& database) {
  database.transaction(
      [](Transaction& tx) { tx.exec("CREATE TABLE writes (id INTEGER PRIMARY KEY, by TEXT)"); });
}

void fenced_write(Database& database, const std::string& node, std::uint64_t epoch) {
  database.fenced(node, epoch,
                  [&](Transaction& tx) { tx.exec("INSERT INTO writes (by) VALUES (?)", {node}); });
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
  CHECK_THROWS_WITH(fenced_write(*db, "n1", 0),
                    "fenced: this node (n1, epoch 0) no longer holds the lease; the lease is free "
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
                                 tx.exec("INSERT INTO writes (by) VALUES ('n1')");
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
  const Rows rows = new_active->query("SELECT by FROM writes ORDER BY id");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].text(0) == "n1");
  CHECK(rows[1].text(0) == "n2");
}
