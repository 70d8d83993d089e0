// The database services of the host table (db_query, db_write, db_exec, db_migrate and
// last_error), called as a plugin calls them, through host_api() with a plugin's context, against
// a real SQLite database whose lease the test sets directly.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "db/db_test_support.hpp"
#include "db/migrations.hpp"
#include "host/executor.hpp"
#include "host/host_services.hpp"

namespace emsnode::host {
namespace {

using db::testing::DbDir;
using db::testing::set_lease;

const emsnode_host_api& api = host_api();

emsnode_str str(std::string_view text) {
  return emsnode_str{text.data(), text.size()};
}

std::string text(emsnode_str view) {
  return view.len == 0 ? std::string() : std::string(view.ptr, view.len);
}

// The ABI's view of a test value; it points into `value`.
emsnode_db_value abi_value(const db::Value& value) {
  emsnode_db_value out{};
  if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    out.type = EMSNODE_DB_INTEGER;
    out.integer = *integer;
  } else if (const auto* real = std::get_if<double>(&value)) {
    out.type = EMSNODE_DB_FLOAT;
    out.floating = *real;
  } else if (const auto* bytes = std::get_if<std::string>(&value)) {
    out.type = EMSNODE_DB_TEXT;
    out.bytes = str(*bytes);
  } else if (const auto* blob = std::get_if<db::Blob>(&value)) {
    out.type = EMSNODE_DB_BLOB;
    out.bytes = str(blob->bytes);
  }
  return out;
}

std::vector<emsnode_db_value> abi_values(const db::Params& params) {
  std::vector<emsnode_db_value> out;
  for (const db::Value& value : params) out.push_back(abi_value(value));
  return out;
}

// Row callback collecting every row into a db::Rows.
int collect(void* user_data, const emsnode_db_value* columns, size_t count) {
  std::vector<db::Value> row;
  for (size_t i = 0; i < count; ++i) {
    switch (columns[i].type) {
      case EMSNODE_DB_INTEGER:
        row.emplace_back(columns[i].integer);
        break;
      case EMSNODE_DB_FLOAT:
        row.emplace_back(columns[i].floating);
        break;
      case EMSNODE_DB_TEXT:
        row.emplace_back(text(columns[i].bytes));
        break;
      case EMSNODE_DB_BLOB:
        row.emplace_back(db::Blob{text(columns[i].bytes)});
        break;
      default:
        row.emplace_back(nullptr);
    }
  }
  static_cast<db::Rows*>(user_data)->emplace_back(std::move(row));
  return 0;
}

using Body = std::function<emsnode_status(emsnode_db_txn*)>;

emsnode_status run_body(void* user_data, emsnode_db_txn* txn) {
  return (*static_cast<Body*>(user_data))(txn);
}

// One plugin ("t-direct": its tables are t_direct_...) of node-a, started, over a real database in
// which node-a holds the lease at epoch 7, as the host sets it up for a plugin.
class Plugin {
 public:
  explicit Plugin(std::string id = "t-direct") : id_(std::move(id)) {
    set_lease(*database_, "node-a", 7, 60000);
    shared_->node_id = "node-a";
    shared_->epoch = 7;
    shared_->metrics = std::make_shared<metrics::MetricsRegistry>();
    shared_->database = database_.get();
    context_.set_writable(true);
  }

  emsnode_host_ctx* ctx() { return context_.handle(); }
  PluginContext& context() { return context_; }
  HostShared& shared() { return *shared_; }
  db::Database& database() { return *database_; }
  // Another node's connection to the same database file.
  std::unique_ptr<db::Database> other_node() const { return dir_.open(); }
  std::string_view backend() const { return dir_.backend(); }

  std::string last_error() { return text(api.last_error(ctx())); }

  emsnode_status query(std::string_view sql, const db::Params& params, db::Rows* rows) {
    const std::vector<emsnode_db_value> values = abi_values(params);
    return api.db_query(ctx(), str(sql), values.data(), values.size(), &collect, rows);
  }
  emsnode_status write(Body body) { return api.db_write(ctx(), &run_body, &body); }
  static emsnode_status exec(emsnode_db_txn* txn, std::string_view sql,
                             const db::Params& params = {}, db::Rows* rows = nullptr,
                             std::uint64_t* changes = nullptr) {
    const std::vector<emsnode_db_value> values = abi_values(params);
    return api.db_exec(txn, str(sql), values.data(), values.size(),
                       rows != nullptr ? &collect : nullptr, rows, changes);
  }
  emsnode_status migrate(const std::vector<std::string>& steps) {
    std::vector<emsnode_str> texts;
    for (const std::string& step : steps) texts.push_back(str(step));
    return api.db_migrate(ctx(), texts.data(), texts.size());
  }

