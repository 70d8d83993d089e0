#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "db/node_registry.hpp"
#include "db_test_support.hpp"

using namespace emsnode::db;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using emsnode::db::testing::DbDir;

namespace {

NodeRecord node(const std::string& id, const std::string& instance, const std::string& address,
                const std::string& backup_dir) {
  NodeRecord record;
  record.id = id;
  record.instance = instance;
  record.address = address;
  record.admin_address = "127.0.0.1:9090";
  record.version = "0.1.0";
  record.backup_dir = backup_dir;
  record.role = "passive";
  record.reason = "lease_held";
  return record;
}

}  // namespace

TEST_CASE("a registered node is listed with how long ago it was seen") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  NodeRecord n1 = node("n1", "i-1", "10.0.0.1:8013", "/var/backups/n1");
  n1.admin_address.clear();
  registry.register_node(n1, false, 5s);
  registry.register_node(node("n2", "i-2", "10.0.0.2:8013", "/var/backups/n2"), false, 5s);

  const auto nodes = NodeRegistry(*dir.open()).list();
  REQUIRE(nodes.size() == 2);
  const NodeRecord& first = nodes[0].record;
  CHECK(first.id == "n1");
  CHECK(first.instance == "i-1");
  CHECK(first.address == "10.0.0.1:8013");
  CHECK(first.admin_address.empty());
  CHECK(first.version == "0.1.0");
  CHECK(first.backup_dir == "/var/backups/n1");
  CHECK(first.role == "passive");
  CHECK(first.reason == "lease_held");
  CHECK_FALSE(first.paused);
  REQUIRE(first.started_at_ms);
  CHECK(*first.started_at_ms == first.last_seen_ms);
  CHECK(nodes[0].seen_ms_ago >= 0);
  CHECK(nodes[0].seen_ms_ago < 5000);
  CHECK(nodes[1].record.id == "n2");
  CHECK(nodes[1].record.admin_address == "127.0.0.1:9090");
}

TEST_CASE("a second running node with the same id is refused naming the first") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  registry.register_node(node("n1", "i-1", "10.0.0.1:8013", "/var/backups/a"), false, 5s);
  auto other_db = dir.open();
  NodeRegistry other(*other_db);
  CHECK_THROWS_AS(
      other.register_node(node("n1", "i-2", "10.0.0.2:8013", "/var/backups/b"), false, 5s),
      RegistryError);
  CHECK_THROWS_WITH(
      other.register_node(node("n1", "i-2", "10.0.0.2:8013", "/var/backups/b"), false, 5s),
      Contains("node id \"n1\" is already used by a running node at 10.0.0.1:8013 (seen ") &&
          Contains("ms ago): give each node its own [node] id"));
  const auto nodes = registry.list();
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0].record.instance == "i-1");
}

TEST_CASE("the same id is accepted when the node proves its identity with its node lock") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  registry.register_node(node("n1", "i-1", "10.0.0.1:8013", "/var/backups/a"), false, 5s);
  registry.register_node(node("n1", "i-2", "10.0.0.1:8013", "/var/backups/a"), true, 5s);
  CHECK(registry.list().at(0).record.instance == "i-2");
  // The earlier instance's heartbeats now fail: the row is no longer its own.
  CHECK_FALSE(registry.heartbeat("n1", "i-1", "passive", "", false));
}

TEST_CASE(
    "the same id is accepted once the other instance has not been seen for the liveness "
    "period") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  registry.register_node(node("n1", "i-1", "10.0.0.1:8013", "/var/backups/a"), false, 5s);
  CHECK_THROWS_AS(
      registry.register_node(node("n1", "i-2", "10.0.0.1:8013", "/var/backups/a"), false, 5s),
      RegistryError);
  std::this_thread::sleep_for(60ms);
  registry.register_node(node("n1", "i-2", "10.0.0.1:8013", "/var/backups/a"), false, 50ms);
  CHECK(registry.list().at(0).record.instance == "i-2");
}

TEST_CASE("the same id is accepted after the other instance stopped cleanly") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  registry.register_node(node("n1", "i-1", "10.0.0.1:8013", "/var/backups/a"), false, 5s);
  CHECK_FALSE(registry.mark_stopped("n1", "i-other"));
  CHECK(registry.mark_stopped("n1", "i-1"));
  CHECK(registry.list().at(0).record.role == kStoppedRole);
  registry.register_node(node("n1", "i-2", "10.0.0.1:8013", "/var/backups/a"), false, 5s);
  CHECK(registry.list().at(0).record.role == "passive");
}

TEST_CASE("a node with the backup dir of another node is refused naming that node") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  registry.register_node(node("n1", "i-1", "10.0.0.1:8013", "/srv/backups/emsnode"), false, 5s);
  const NodeRecord n2 = node("n2", "i-2", "10.0.0.2:8013", "/srv/backups/./emsnode/");
  CHECK_THROWS_AS(registry.register_node(n2, false, 5s), RegistryError);
  CHECK_THROWS_WITH(registry.register_node(n2, true, 5s),
                    Contains("backup dir /srv/backups/./emsnode/ of node \"n2\" is already the "
                             "backup dir of node \"n1\" at 10.0.0.1:8013") &&
                        Contains("two nodes must never share a backup dir"));
  CHECK(registry.list().size() == 1);

  // Once the operator retires n1, its backup dir is free.
  CHECK(registry.remove("n1"));
  registry.register_node(n2, false, 5s);
  CHECK(registry.list().at(0).record.id == "n2");
}

TEST_CASE("backup dirs are compared as normalised paths") {
  CHECK(normalise_backup_dir("/srv/backups/./emsnode/") == "/srv/backups/emsnode");
  CHECK(normalise_backup_dir("/srv/x/../backups//emsnode") == "/srv/backups/emsnode");
  CHECK(normalise_backup_dir("/") == "/");
  CHECK(normalise_backup_dir("/srv/backups/emsnode") != normalise_backup_dir("/srv/backups/n2"));
}

TEST_CASE("a heartbeat refreshes last seen role reason and paused") {
  DbDir dir;
  auto db = dir.open_migrated();
  NodeRegistry registry(*db);
  registry.register_node(node("n1", "i-1", "10.0.0.1:8013", "/var/backups/a"), false, 5s);
  const std::int64_t registered = registry.list().at(0).record.last_seen_ms;
  std::this_thread::sleep_for(20ms);
  REQUIRE(registry.heartbeat("n1", "i-1", "active", "acquired", true));
  const NodeRecord after = registry.list().at(0).record;
  CHECK(after.last_seen_ms >= registered + 19);
  CHECK(after.role == "active");
  CHECK(after.reason == "acquired");
  CHECK(after.paused);
  CHECK_FALSE(registry.heartbeat("n9", "i-9", "active", "", false));
}
