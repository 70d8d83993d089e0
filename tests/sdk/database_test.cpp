// emsnode::sdk::Database over the fake host's database hooks: typed values both ways, queries,
// fenced writes and their rollbacks, migrations, the node's refusals, and a host of ABI 1.0.
#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace sdk = emsnode::sdk;
using emsnode::sdk::testing::FakeHost;

// What the hooks of a fake database saw, and what its write hook did with each body.
struct Journal {
  std::vector<std::string> statements;
  std::vector<sdk::Params> params;
  int commits = 0;
  int rollbacks = 0;
};

// A started fake host whose database runs every body and journals every statement. A statement
// that starts with "FAIL" fails; "SELECT" returns the rows in `rows`.
struct FakeDb {
  FakeDb() {
    fake.set_started(true);
    fake.set_db_write([this](const std::function<bool()>& run_body) {
      if (lost_lease) throw sdk::FencedError("fenced: holder node-b at epoch 8");
      (run_body() ? journal.commits : journal.rollbacks) += 1;
    });
    fake.set_db_exec([this](std::string_view sql, const sdk::Params& params) {
      journal.statements.emplace_back(sql);
      journal.params.push_back(params);
      if (sql.substr(0, 4) == "FAIL") throw std::runtime_error("UNIQUE constraint failed: t.id");
      FakeHost::DbExecResult result;
      if (sql.substr(0, 6) == "SELECT") {
        result.rows = rows;
      } else {
        result.changes = 1;
      }
      return result;
    });
  }

  FakeHost fake;
  sdk::Host host{fake.api(), fake.ctx()};
  Journal journal;
  std::vector<sdk::Row> rows;
  bool lost_lease = false;
};

// A distinct exception type, to check that the wrapper rethrows the body's own exception.
struct BodyFailed : std::runtime_error {
  BodyFailed() : std::runtime_error("the body gave up") {}
};

}  // namespace

TEST_CASE("parameters of every type reach the host and come back as the same values") {
  FakeHost fake;
  sdk::Params seen;
  fake.set_db_query([&](std::string_view, const sdk::Params& params) {
    seen = params;
    return std::vector<sdk::Row>{sdk::Row(params)};
  });
  const std::string bytes("\0\x01\xff", 3);
  const sdk::Params params = {nullptr,
                              std::int64_t{-9007199254740993},
                              3,
                              true,
                              2.5,
                              "text é",
                              std::string("std::string"),
                              std::string_view("view"),
                              sdk::Blob{bytes},
                              std::optional<int>(),
                              std::optional<int>(7)};

  const std::vector<sdk::Row> rows = sdk::Host(fake.api(), fake.ctx())
                                         .db()
                                         .query("SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?", params);

  CHECK(seen == params);
  REQUIRE(rows.size() == 1);
  const sdk::Row& row = rows.front();
  REQUIRE(row.size() == params.size());
  CHECK(row.is_null(0));
  CHECK(row.integer(1) == -9007199254740993);
  CHECK(row.integer(2) == 3);
  CHECK(row.integer(3) == 1);
  CHECK(row.floating(4) == 2.5);
  CHECK(row.text(5) == "text é");
  CHECK(row.text(6) == "std::string");
  CHECK(row.text(7) == "view");
  CHECK(row.blob(8) == bytes);
  CHECK(row[8].type() == EMSNODE_DB_BLOB);
  CHECK(row.is_null(9));
  CHECK(row.integer(10) == 7);
  CHECK(row.floating(2) == 3.0);  // an integer column reads as a double too
}

TEST_CASE("reading a column as another type throws a DbError naming the column") {
  const sdk::Row row{"text", 1};
  CHECK_THROWS_AS(row.integer(0), sdk::DbError);
  CHECK_THROWS_WITH(row.integer(0), "column 0: the value is text, not integer");
  CHECK_THROWS_WITH(row.text(1), "column 1: the value is integer, not text");
  CHECK_THROWS_WITH(row.blob(0), "column 0: the value is text, not blob");
  CHECK_THROWS_WITH(row[2], "no column 2 in a row of 2");
}

