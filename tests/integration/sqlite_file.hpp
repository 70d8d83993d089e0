// The cluster's SQLite database opened by the test itself, as an operator's sqlite3 session
// would: to read what the nodes wrote (the lease row, a plugin's table), or to change the
// database behind their back (a schema from a newer release).
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace emsnode::testing {

class SqliteFile {
 public:
  explicit SqliteFile(const std::filesystem::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error(path.string() + ": " + why);
    }
    // The nodes write all the time; wait for their transactions as they wait for each other.
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  }
  ~SqliteFile() { sqlite3_close(db_); }
  SqliteFile(const SqliteFile&) = delete;
  SqliteFile& operator=(const SqliteFile&) = delete;

  // The first column of the first row `sql` returns, as an integer; nullopt for no row or NULL.
  std::optional<std::int64_t> integer(const std::string& sql) {
    sqlite3_stmt* statement = prepare(sql);
    std::optional<std::int64_t> value;
    const int rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW && sqlite3_column_type(statement, 0) != SQLITE_NULL) {
      value = sqlite3_column_int64(statement, 0);
    }
    sqlite3_finalize(statement);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail(sql);
    return value;
  }

  // Whether a write transaction can start within `wait`: no connection (no node) holds SQLite's
  // write lock for longer. Writes nothing.
  bool write_lock_free(std::chrono::milliseconds wait) {
    sqlite3_busy_timeout(db_, static_cast<int>(wait.count()));
    const int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    if (rc == SQLITE_BUSY) return false;
    if (rc != SQLITE_OK) fail("BEGIN IMMEDIATE");
    exec("ROLLBACK");
    return true;
  }

  // Runs a statement that returns no rows.
  void exec(const std::string& sql) {
    sqlite3_stmt* statement = prepare(sql);
    const int rc = sqlite3_step(statement);
    sqlite3_finalize(statement);
    if (rc != SQLITE_DONE) fail(sql);
  }

 private:
  static constexpr int kBusyTimeoutMs = 5000;

  sqlite3_stmt* prepare(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) fail(sql);
    return statement;
  }

  [[noreturn]] void fail(const std::string& sql) {
    throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
  }

  sqlite3* db_ = nullptr;
};

}  // namespace emsnode::testing
