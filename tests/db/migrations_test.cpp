#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "db/migrations.hpp"
#include "db/schema.hpp"
#include "db_test_support.hpp"

using namespace emsnode::db;
using Catch::Matchers::Contains;
using emsnode::db::testing::DbDir;

namespace {

// A plugin's migrations: step 1 creates a table, every step records itself in it.
std::vector<Migration> plugin_steps(int count) {
  std::vector<Migration> steps;
  for (int version = 1; version <= count; ++version) {
    Migration step{version, "step " + std::to_string(version), {}};
    if (version == 1) step.statements.push_back("CREATE TABLE applied (step INTEGER NOT NULL)");
    step.statements.push_back("INSERT INTO applied (step) VALUES (" + std::to_string(version) +
                              ")");
    steps.push_back(step);
  }
  return steps;
}

void set_version(Database& database, const std::string& component, int version) {
  database.transaction([&](Transaction& tx) {
    tx.exec("UPDATE schema_versions SET version = ? WHERE component = ?",
            {static_cast<std::int64_t>(version), component});
  });
}

}  // namespace

TEST_CASE("a fresh database is migrated to the current core schema") {
  DbDir dir;
  auto db = dir.open();
  const SchemaState fresh = inspect_core(*db);
  CHECK(fresh.status == SchemaStatus::missing);
  CHECK(fresh.db_version == 0);
  CHECK(fresh.binary_version == kCoreSchemaVersion);

  const std::int64_t before = db->now_ms();
  migrate_core(*db, "n1");
  const SchemaState migrated = inspect_core(*dir.open());
  CHECK(migrated.status == SchemaStatus::current);
  CHECK(migrated.db_version == kCoreSchemaVersion);

  const Rows lease = db->query("SELECT holder, epoch, expires_at_ms, os_lock FROM lease");
  REQUIRE(lease.size() == 1);
  CHECK(lease[0].is_null(0));
  CHECK(lease[0].integer(1) == 0);
  CHECK(lease[0].integer(2) == 0);
  CHECK(lease[0].integer(3) == 0);
  const Rows version = db->query(
      "SELECT version, updated_at_ms, updated_by FROM schema_versions WHERE "
      "component = 'core'");
  REQUIRE(version.size() == 1);
  CHECK(version[0].integer(0) == kCoreSchemaVersion);
  CHECK(version[0].integer(1) >= before);
  CHECK(version[0].text(2) == "n1");
  // The lease table holds exactly one row.
  CHECK_THROWS_AS(db->transaction([](Transaction& tx) {
    tx.exec("INSERT INTO lease (id, epoch, expires_at_ms) VALUES (2, 0, 0)");
  }),
                  DbError);
}

TEST_CASE("the core schema version is the last core migration") {
  REQUIRE_FALSE(core_migrations().empty());
  CHECK(core_migrations().back().version == kCoreSchemaVersion);
  CHECK(core_migrations().size() == static_cast<std::size_t>(kCoreSchemaVersion));
}

TEST_CASE("migrating a current database again changes nothing") {
  DbDir dir;
  auto db = dir.open_migrated();
  migrate_core(*db, "n2");
  CHECK(db->query("SELECT updated_by FROM schema_versions WHERE component = 'core'")
            .front()
            .text(0) == "n0");
  CHECK(inspect_core(*db).status == SchemaStatus::current);
}

TEST_CASE("inspect reports missing older and newer schemas without migrating") {
  DbDir dir;
  auto db = dir.open();
  const std::string component = "plugin.sample";
  CHECK(inspect(*db, component, 3).status == SchemaStatus::missing);

  migrate(*db, component, plugin_steps(1), "n1");
  const SchemaState older = inspect(*db, component, 3);
  CHECK(older.status == SchemaStatus::older);
  CHECK(older.db_version == 1);
  CHECK(older.binary_version == 3);
  CHECK(db->query("SELECT COUNT(*) FROM applied").front().integer(0) == 1);
  CHECK(inspect(*db, component, 1).status == SchemaStatus::current);

  set_version(*db, component, 5);
  const SchemaState newer = inspect(*db, component, 3);
  CHECK(newer.status == SchemaStatus::newer);
  CHECK(newer.db_version == 5);
  CHECK(schema_status_name(newer.status) == "newer");
  // Components are independent: the core is still missing here.
  CHECK(inspect_core(*db).status == SchemaStatus::missing);
}

