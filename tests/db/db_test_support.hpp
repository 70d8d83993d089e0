// Shared fixtures of the database tests: a real database of the backend under test, private to
// one test, and the lease row set directly (the role manager, which normally writes it, is tested
// on its own).
//
// The backend comes from EMSNODE_TEST_DB, which ctest sets for the `pg: ` variants of the tests
// (support/test_postgres.hpp): a SQLite file in a private folder, or a PostgreSQL database
// created for the test (and dropped after it) on the test run's server.
// Tests that only make sense on one backend are tagged [sqlite] or [postgresql]; ctest runs the
// pg: variant without the [sqlite] ones and the plain one without the [postgresql] ones.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "db/database.hpp"
#include "db/file_lock.hpp"
#include "db/schema.hpp"
#include "support/temp_dir.hpp"
#include "support/test_postgres.hpp"

namespace emsnode::db::testing {

using emsnode::testing::TestServer;

// A database of its own for one test, which any number of Database objects ("nodes") open: a
// SQLite file in a private folder, or a PostgreSQL database created for it.
class DbDir {
 public:
  DbDir() {
    if (auto server = TestServer::from_environment()) database_.emplace(std::move(*server));
  }

  bool postgres() const { return database_.has_value(); }
  std::string_view backend() const { return postgres() ? "postgresql" : "sqlite"; }
  // SQLite: the database file. PostgreSQL: a file name in the folder, beside which lock files
  // (a node's identity lock) may live; no database is there.
  std::string file() const { return (dir_ / "emsnode.db").string(); }
  const std::filesystem::path& path() const { return dir_.path(); }
  // The same-host fast path's lock file: SQLite only.
  std::optional<std::filesystem::path> fast_path_lock() const {
    if (postgres()) return std::nullopt;
    return lock_path(file(), "active.lock");
  }
  // PostgreSQL: the test database's URL (superuser, trusted on loopback) and the server.
  std::string url() const { return database_ ? database_->url() : std::string(); }
  const TestServer& server() const { return database_.value().server(); }

  // `busy_timeout_ms`: SQLite's busy timeout; PostgreSQL's statement_timeout. `writes_first`:
  // SQLite, a connection whose writes go before the process's others, as the lease's does.
  std::unique_ptr<Database> open(std::int64_t busy_timeout_ms = 2000,
                                 bool writes_first = false) const {
    if (database_) {
      PostgresOptions options;
      options.url = url();
      options.statement_timeout =
          std::chrono::milliseconds(std::max<std::int64_t>(busy_timeout_ms, 100));
      options.connect_timeout = std::chrono::seconds(5);
      options.sslmode = "disable";
      return open_postgres(options);
    }
    SqliteOptions options;
    options.busy_timeout_ms = busy_timeout_ms;
    options.writes_first = writes_first;
    return open_sqlite(file(), options);
  }

  // A database with the core schema.
  std::unique_ptr<Database> open_migrated() const {
    auto database = open();
    migrate_core(*database, "n0");
    return database;
  }

 private:
  emsnode::testing::TempDir dir_;
  std::optional<emsnode::testing::TestDatabase> database_;
};

// Gives the lease to `holder` at `epoch`, expiring `ttl_ms` from now on the database's clock
// (negative: expired that long ago).
inline void set_lease(Database& database, const std::string& holder, std::int64_t epoch,
                      std::int64_t ttl_ms) {
  database.transaction([&](Transaction& tx) {
    tx.exec("UPDATE lease SET holder = ?, epoch = ?, expires_at_ms = ? WHERE id = 1",
            {holder, epoch, database.now_ms() + ttl_ms});
  });
}

}  // namespace emsnode::db::testing
