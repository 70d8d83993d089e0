// A real plugin library using the shared database through the C ABI (plugins/dbuser.c), driven by
// the plugin host over a real SQLite database whose lease the test sets directly; and plugins
// built against ABI 1.0 running beside it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "db/db_test_support.hpp"
#include "host/plugin_host.hpp"
#include "host_test_support.hpp"

namespace emsnode::host {
namespace {

using db::testing::DbDir;
using db::testing::set_lease;
using testing::LogCapture;
using testing::Sandbox;

const std::string kNotStarted =
    "create write=1 error=db_write refused: the plugin is not started (writes are allowed from "
    "start until stop returns)";

// A shared database in which node-a (the sandbox's node id) holds the lease at epoch 7.
struct SharedDb {
  SharedDb() { set_lease(*database, "node-a", 7, 60000); }

  std::int64_t version() {
    const db::Rows rows =
        database->query("SELECT version FROM schema_versions WHERE component = 'plugin.t-dbuser'");
    return rows.empty() ? -1 : rows.front().integer(0);
  }
  std::int64_t rows() {
    return database->query("SELECT COUNT(*) FROM t_dbuser_items").front().integer(0);
  }

  DbDir dir;
  std::unique_ptr<db::Database> database = dir.open_migrated();
};

// A host of node-a with the given plugin sections, over `db`, loaded and created.
std::unique_ptr<PluginHost> make_host(Sandbox& box, SharedDb& db, const std::string& sections) {
  auto host = std::make_unique<PluginHost>(box.node_config(sections));
  host->set_database(db.database.get());
  host->load();
  host->create_all();
  return host;
}

}  // namespace

TEST_CASE("a plugin migrates, writes under the lease and reads back through the C ABI") {
  Sandbox box;
  SharedDb db;
  box.add("t-dbuser");
  const auto host = make_host(box, db, box.section("t-dbuser"));
  host->set_epoch(7);
  REQUIRE(host->start_all());
  host->stop_all();

  CHECK(box.journal_lines() ==
        std::vector<std::string>{"create query=0 error=", kNotStarted,
                                 "row id=7 name=epoch 7 ratio=1.75 data=0001ff note=NULL",
                                 "start ok rows_in_txn=1"});
  CHECK(db.version() == 2);
  // Written for good: another node sees it.
  const db::Rows rows = db.dir.open()->query("SELECT id, name FROM t_dbuser_items");
  REQUIRE(rows.size() == 1);
  CHECK(rows.front().text(1) == "epoch 7");
}

TEST_CASE("plugins built against ABI 1.0 load and run beside a plugin of the current ABI") {
  Sandbox box;
  SharedDb db;
  LogCapture log(box.root() / "log.txt");
  box.add("t-healthy");
  box.add("t-dbuser");
  const auto host = make_host(box, db, box.section("t-healthy") + box.section("t-dbuser"));
  host->set_epoch(7);
  REQUIRE(host->start_all());
  for (const PluginStatus& status : host->status()) {
    CHECK(status.state == PluginState::running);
  }
  host->stop_all();
  host->destroy_all();

  const std::string text = log.text();
  CHECK(contains(text, "host plugin.loaded id=t-healthy version=1.0.0 abi=1.0 "));
  CHECK(contains(text, "host plugin.loaded id=t-dbuser version=1.0.0 abi=" +
                           std::to_string(EMSNODE_ABI_MAJOR) + "." +
                           std::to_string(EMSNODE_ABI_MINOR) + " "));
  const std::vector<std::string> journal = box.journal_lines();
  // healthy: config, start, stop, destroy; dbuser: create (2), a row, start ok.
  CHECK(std::count(journal.begin(), journal.end(), "start epoch=7 node=node-a") == 1);
  CHECK(std::count(journal.begin(), journal.end(), "stop post_refused=1") == 1);
  CHECK(std::count(journal.begin(), journal.end(), "start ok rows_in_txn=1") == 1);
}

TEST_CASE("migrations apply once: later starts and a restarted node find them done") {
  Sandbox box;
  SharedDb db;
  box.add("t-dbuser");
  {
    const auto host = make_host(box, db, box.section("t-dbuser"));
    host->set_epoch(7);
    REQUIRE(host->start_all());
    host->stop_all();
    // The node lost and took the lease back: a new epoch.
    set_lease(*db.database, "node-a", 8, 60000);
    host->set_epoch(8);
    REQUIRE(host->start_all());
  }
  const auto restarted = make_host(box, db, box.section("t-dbuser"));
  set_lease(*db.database, "node-a", 9, 60000);
  restarted->set_epoch(9);
  REQUIRE(restarted->start_all());

  CHECK(db.version() == 2);
  CHECK(db.rows() == 3);
  const std::vector<std::string> journal = box.journal_lines();
  CHECK(journal.back() == "start ok rows_in_txn=3");
}

TEST_CASE("after the lease moved to another node a start writes nothing and says why") {
  Sandbox box;
  SharedDb db;
  box.add("t-dbuser");
  const auto host = make_host(box, db, box.section("t-dbuser"));
  host->set_epoch(7);
  REQUIRE(host->start_all());
  host->stop_all();

  // node-b took the lease; this node has not learnt it yet and still believes in epoch 7.
  set_lease(*db.database, "node-b", 8, 60000);
  CHECK_FALSE(host->start_all());

  const std::string fenced =
      "fenced: this node (node-a, epoch 7) no longer holds the lease; holder node-b at epoch 8";
  CHECK(host->status().at(0).state == PluginState::failed);
  CHECK(host->status().at(0).last_error == fenced);
  CHECK(box.journal_lines().back() == "start migrate=3 error=" + fenced);
  CHECK(db.rows() == 1);
}

TEST_CASE("an older build of a plugin refuses a database its newer build migrated") {
  Sandbox box;
  SharedDb db;
  box.add("t-dbuser");
  {
    const auto newer = make_host(box, db, box.section("t-dbuser", "steps = 3"));
    newer->set_epoch(7);
    REQUIRE(newer->start_all());
  }
  CHECK(db.version() == 3);

  const auto older = make_host(box, db, box.section("t-dbuser", "steps = 2"));
  older->set_epoch(7);
  CHECK_FALSE(older->start_all());
  CHECK(older->status().at(0).last_error ==
        "db_migrate: the database holds schema version 3 of plugin.t-dbuser, newer than the 2 "
        "steps this build of the plugin knows: the plugin is older than its data (upgrade it; a "
        "plugin never downgrades its schema)");
  CHECK(db.version() == 3);
  CHECK(db.rows() == 1);
}

TEST_CASE("a host without a shared database runs plugins that do not need one") {
  Sandbox box;
  box.add("t-dbuser");
  box.add("t-healthy");
  PluginHost host(box.node_config(box.section("t-healthy") + box.section("t-dbuser")));
  host.load();
  host.create_all();
  host.set_epoch(7);
  CHECK_FALSE(host.start_all());

  CHECK(host.status().at(0).state == PluginState::running);  // t-healthy
  CHECK(host.status().at(1).state == PluginState::failed);   // t-dbuser
  CHECK(host.status().at(1).last_error == "db_migrate: no shared database");
  const std::vector<std::string> journal = box.journal_lines();
  CHECK(std::count(journal.begin(), journal.end(),
                   "create query=1 error=db_query: no shared database") == 1);
  CHECK(std::count(journal.begin(), journal.end(),
                   "create write=1 error=db_write: no shared database") == 1);
}

}  // namespace emsnode::host