  // The version recorded for this plugin's schema, or -1 when none is.
  std::int64_t schema_version() {
    const db::Rows rows =
        database_->query("SELECT version FROM schema_versions WHERE component = 'plugin.t-direct'");
    return rows.empty() ? -1 : rows.front().integer(0);
  }
  std::int64_t count(std::string_view table) {
    return database_->query("SELECT COUNT(*) FROM " + std::string(table)).front().integer(0);
  }

 private:
  std::string id_;
  DbDir dir_;
  std::unique_ptr<db::Database> database_ = dir_.open_migrated();
  std::shared_ptr<HostShared> shared_ = std::make_shared<HostShared>();
  Executor executor_{std::chrono::seconds(1)};
  std::shared_ptr<TaskGroup> tasks_ = std::make_shared<TaskGroup>(executor_, id_);
  PluginContext context_{id_, config::Values{}, shared_, tasks_};
};

const std::vector<std::string> kItems = {
    "CREATE TABLE t_direct_items (id BIGINT PRIMARY KEY, n BIGINT, r DOUBLE PRECISION, "
    "t TEXT, b BYTEA)"};

emsnode_status insert_item(emsnode_db_txn* txn, std::int64_t id) {
  return Plugin::exec(txn, "INSERT INTO t_direct_items (id) VALUES (?)", {id});
}

}  // namespace

TEST_CASE("values of every type round-trip through a fenced write and a read") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  // Text with a NUL byte inside is SQLite's alone: PostgreSQL's text cannot hold one.
  const bool postgres = plugin.database().backend() == "postgresql";
  const std::string utf8_with_nul = postgres ? std::string("é x", 4) : std::string("é\0x", 4);
  const db::Params values = {std::int64_t{-9007199254740993}, 2.5, utf8_with_nul,
                             db::Blob{std::string("\0\x01\xff", 3)}};

  std::uint64_t changes = 0;
  REQUIRE(plugin.write([&](emsnode_db_txn* txn) {
    return Plugin::exec(txn, "INSERT INTO t_direct_items (id, n, r, t, b) VALUES (1, ?, ?, ?, ?)",
                        values, nullptr, &changes);
  }) == EMSNODE_OK);
  CHECK(changes == 1);
  REQUIRE(plugin.write([&](emsnode_db_txn* txn) {
    return Plugin::exec(txn, "INSERT INTO t_direct_items (id, n, r, t, b) VALUES (2, ?, ?, ?, ?)",
                        {nullptr, nullptr, std::string(), db::Blob{}});
  }) == EMSNODE_OK);

  db::Rows rows;
  REQUIRE(plugin.query("SELECT n, r, t, b FROM t_direct_items WHERE id >= ? ORDER BY id",
                       {std::int64_t{1}}, &rows) == EMSNODE_OK);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].columns() == values);
  CHECK(rows[1].columns() == std::vector<db::Value>{nullptr, nullptr, std::string(), db::Blob{}});

  // Parameters come back as the same values when a statement just selects them.
  db::Rows echoed;
  const db::Params all = {nullptr, std::int64_t{7}, -0.125, std::string("text"),
                          db::Blob{std::string("\xff", 1)}};
  REQUIRE(plugin.query("SELECT ?, ?, ?, ?, ?", all, &echoed) == EMSNODE_OK);
  REQUIRE(echoed.size() == 1);
  CHECK(echoed[0].columns() == all);
}

TEST_CASE("a parameter of a type the host does not know is refused by its index") {
  Plugin plugin;
  emsnode_db_value values[2] = {};
  values[0].type = EMSNODE_DB_INTEGER;
  values[1].type = static_cast<emsnode_db_type>(99);
  db::Rows rows;
  CHECK(api.db_query(plugin.ctx(), str("SELECT ?, ?"), values, 2, &collect, &rows) ==
        EMSNODE_ERROR);
  CHECK(plugin.last_error() == "db_query: parameter 1 has the unknown type 99");
  CHECK(rows.empty());
}