TEST_CASE("an unsigned integer beyond SQL's signed 64 bits is refused, not wrapped") {
  CHECK_THROWS_WITH(sdk::Value(std::numeric_limits<std::uint64_t>::max()),
                    Catch::Contains("does not fit SQL's signed 64 bits"));
  CHECK(sdk::Value(std::uint64_t{std::numeric_limits<std::int64_t>::max()}).integer() ==
        std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("a row callback sees rows in order and stops the query when it returns false") {
  FakeHost fake;
  fake.set_db_query([](std::string_view, const sdk::Params&) {
    return std::vector<sdk::Row>{{1}, {2}, {3}};
  });
  const sdk::Database db = sdk::Host(fake.api(), fake.ctx()).db();

  std::vector<std::int64_t> all;
  db.query("SELECT n FROM t", {}, [&](const sdk::Row& row) { all.push_back(row.integer(0)); });
  CHECK(all == std::vector<std::int64_t>{1, 2, 3});

  std::vector<std::int64_t> first_two;
  db.query("SELECT n FROM t", {}, [&](const sdk::Row& row) {
    first_two.push_back(row.integer(0));
    return first_two.size() < 2;
  });
  CHECK(first_two == std::vector<std::int64_t>{1, 2});
}

TEST_CASE("an exception thrown by a row callback stops the rows and propagates unchanged") {
  FakeHost fake;
  fake.set_db_query([](std::string_view, const sdk::Params&) {
    return std::vector<sdk::Row>{{1}, {2}};
  });
  int calls = 0;
  CHECK_THROWS_AS(sdk::Host(fake.api(), fake.ctx())
                      .db()
                      .query("SELECT n FROM t", {},
                             [&](const sdk::Row&) {
                               ++calls;
                               throw BodyFailed();
                             }),
                  BodyFailed);
  CHECK(calls == 1);
}

TEST_CASE("a host failure becomes a DbError carrying the host's reason") {
  FakeHost fake;
  const sdk::Database db = sdk::Host(fake.api(), fake.ctx()).db();
  CHECK_THROWS_WITH(db.query("SELECT 1"),
                    "the fake host has no database; set one with FakeHost::set_db_query");

  fake.set_db_query([](std::string_view, const sdk::Params&) -> std::vector<sdk::Row> {
    throw std::runtime_error("no such table: echo_seen");
  });
  CHECK_THROWS_AS(db.query("SELECT * FROM echo_seen"), sdk::DbError);
  CHECK_THROWS_WITH(db.query("SELECT * FROM echo_seen"), "no such table: echo_seen");
}

TEST_CASE("a write runs its statements in one transaction that commits when the body returns") {
  FakeDb db;
  std::uint64_t changed = 0;
  db.host.db().write([&](sdk::Transaction& tx) {
    changed += tx.exec("INSERT INTO echo_seen (peer, n) VALUES (?, ?)", {"a", 1});
    changed += tx.exec("INSERT INTO echo_seen (peer, n) VALUES (?, ?)", {"b", 2});
  });
  CHECK(changed == 2);
  CHECK(db.journal.commits == 1);
  CHECK(db.journal.rollbacks == 0);
  CHECK(db.journal.statements ==
        std::vector<std::string>{"INSERT INTO echo_seen (peer, n) VALUES (?, ?)",
                                 "INSERT INTO echo_seen (peer, n) VALUES (?, ?)"});
  CHECK(db.journal.params.at(1) == sdk::Params{"b", 2});
}

TEST_CASE("a transaction reads rows back with query") {
  FakeDb db;
  db.rows = {{"a", 1}, {"b", 2}};
  std::vector<sdk::Row> read;
  db.host.db().write([&](sdk::Transaction& tx) { read = tx.query("SELECT peer, n FROM t"); });
  CHECK(read == db.rows);
  CHECK(db.journal.commits == 1);
}

TEST_CASE("an exception thrown by the write body rolls back and propagates unchanged") {
  FakeDb db;
  CHECK_THROWS_AS(db.host.db().write([&](sdk::Transaction& tx) {
    tx.exec("DELETE FROM echo_seen");
    throw BodyFailed();
  }),
                  BodyFailed);
  CHECK(db.journal.commits == 0);
  CHECK(db.journal.rollbacks == 1);
}

TEST_CASE("a fenced write throws FencedError with the host's reason and never runs the body") {
  FakeDb db;
  db.lost_lease = true;
  bool ran = false;
  try {
    db.host.db().write([&](sdk::Transaction&) { ran = true; });
    FAIL("no exception");
  } catch (const sdk::FencedError& e) {
    CHECK(std::string(e.what()) == "fenced: holder node-b at epoch 8");
  }
  CHECK_FALSE(ran);
  CHECK(db.journal.statements.empty());
}

TEST_CASE("a failed statement spoils the transaction even when the body catches its error") {
  FakeDb db;
  bool second_refused = false;
  try {
    db.host.db().write([&](sdk::Transaction& tx) {
      try {
        tx.exec("FAIL INSERT INTO echo_seen VALUES (1)");
      } catch (const sdk::DbError& e) {
        CHECK(std::string(e.what()) == "UNIQUE constraint failed: t.id");
      }
      try {
        tx.exec("INSERT INTO echo_seen VALUES (2)");
      } catch (const sdk::DbError& e) {
        second_refused = true;
        CHECK_THAT(e.what(), Catch::Contains("an earlier statement of this transaction failed"));
      }
    });
    FAIL("no exception");
  } catch (const sdk::FencedError&) {
    FAIL("a failed statement is not a fencing failure");
  } catch (const sdk::DbError& e) {
    CHECK(std::string(e.what()) == "UNIQUE constraint failed: t.id");
  }
  CHECK(second_refused);
  CHECK(db.journal.statements.size() == 1);  // the second never reached the database
  CHECK(db.journal.rollbacks == 1);
}

TEST_CASE("writes and migrations are refused while the plugin is not started") {
  FakeDb db;
  db.fake.set_started(false);
  CHECK_THROWS_WITH(db.host.db().write([](sdk::Transaction&) {}),
                    Catch::StartsWith("db_write refused: the plugin is not started"));
  CHECK_THROWS_WITH(db.host.db().migrate({"CREATE TABLE t_x (a BIGINT)"}),
                    Catch::StartsWith("db_migrate refused: the plugin is not started"));
  CHECK(db.journal.commits + db.journal.rollbacks == 0);
}

TEST_CASE("inside a write body only the transaction may be used") {
  FakeDb db;
  db.fake.set_db_query(
      [](std::string_view, const sdk::Params&) { return std::vector<sdk::Row>{}; });
  db.fake.set_db_migrate([](const std::vector<std::string>&) {});
  const sdk::Database database = db.host.db();
  database.write([&](sdk::Transaction&) {
    CHECK_THROWS_WITH(database.query("SELECT 1"),
                      Catch::StartsWith("db_query refused inside a db_write body"));
    CHECK_THROWS_WITH(database.write([](sdk::Transaction&) {}),
                      Catch::StartsWith("db_write refused inside a db_write body"));
    CHECK_THROWS_WITH(database.migrate({}),
                      Catch::StartsWith("db_migrate refused inside a db_write body"));
  });
  CHECK(db.journal.commits == 1);
}

TEST_CASE("migrate hands the steps to the host in order and reports its refusal") {
  FakeDb db;
  std::vector<std::string> steps;
  db.fake.set_db_migrate([&](const std::vector<std::string>& given) {
    steps = given;
    if (given.size() < 2) throw std::runtime_error("the database holds schema version 2");
  });
  db.host.db().migrate({"CREATE TABLE echo_seen (peer TEXT PRIMARY KEY)",
                        "CREATE INDEX echo_seen_peer ON echo_seen (peer)"});
  CHECK(steps == std::vector<std::string>{"CREATE TABLE echo_seen (peer TEXT PRIMARY KEY)",
                                          "CREATE INDEX echo_seen_peer ON echo_seen (peer)"});
  CHECK_THROWS_WITH(db.host.db().migrate({"CREATE TABLE echo_seen (peer TEXT PRIMARY KEY)"}),
                    "the database holds schema version 2");
}

TEST_CASE("a fenced migration throws FencedError") {
  FakeDb db;
  db.fake.set_db_migrate([](const std::vector<std::string>&) {
    throw sdk::FencedError("fenced: the lease is free at epoch 3");
  });
  CHECK_THROWS_AS(db.host.db().migrate({"CREATE TABLE t_x (a BIGINT)"}), sdk::FencedError);
}

TEST_CASE("on a host of ABI 1.0 the database is unsupported, and says so") {
  FakeDb db;
  emsnode_host_api old = *db.fake.api();
  old.struct_size = offsetof(emsnode_host_api, last_error);  // the 1.0 table ends here
  const sdk::Host host(&old, db.fake.ctx());

  CHECK(host.supports(&emsnode_host_api::health_report));
  CHECK_FALSE(host.supports(&emsnode_host_api::db_query));
  CHECK_THROWS_AS(host.db().query("SELECT 1"), sdk::UnsupportedError);
  CHECK_THROWS_WITH(host.db().query("SELECT 1"), Catch::Contains("'db_query'"));
  CHECK_THROWS_WITH(host.db().write([](sdk::Transaction&) {}), Catch::Contains("'db_write'"));
  CHECK_THROWS_WITH(host.db().migrate({}), Catch::Contains("'db_migrate'"));
  CHECK(db.journal.commits + db.journal.rollbacks == 0);
}

TEST_CASE("a refused post or timer is explained through last_error") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  CHECK_FALSE(host.post([] {}));
  CHECK(sdk::detail::to_view(fake.api()->last_error(fake.ctx())) ==
        "post refused: the plugin is not started");
  CHECK_THROWS_WITH(host.after(std::chrono::milliseconds(1), [] {}),
                    "the host refused a timer: timer_start refused: the plugin is not started");

  fake.set_started(true);
  CHECK(host.post([] {}));
  CHECK(sdk::detail::to_view(fake.api()->last_error(fake.ctx())).empty());
}

namespace {

// A plugin whose start migrates and records its start, as a real one would.
class StartLog : public sdk::Plugin {
 public:
  explicit StartLog(sdk::Host& host) : Plugin(host) {}
  void start() override {
    host().db().migrate({"CREATE TABLE startlog_starts (epoch BIGINT NOT NULL)"});
    host().db().write([&](sdk::Transaction& tx) {
      tx.exec("INSERT INTO startlog_starts (epoch) VALUES (?)", {host().epoch()});
    });
  }
  void stop(std::chrono::milliseconds) override {}
};

constexpr emsnode_plugin_api kStartLog = sdk::make_plugin_api<StartLog>("startlog", "1.0.0");

}  // namespace

TEST_CASE("a plugin's SQL paths run against the fake host's hooks through its lifecycle") {
  FakeDb db;
  db.fake.set_started(false).set_epoch(5);
  std::vector<std::string> migrated;
  db.fake.set_db_migrate([&](const std::vector<std::string>& steps) { migrated = steps; });
  REQUIRE(db.fake.create(&kStartLog) == EMSNODE_OK);

  SECTION("holding the lease, start migrates and writes its epoch") {
    REQUIRE(db.fake.start() == EMSNODE_OK);
    CHECK(migrated.size() == 1);
    CHECK(db.journal.params == std::vector<sdk::Params>{{5}});
    CHECK(db.journal.commits == 1);
  }
  SECTION("after losing the lease, start fails with the host's fencing reason") {
    db.lost_lease = true;
    CHECK(db.fake.start() == EMSNODE_ERROR);
    CHECK(db.fake.last_error() == "fenced: holder node-b at epoch 8");
    CHECK(db.journal.statements.empty());
  }
  REQUIRE(db.fake.stop() == EMSNODE_OK);
}
