// The shared database: one interface over the backends (SQLite now, PostgreSQL later), used by
// the role manager (lease), the node registry, cluster settings, and plugins through the ABI.
//
// SQL is written once, in the portable subset both backends share, with `?` placeholders; a
// backend rewrites what it must (PostgreSQL's $1, $2, ...). Clocks: `now_ms()` is the
// database's clock, the only one lease expiry is judged on.
//
// Fencing: `fenced()` runs a write transaction that first checks, inside the same transaction,
// that the lease is held by this node at the given epoch and has not expired; otherwise it
// throws FencedError and writes nothing. The coordination tables themselves (lease, nodes) are
// written with plain `transaction()`, since a passive node must write them to take the lease
// and to be seen.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace emsnode::db {

struct Blob {
  std::string bytes;
  friend bool operator==(const Blob& a, const Blob& b) { return a.bytes == b.bytes; }
};

// A parameter or a column value.
using Value = std::variant<std::nullptr_t, std::int64_t, double, std::string, Blob>;
using Params = std::vector<Value>;

class Row {
 public:
  explicit Row(std::vector<Value> columns) : columns_(std::move(columns)) {}
  std::size_t size() const { return columns_.size(); }
  const Value& operator[](std::size_t i) const { return columns_.at(i); }
  bool is_null(std::size_t i) const {
    return std::holds_alternative<std::nullptr_t>(columns_.at(i));
  }
  // Typed access; throws DbError naming the column index when the type differs.
  std::int64_t integer(std::size_t i) const;
  double floating(std::size_t i) const;  // also reads an integer column
  const std::string& text(std::size_t i) const;
  const std::string& blob(std::size_t i) const;
  const std::vector<Value>& columns() const { return columns_; }

 private:
  std::vector<Value> columns_;
};
using Rows = std::vector<Row>;

// A database failure: the statement or operation, and the backend's reason.
class DbError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The database could not be reached or opened (file missing, server down, read-only): callers
// that decide the role turn it into the reason `db_unreachable`.
class UnreachableError : public DbError {
 public:
  using DbError::DbError;
};

// A fenced write by a node that does not hold the lease at the given epoch. Nothing was written.
class FencedError : public DbError {
 public:
  using DbError::DbError;
};

// Statements inside one transaction. Valid only during the callback that received it.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // Runs a statement; returns the number of rows it changed.
  virtual std::int64_t exec(std::string_view sql, const Params& params = {}) = 0;
  virtual Rows query(std::string_view sql, const Params& params = {}) = 0;
};

class Database {
 public:
  virtual ~Database() = default;

  // "sqlite" or "postgresql".
  virtual std::string_view backend() const = 0;
  // A human description for logs and status: the file, or host/dbname (never a password).
  virtual std::string describe() const = 0;

  // The database's clock, in milliseconds since the Unix epoch. Called from inside the body of
  // transaction() (on that thread), it reads the clock within that transaction: this is how a
  // backend-independent check compares an expiry with "now" while holding the write lock.
  virtual std::int64_t now_ms() = 0;

  // A read outside any transaction (called from inside a transaction body on that thread, it runs
  // within that transaction). Refuses a statement that writes: writes go through transaction().
  virtual Rows query(std::string_view sql, const Params& params = {}) = 0;

  // A write transaction (SQLite: BEGIN IMMEDIATE). Commits when `body` returns, rolls back when
  // it throws (and rethrows). Thread-safe: transactions are serialised per Database object.
  virtual void transaction(const std::function<void(Transaction&)>& body) = 0;

  // A write transaction that first checks the lease: holder `node_id`, epoch `epoch`, not
  // expired on the database's clock. Throws FencedError (naming the current holder and epoch)
  // and writes nothing when the check fails.
  void fenced(std::string_view node_id, std::uint64_t epoch,
              const std::function<void(Transaction&)>& body);
};

struct SqliteOptions {
  std::int64_t busy_timeout_ms = 2000;  // how long a write waits for another node's transaction
};

// Opens (creating if missing) a SQLite database file. Refuses, with a message that points to the
// PostgreSQL backend, a file on a network or FUSE filesystem (NFS, SMB/CIFS, ...), where SQLite's
// locking cannot keep nodes apart. Throws UnreachableError when the file cannot be opened.
std::unique_ptr<Database> open_sqlite(const std::string& path, const SqliteOptions& options = {});

}  // namespace emsnode::db