TEST_CASE("a write while holding the lease commits, and another node reads it") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  REQUIRE(plugin.write([](emsnode_db_txn* txn) { return insert_item(txn, 1); }) == EMSNODE_OK);
  CHECK(plugin.last_error().empty());
  CHECK(plugin.other_node()->query("SELECT id FROM t_direct_items").size() == 1);
}

TEST_CASE("a write after the lease moved fails with the fencing reason and writes nothing") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  REQUIRE(plugin.write([](emsnode_db_txn* txn) { return insert_item(txn, 1); }) == EMSNODE_OK);

  std::string reason;
  SECTION("to another node at a new epoch") {
    set_lease(plugin.database(), "node-b", 8, 60000);
    reason = "holder node-b at epoch 8";
  }
  SECTION("to this node at a new epoch: this instance's epoch is stale") {
    set_lease(plugin.database(), "node-a", 8, 60000);
    reason = "holder node-a at epoch 8";
  }
  SECTION("nowhere: it expired") {
    set_lease(plugin.database(), "node-a", 7, -5000);
    reason = "it expired";
  }
  bool body_ran = false;
  CHECK(plugin.write([&](emsnode_db_txn* txn) {
    body_ran = true;
    return insert_item(txn, 2);
  }) == EMSNODE_FENCED);
  CHECK_THAT(plugin.last_error(),
             Catch::StartsWith("fenced: this node (node-a, epoch 7) no longer holds the lease; ") &&
                 Catch::Contains(reason));
  CHECK_FALSE(body_ran);
  CHECK(plugin.count("t_direct_items") == 1);
}

TEST_CASE("a body that does not return OK rolls back what it wrote") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  CHECK(plugin.write([](emsnode_db_txn* txn) {
    REQUIRE(insert_item(txn, 1) == EMSNODE_OK);
    return EMSNODE_NOT_FOUND;
  }) == EMSNODE_ERROR);
  CHECK(plugin.last_error() == "db_write: the transaction body returned 2: rolled back");
  CHECK(plugin.count("t_direct_items") == 0);
}

TEST_CASE("a failed statement spoils its transaction: nothing of it is written") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  std::string first_error;
  emsnode_status second = EMSNODE_OK;
  CHECK(plugin.write([&](emsnode_db_txn* txn) {
    REQUIRE(insert_item(txn, 1) == EMSNODE_OK);
    CHECK(insert_item(txn, 1) == EMSNODE_ERROR);  // the same key again
    first_error = plugin.last_error();
    second = insert_item(txn, 2);
    return EMSNODE_OK;  // as a plugin that ignores the failure would
  }) == EMSNODE_ERROR);
  CHECK_THAT(first_error,
             Catch::StartsWith("db_exec: ") &&
                 (Catch::Contains("UNIQUE") || Catch::Contains("violates unique constraint")));
  CHECK(second == EMSNODE_ERROR);
  CHECK(plugin.last_error() == first_error);
  CHECK(plugin.count("t_direct_items") == 0);
}

TEST_CASE("db_exec reports the rows a statement returns, and how many it changed") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  db::Rows returned;
  std::uint64_t returned_count = 0;
  std::uint64_t updated = 0;
  REQUIRE(plugin.write([&](emsnode_db_txn* txn) {
    for (std::int64_t id = 1; id <= 3; ++id) REQUIRE(insert_item(txn, id) == EMSNODE_OK);
    REQUIRE(Plugin::exec(txn, "UPDATE t_direct_items SET n = id * 10 WHERE id >= 2", {}, nullptr,
                         &updated) == EMSNODE_OK);
    return Plugin::exec(txn, "SELECT id, n FROM t_direct_items WHERE n IS NOT NULL ORDER BY id", {},
                        &returned, &returned_count);
  }) == EMSNODE_OK);
  CHECK(updated == 2);
  CHECK(returned_count == 2);
  REQUIRE(returned.size() == 2);
  CHECK(returned[1].columns() == std::vector<db::Value>{std::int64_t{3}, std::int64_t{30}});
}

TEST_CASE("db_exec works only inside its body, on the body's thread") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  emsnode_db_txn* kept = nullptr;
  emsnode_status from_other_thread = EMSNODE_OK;
  REQUIRE(plugin.write([&](emsnode_db_txn* txn) {
    kept = txn;
    std::thread([&] { from_other_thread = insert_item(txn, 1); }).join();
    return EMSNODE_OK;
  }) == EMSNODE_OK);
  CHECK(from_other_thread == EMSNODE_ERROR);
  CHECK(insert_item(kept, 2) == EMSNODE_ERROR);
  CHECK(plugin.last_error() ==
        "db_exec refused: its txn is not that of a db_write body running on this thread");
  CHECK(plugin.count("t_direct_items") == 0);
}

