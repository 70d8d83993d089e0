// Shared fixtures of the database tests: a real SQLite file in a private folder, and the lease
// row set directly (the role manager, which normally writes it, is tested on its own).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "db/database.hpp"
#include "db/schema.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::db::testing {

// A folder holding one database file, which any number of Database objects ("nodes") open.
class DbDir {
 public:
  std::string file() const { return (dir_ / "emsnode.db").string(); }
  const std::filesystem::path& path() const { return dir_.path(); }

  std::unique_ptr<Database> open(std::int64_t busy_timeout_ms = 2000) const {
    SqliteOptions options;
    options.busy_timeout_ms = busy_timeout_ms;
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