TEST_CASE("a database newer than the binary is reported newer and migrate refuses it") {
  DbDir dir;
  auto db = dir.open_migrated();
  set_version(*db, "core", kCoreSchemaVersion + 1);
  CHECK(inspect_core(*db).status == SchemaStatus::newer);
  CHECK_THROWS_AS(migrate_core(*db, "n1"), DbError);
  CHECK_THROWS_WITH(
      migrate_core(*db, "n1"),
      Contains("core schema in the database is version " + std::to_string(kCoreSchemaVersion + 1) +
               ", newer than this binary's version " + std::to_string(kCoreSchemaVersion)));
  CHECK(db->query("SELECT version FROM schema_versions WHERE component = 'core'")
            .front()
            .integer(0) == kCoreSchemaVersion + 1);
}

TEST_CASE("migrate applies only the steps the database lacks") {
  DbDir dir;
  auto db = dir.open();
  migrate(*db, "plugin.sample", plugin_steps(2), "n1");
  migrate(*db, "plugin.sample", plugin_steps(4), "n2");
  const Rows applied = db->query("SELECT step FROM applied ORDER BY step");
  REQUIRE(applied.size() == 4);
  for (std::size_t i = 0; i < applied.size(); ++i) {
    CHECK(applied[i].integer(0) == static_cast<std::int64_t>(i) + 1);
  }
  CHECK(db->query("SELECT updated_by FROM schema_versions WHERE component = 'plugin.sample'")
            .front()
            .text(0) == "n2");
}

TEST_CASE("a failing step leaves the schema at the step before it") {
  DbDir dir;
  auto db = dir.open();
  auto steps = plugin_steps(1);
  steps.push_back({2, "broken", {"CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"}});
  CHECK_THROWS_WITH(migrate(*db, "plugin.sample", steps, "n1"),
                    Contains("THIS IS NOT SQL") && Contains("syntax error"));
  CHECK(inspect(*db, "plugin.sample", 2).db_version == 1);
  CHECK_THROWS_WITH(db->query("SELECT x FROM half"),
                    Contains(dir.postgres() ? "does not exist" : "no such table"));
}

TEST_CASE("migrations that are not numbered from 1 without gaps are refused") {
  DbDir dir;
  auto db = dir.open();
  auto steps = plugin_steps(2);
  steps[1].version = 3;
  CHECK_THROWS_WITH(migrate(*db, "plugin.sample", steps, "n1"),
                    Contains("must be numbered 1, 2, 3") && Contains("step 2 has version 3"));
  CHECK(inspect(*db, "plugin.sample", 2).status == SchemaStatus::missing);
}

TEST_CASE("nodes racing to migrate apply each step exactly once") {
  DbDir dir;
  constexpr int kNodes = 4;
  constexpr int kSteps = 6;
  std::vector<std::thread> nodes;
  nodes.reserve(kNodes);
  std::vector<std::string> errors(kNodes);
  std::atomic<int> ready{0};
  for (int i = 0; i < kNodes; ++i) {
    nodes.emplace_back([&, i] {
      const std::string node_id = "n" + std::to_string(i);
      try {
        auto db = dir.open(/*busy_timeout_ms=*/10'000);
        ++ready;
        while (ready < kNodes) std::this_thread::yield();
        migrate_core(*db, node_id);
        migrate(*db, "plugin.sample", plugin_steps(kSteps), node_id);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = node_id + ": " + e.what();
        ++ready;
      }
    });
  }
  for (auto& node : nodes) node.join();
  for (const auto& error : errors) CHECK(error == "");
  auto db = dir.open();
  CHECK(inspect_core(*db).status == SchemaStatus::current);
  CHECK(db->query("SELECT COUNT(*) FROM lease").front().integer(0) == 1);
  const Rows applied = db->query("SELECT step, COUNT(*) FROM applied GROUP BY step ORDER BY step");
  REQUIRE(applied.size() == kSteps);
  for (const Row& row : applied) {
    INFO("step " << row.integer(0));
    CHECK(row.integer(1) == 1);
  }
}