TEST_CASE("inside a body every database call but db_exec is refused") {
  Plugin plugin;
  std::vector<std::string> errors;
  REQUIRE(plugin.write([&](emsnode_db_txn*) {
    db::Rows rows;
    CHECK(plugin.query("SELECT 1", {}, &rows) == EMSNODE_ERROR);
    errors.push_back(plugin.last_error());
    CHECK(plugin.write([](emsnode_db_txn*) { return EMSNODE_OK; }) == EMSNODE_ERROR);
    errors.push_back(plugin.last_error());
    CHECK(plugin.migrate(kItems) == EMSNODE_ERROR);
    errors.push_back(plugin.last_error());
    return EMSNODE_OK;
  }) == EMSNODE_OK);
  CHECK(errors == std::vector<std::string>{
                      "db_query refused inside a db_write body: read with db_exec on its txn",
                      "db_write refused inside a db_write body: run statements with db_exec on "
                      "its txn",
                      "db_migrate refused inside a db_write body: run statements with db_exec on "
                      "its txn"});
}

TEST_CASE("a plugin that is not started may read but not write or migrate") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  plugin.context().set_writable(false);
  bool body_ran = false;
  CHECK(plugin.write([&](emsnode_db_txn*) {
    body_ran = true;
    return EMSNODE_OK;
  }) == EMSNODE_ERROR);
  CHECK(plugin.last_error() ==
        "db_write refused: the plugin is not started (writes are allowed from start until stop "
        "returns)");
  CHECK_FALSE(body_ran);
  CHECK(plugin.migrate({kItems[0], "CREATE INDEX t_direct_n ON t_direct_items (n)"}) ==
        EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::StartsWith("db_migrate refused: the plugin is not"));
  CHECK(plugin.schema_version() == 1);
  db::Rows rows;
  CHECK(plugin.query("SELECT COUNT(*) FROM t_direct_items", {}, &rows) == EMSNODE_OK);
}

TEST_CASE("without a shared database every database call fails and says so") {
  Plugin plugin;
  plugin.shared().database = nullptr;
  db::Rows rows;
  CHECK(plugin.query("SELECT 1", {}, &rows) == EMSNODE_ERROR);
  CHECK(plugin.last_error() == "db_query: no shared database");
  CHECK(plugin.write([](emsnode_db_txn*) { return EMSNODE_OK; }) == EMSNODE_ERROR);
  CHECK(plugin.last_error() == "db_write: no shared database");
  CHECK(plugin.migrate(kItems) == EMSNODE_ERROR);
  CHECK(plugin.last_error() == "db_migrate: no shared database");
}

TEST_CASE("db_query refuses a statement that writes, and more than one statement") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  REQUIRE(plugin.write([](emsnode_db_txn* txn) { return insert_item(txn, 1); }) == EMSNODE_OK);
  db::Rows rows;
  CHECK(plugin.query("DELETE FROM t_direct_items", {}, &rows) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::StartsWith("db_query: "));
  CHECK(plugin.query("SELECT 1; DELETE FROM t_direct_items", {}, &rows) == EMSNODE_ERROR);
  CHECK(plugin.count("t_direct_items") == 1);
}

TEST_CASE("migrations apply each step once, record the version, and refuse a newer database") {
  Plugin plugin;
  const std::vector<std::string> two = {kItems[0],
                                        "CREATE INDEX t_direct_items_n ON t_direct_items (n)"};
  REQUIRE(plugin.migrate(two) == EMSNODE_OK);
  CHECK(plugin.schema_version() == 2);
  // Again, as at every start: the steps are not run again (CREATE TABLE would fail if they were).
  REQUIRE(plugin.migrate(two) == EMSNODE_OK);
  CHECK(plugin.schema_version() == 2);

  std::vector<std::string> three = two;
  three.push_back("ALTER TABLE t_direct_items ADD COLUMN extra BIGINT");
  REQUIRE(plugin.migrate(three) == EMSNODE_OK);
  CHECK(plugin.schema_version() == 3);

  CHECK(plugin.migrate(two) == EMSNODE_ERROR);
  CHECK(plugin.last_error() ==
        "db_migrate: the database holds schema version 3 of plugin.t-direct, newer than the 2 "
        "steps this build of the plugin knows: the plugin is older than its data (upgrade it; a "
        "plugin never downgrades its schema)");
  CHECK(plugin.schema_version() == 3);
}

TEST_CASE("a failed step leaves the schema at the version before it") {
  Plugin plugin;
  CHECK(plugin.migrate({kItems[0], "CREATE INDEX t_direct_x ON t_direct_items (no_such_column)"}) ==
        EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(),
             Catch::StartsWith("db_migrate: ") && Catch::Contains("no_such_column"));
  CHECK(plugin.schema_version() == 1);
}

TEST_CASE("a migration step holding two statements is refused") {
  Plugin plugin;
  CHECK(
      plugin.migrate({"CREATE TABLE t_direct_a (x BIGINT); CREATE TABLE t_direct_b (y BIGINT)"}) ==
      EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::Contains("one statement at a time"));
  CHECK(plugin.schema_version() == -1);
}

TEST_CASE("a migration step that touches a table that is not the plugin's is refused") {
  Plugin plugin;
  const std::string step = GENERATE(
      std::string("CREATE TABLE items (id BIGINT)"),
      std::string("create table if not exists \"main\".\"t_other_items\" (id BIGINT)"),
      std::string("CREATE UNIQUE INDEX t_direct_holder ON lease (holder)"),
      std::string("DROP TABLE IF EXISTS nodes"),
      std::string("ALTER TABLE t_direct_items RENAME TO items"),
      std::string("-- a comment first\nCREATE VIEW settings_copy AS SELECT * FROM settings"));
  CAPTURE(step);
  CHECK(plugin.migrate({kItems[0], step}) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(),
             Catch::StartsWith("db_migrate: step 2 (") &&
                 Catch::EndsWith("which is not this plugin's: its tables, indexes, views and "
                                 "triggers are named t_direct_..."));
  // Checked before anything runs: not even the valid first step is applied.
  CHECK(plugin.schema_version() == -1);
}

TEST_CASE("a migration while another node holds the lease is fenced and applies nothing") {
  Plugin plugin;
  set_lease(plugin.database(), "node-b", 8, 60000);
  CHECK(plugin.migrate(kItems) == EMSNODE_FENCED);
  CHECK_THAT(plugin.last_error(), Catch::StartsWith("fenced: this node (node-a, epoch 7)"));
  CHECK(plugin.schema_version() == -1);
  CHECK_THROWS_WITH(plugin.database().query("SELECT COUNT(*) FROM t_direct_items"),
                    Catch::Contains("no such table") || Catch::Contains("does not exist"));
}

TEST_CASE("last_error belongs to the thread that made the failing call and clears on success") {
  Plugin plugin;
  plugin.shared().database = nullptr;
  db::Rows rows;
  REQUIRE(plugin.query("SELECT 1", {}, &rows) == EMSNODE_ERROR);
  std::string seen_elsewhere = "unset";
  std::thread([&] { seen_elsewhere = plugin.last_error(); }).join();
  CHECK(seen_elsewhere.empty());
  CHECK(plugin.last_error() == "db_query: no shared database");

  plugin.shared().database = &plugin.database();
  REQUIRE(plugin.query("SELECT 1", {}, &rows) == EMSNODE_OK);
  CHECK(plugin.last_error().empty());
}

TEST_CASE("a refused post or timer is explained through last_error") {
  Plugin plugin;  // its task group is not open: the plugin is not started for the executor
  CHECK(api.post(
            plugin.ctx(), [](void*) {}, nullptr) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::StartsWith("post refused: the plugin is not started"));
  CHECK(api.timer_start(
            plugin.ctx(), 10, 0, [](void*) {}, nullptr) == 0);
  CHECK_THAT(plugin.last_error(),
             Catch::StartsWith("timer_start refused: the plugin is not started"));
}

// ---- what a plugin's SQL cannot do to the node (ctest label `security`) ----
// The node shares its database connection between its lease, registry, settings and store and
// every plugin: a statement that changed the connection, or touched the core's tables, would
// break or bypass what the node guarantees. Each case is named for the attack it stops, and each
// tries the attack through db_query and through db_exec in a db_write body.

namespace {

// The statement run through db_query and through db_exec in a body; both must refuse it.
void check_refused_everywhere(Plugin& plugin, const std::string& sql) {
  CAPTURE(sql);
  db::Rows rows;
  CHECK(plugin.query(sql, {}, &rows) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::StartsWith("db_query: "));
  CHECK(plugin.write([&](emsnode_db_txn* txn) { return Plugin::exec(txn, sql); }) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::StartsWith("db_exec: "));
}

// The node's own write (as the lease's renewal or the registry's) still commits.
void check_node_writes(Plugin& plugin) {
  CHECK_NOTHROW(plugin.database().transaction([](db::Transaction& tx) {
    tx.exec("UPDATE nodes SET last_seen_ms = 1 WHERE id = 'nobody'");
  }));
}

}  // namespace

TEST_CASE("a plugin's PRAGMA cannot make the node's writes fail or lose durability", "[security]") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  for (const std::string sql :
       {"PRAGMA query_only = 1", "pragma query_only = ON", "PRAGMA synchronous = OFF",
        "PRAGMA busy_timeout = 0", "PRAGMA journal_mode = DELETE", "PRAGMA foreign_keys = OFF",
        "/* x */ PRAGMA main.synchronous = 0"}) {
    check_refused_everywhere(plugin, sql);
  }
  check_node_writes(plugin);
  CHECK(plugin.write([](emsnode_db_txn* txn) { return insert_item(txn, 1); }) == EMSNODE_OK);
  if (plugin.backend() == "sqlite") {
    CHECK(plugin.database().query("PRAGMA query_only").front().integer(0) == 0);
    CHECK(plugin.database().query("PRAGMA synchronous").front().integer(0) == 2);  // FULL
    CHECK(plugin.database().query("PRAGMA busy_timeout").front().integer(0) == 2000);
    CHECK(plugin.database().query("PRAGMA foreign_keys").front().integer(0) == 1);
  }
}

TEST_CASE("a plugin cannot ATTACH another database file to the node's connection", "[security]") {
  Plugin plugin;
  const emsnode::testing::TempDir elsewhere;
  const std::string file = (elsewhere.path() / "other.db").string();
  check_refused_everywhere(plugin, "ATTACH DATABASE '" + file + "' AS other");
  check_refused_everywhere(plugin, "DETACH DATABASE main");
  CHECK_FALSE(std::filesystem::exists(file));
  if (plugin.backend() == "sqlite") {
    CHECK(plugin.database().query("PRAGMA database_list").size() == 1);
  }
  check_node_writes(plugin);
}

TEST_CASE("a plugin cannot switch off db_query's read-only guard to write unfenced", "[security]") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  for (const std::string sql :
       {"SET default_transaction_read_only = off",
        "set session default_transaction_read_only to off", "RESET default_transaction_read_only",
        "RESET ALL", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)"}) {
    check_refused_everywhere(plugin, sql);
  }
  // Another node holds the lease now: a write through db_query would be an unfenced one.
  set_lease(plugin.database(), "node-b", 8, 60000);
  db::Rows rows;
  CHECK(plugin.query("INSERT INTO t_direct_items (id) VALUES (1)", {}, &rows) == EMSNODE_ERROR);
  CHECK(plugin.query("WITH w AS (INSERT INTO t_direct_items (id) VALUES (2) RETURNING id) "
                     "SELECT id FROM w",
                     {}, &rows) == EMSNODE_ERROR);
  CHECK(plugin.count("t_direct_items") == 0);
  // The core's own guard holds as well.
  CHECK_THROWS(plugin.database().query("INSERT INTO t_direct_items (id) VALUES (3)"));
  CHECK(plugin.count("t_direct_items") == 0);
}

TEST_CASE("a plugin cannot lift the statement timeout that bounds every call", "[security]") {
  Plugin plugin;
  for (const std::string sql :
       {"SET statement_timeout = 0", "SET LOCAL statement_timeout = 0", "RESET statement_timeout",
        "SET idle_in_transaction_session_timeout = 0",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT * FROM (SELECT set_config('statement_timeout', '0', false)) AS s"}) {
    check_refused_everywhere(plugin, sql);
  }
  if (plugin.backend() == "postgresql") {
    // DbDir's connection: statement_timeout 2 s.
    CHECK(plugin.database().query("SHOW statement_timeout").front().text(0) == "2s");
    CHECK(plugin.database().query("SHOW default_transaction_read_only").front().text(0) == "on");
  }
}

TEST_CASE("a plugin cannot end, open or split the node's transactions", "[security]") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  for (const std::string sql :
       {"COMMIT", "END", "ROLLBACK", "BEGIN", "BEGIN IMMEDIATE", "START TRANSACTION", "SAVEPOINT s",
        "RELEASE s", "ROLLBACK TO s", "ABORT"}) {
    CAPTURE(sql);
    db::Rows rows;
    CHECK(plugin.query(sql, {}, &rows) == EMSNODE_ERROR);
    // In a body, after a write: the statement is refused and the whole body rolls back, so what
    // it wrote is not committed early, outside the fenced transaction.
    CHECK(plugin.write([&](emsnode_db_txn* txn) {
      if (insert_item(txn, 1) != EMSNODE_OK) return EMSNODE_ERROR;
      Plugin::exec(txn, sql);
      return EMSNODE_OK;
    }) == EMSNODE_ERROR);
    CHECK_THAT(plugin.last_error(), Catch::StartsWith("db_exec: ") && Catch::Contains("refused"));
    CHECK(plugin.count("t_direct_items") == 0);
  }
  check_node_writes(plugin);
}

TEST_CASE("a plugin cannot write, alter or trigger on the core's tables or another plugin's",
          "[security]") {
  Plugin plugin;
  REQUIRE(plugin.migrate(kItems) == EMSNODE_OK);
  plugin.database().transaction(
      [](db::Transaction& tx) { tx.exec("CREATE TABLE t_other_items (id BIGINT)"); });
  for (const std::string sql : {
           "UPDATE lease SET holder = 'node-x', epoch = 99 WHERE id = 1",
           "update main.lease set expires_at_ms = 0",
           "DELETE FROM nodes",
           "INSERT INTO settings (key, value, updated_at_ms, updated_by, epoch) "
           "VALUES ('fqdn', 'evil', 0, 'x', 0)",
           "INSERT INTO \"settings\" (key, value, updated_at_ms, updated_by, epoch) "
           "VALUES ('fqdn', 'evil', 0, 'x', 0)",
           "DELETE FROM t_other_items",
           "INSERT INTO t_other_items (id) SELECT id FROM t_direct_items",
           "WITH d AS (DELETE FROM lease RETURNING epoch) SELECT epoch FROM d",
           "CREATE TRIGGER t_direct_on_lease AFTER UPDATE ON lease "
           "BEGIN DELETE FROM nodes; END",
           "CREATE TRIGGER t_direct_spill AFTER INSERT ON t_direct_items "
           "BEGIN DELETE FROM t_other_items; END",
           "CREATE TABLE t_direct_pins (id TEXT REFERENCES nodes (id))",
           "ALTER TABLE t_other_items ADD COLUMN extra BIGINT",
           "DROP TABLE t_other_items",
           "CREATE TEMP TABLE lease (id BIGINT)",
           "CREATE TEMPORARY TABLE t_direct_scratch (id BIGINT)",
       }) {
    check_refused_everywhere(plugin, sql);
    CAPTURE(sql);
    CHECK(plugin.migrate({kItems[0], sql}) == EMSNODE_ERROR);
  }
  const db::Row lease =
      plugin.database().query("SELECT holder, epoch FROM lease WHERE id = 1").front();
  CHECK(lease.text(0) == "node-a");
  CHECK(lease.integer(1) == 7);
  CHECK(plugin.database().query("SELECT id FROM t_other_items").empty());
  check_node_writes(plugin);
}

TEST_CASE("a plugin named store cannot drop or rewrite the store's catalog", "[security]") {
  // Its prefix store_ covers the core's store_files, store_blobs, ...: the core's stay its own.
  Plugin plugin("store");
  for (const std::string sql :
       {"DROP TABLE store_files", "DROP TABLE IF EXISTS store_blob_chunks",
        "DROP INDEX store_files_location", "ALTER TABLE store_files ADD COLUMN x BIGINT",
        "ALTER TABLE store_state RENAME TO store_old_state",
        "CREATE INDEX store_by_size ON store_files (size)",
        "CREATE TRIGGER store_spy AFTER INSERT ON store_files BEGIN SELECT 1; END"}) {
    CAPTURE(sql);
    CHECK(plugin.migrate({sql}) == EMSNODE_ERROR);
    CHECK_THAT(plugin.last_error(), Catch::Contains("(the core's)"));
  }
  for (const std::string sql :
       {"DELETE FROM store_files", "UPDATE store_state SET change_seq = 0",
        "INSERT INTO store_changes (seq, key, kind, at_ms) VALUES (1, 'k', 'put', 0)"}) {
    check_refused_everywhere(plugin, sql);
  }
  // The rest of its prefix is its own.
  REQUIRE(plugin.migrate({"CREATE TABLE store_mine (id BIGINT)"}) == EMSNODE_OK);
  CHECK(plugin.write([](emsnode_db_txn* txn) {
    return Plugin::exec(txn, "INSERT INTO store_mine (id) VALUES (1)");
  }) == EMSNODE_OK);
  CHECK(plugin.database().query("SELECT COUNT(*) FROM store_files").front().integer(0) == 0);
  CHECK(plugin.database().query("SELECT change_seq FROM store_state").size() == 1);
}

TEST_CASE("a plugin cannot read the core's tables", "[security]") {
  Plugin plugin;
  REQUIRE(plugin.migrate({"CREATE TABLE t_direct_x (id BIGINT)"}) == EMSNODE_OK);
  for (const std::string sql :
       {"SELECT holder, epoch FROM lease", "SELECT n.id FROM t_direct_x x, nodes n",
        "SELECT key FROM public.settings", "SELECT 1 FROM t_direct_x JOIN store_files ON 1 = 1"}) {
    CAPTURE(sql);
    db::Rows rows;
    CHECK(plugin.query(sql, {}, &rows) == EMSNODE_ERROR);
    CHECK_THAT(plugin.last_error(), Catch::Contains("the core's"));
    CHECK(rows.empty());
  }
}

TEST_CASE("a plugin cannot read the core's tables through a view or another plugin's tables",
          "[security][sqlite]") {
  // SQLite's authorizer sees every table a statement reads, a view's included.
  Plugin plugin;
  plugin.database().transaction([](db::Transaction& tx) {
    tx.exec("CREATE TABLE t_other_items (id BIGINT)");
    tx.exec("CREATE VIEW t_direct_leases AS SELECT holder FROM lease");
  });
  for (const std::string sql :
       {"SELECT holder FROM t_direct_leases", "SELECT id FROM t_other_items",
        "SELECT (SELECT epoch FROM \"lease\")"}) {
    CAPTURE(sql);
    db::Rows rows;
    CHECK(plugin.query(sql, {}, &rows) == EMSNODE_ERROR);
    CHECK_THAT(plugin.last_error(), Catch::Contains("refused"));
  }
}

TEST_CASE("a plugin's own SQL still runs: upserts, views, renames and drops of its tables") {
  Plugin plugin;
  const std::vector<std::string> steps = {
      kItems[0],
      "CREATE TABLE t_direct_log (id BIGINT, n BIGINT)",
      "CREATE VIEW t_direct_big AS SELECT id FROM t_direct_items WHERE n > 1",
      "CREATE INDEX t_direct_log_id ON t_direct_log (id)",
      "ALTER TABLE t_direct_log RENAME TO t_direct_journal",
      "DROP INDEX t_direct_log_id"};
  const emsnode_status migrated = plugin.migrate(steps);
  INFO(plugin.last_error());
  REQUIRE(migrated == EMSNODE_OK);
  CHECK(plugin.write([](emsnode_db_txn* txn) {
    for (const char* sql :
         {"INSERT INTO t_direct_items (id, n) VALUES (1, 2)",
          "INSERT INTO t_direct_items (id, n) VALUES (1, 3) ON CONFLICT (id) DO UPDATE SET "
          "n = excluded.n",
          "UPDATE t_direct_items SET t = 'x' WHERE id = 1",
          "INSERT INTO t_direct_journal (id, n) SELECT id, n FROM t_direct_items",
          "DELETE FROM t_direct_journal WHERE n = 0"}) {
      if (Plugin::exec(txn, sql) != EMSNODE_OK) return EMSNODE_ERROR;
    }
    return EMSNODE_OK;
  }) == EMSNODE_OK);
  INFO(plugin.last_error());
  db::Rows rows;
  REQUIRE(plugin.query("SELECT b.id, (SELECT CAST(COUNT(*) AS BIGINT) FROM t_direct_journal) "
                       "FROM t_direct_big b",
                       {}, &rows) == EMSNODE_OK);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].integer(0) == 1);
  CHECK(rows[0].integer(1) == 1);
}

}  // namespace emsnode::host
