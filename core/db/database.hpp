// The shared database: one interface over the backends (SQLite and PostgreSQL), used by the role
// manager (lease), the node registry, cluster settings, and plugins through the ABI.
//
// SQL is written once, in the portable subset both backends share (sdk/README.md, "Portable
// SQL"), with `?` placeholders; a backend rewrites what it must (PostgreSQL: $1, $2, ... and the
// type names INTEGER, BLOB, REAL). Clocks: `now_ms()` is the database's clock, the only one lease
// expiry is judged on.
//
// Fencing: `fenced()` runs a write transaction that first checks, inside the same transaction,
// that the lease is held by this node at the given epoch and has not expired; otherwise it
// throws FencedError and writes nothing. The coordination tables themselves (lease, nodes) are
// written with plain `transaction()`, since a passive node must write them to take the lease
// and to be seen.
#pragma once

#include <chrono>
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

// What a plugin's statement may touch: its own tables, indexes, views and triggers, named
// `table_prefix...` and not the core's. The host runs every statement a plugin sends through the
// ABI under the plugin's confinement (the confined_* calls), and the backend refuses, with
// DbError and before anything runs, one that would change the shared connection (PRAGMA, ATTACH,
// SET, ...), end or open a transaction, or touch any other table (db/confinement.hpp).
struct Confinement {
  std::string owner;         // for messages: "this plugin", "plugin mq"
  std::string table_prefix;  // lower case: "mq_"
};

// Statements inside one transaction. Valid only during the callback that received it.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // Runs a statement; returns the number of rows it changed.
  virtual std::int64_t exec(std::string_view sql, const Params& params = {}) = 0;
  virtual Rows query(std::string_view sql, const Params& params = {}) = 0;
  // exec() and query() of a plugin's statement, under its confinement.
  virtual std::int64_t confined_exec(const Confinement& confinement, std::string_view sql,
                                     const Params& params) = 0;
  virtual Rows confined_query(const Confinement& confinement, std::string_view sql,
                              const Params& params) = 0;
  // Wakes the listeners of `channel` (Database::listen) when, and only when, this transaction
  // commits. A backend without notifications ignores it (SQLite: the listeners poll).
  virtual void notify(std::string_view channel) { (void)channel; }
};

// Waits for the notifications of one channel on a connection of its own, so that a waiting
// thread never holds up the connection that runs transactions. Used from one thread at a time.
class Listener {
 public:
  virtual ~Listener() = default;
  // Returns true as soon as a notification arrives (consuming every one pending), false after
  // `timeout` without one. Also true right after (re)connecting, since notifications sent while
  // the listener had no connection are lost: the caller re-reads what it waits for. Throws
  // UnreachableError when the database cannot be reached (the next call reconnects).
  virtual bool wait(std::chrono::milliseconds timeout) = 0;
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

  // query() of a plugin's statement, under its confinement; it only reads (PostgreSQL: in a
  // READ ONLY transaction that is rolled back, so not even a setting outlives it).
  virtual Rows confined_query(const Confinement& confinement, std::string_view sql,
                              const Params& params) = 0;

  // A write transaction (SQLite: BEGIN IMMEDIATE). Commits when `body` returns, rolls back when
  // it throws (and rethrows). Thread-safe: transactions are serialised per Database object.
  virtual void transaction(const std::function<void(Transaction&)>& body) = 0;

  // A write transaction that first checks the lease: holder `node_id`, epoch `epoch`, not
  // expired on the database's clock. Throws FencedError (naming the current holder and epoch)
  // and writes nothing when the check fails. Epoch 0 (a node that is not serving) is refused
  // without asking the database.
  void fenced(std::string_view node_id, std::uint64_t epoch,
              const std::function<void(Transaction&)>& body);

  // Makes the call now waiting on the database on another thread fail at once (UnreachableError
  // on PostgreSQL, whose connection is then dropped and reopened by the next call; SQLite stops
  // the statement it is running). For a node that fences itself: a plugin's write stuck on an
  // unreachable server must not hold up the plugin's stop. Calls made afterwards run normally.
  // Safe from any thread.
  virtual void interrupt() = 0;

  // A listener for `channel` (an identifier: lowercase letters, digits, '_'), or nullptr when the
  // backend has no notifications (SQLite), in which case the caller keeps polling. Does not
  // connect yet: the first wait() does.
  virtual std::unique_ptr<Listener> listen(std::string_view channel) {
    (void)channel;
    return nullptr;
  }
};

// The start of a statement for error messages (a few words): enough to recognise it, never a
// whole script. Both backends name statements this way.
std::string sql_head(std::string_view sql);

struct SqliteOptions {
  std::int64_t busy_timeout_ms = 2000;  // how long a write waits for another node's transaction
  // This connection's write transactions go before those of the process's other connections to
  // the file: the lease's, whose renewal must not wait behind a busy plugin.
  bool writes_first = false;
};

// Opens (creating if missing) a SQLite database file. Refuses, with a message that points to the
// PostgreSQL backend, a file on a network or FUSE filesystem (NFS, SMB/CIFS, ...), where SQLite's
// locking cannot keep nodes apart. Throws UnreachableError when the file cannot be opened.
std::unique_ptr<Database> open_sqlite(const std::string& path, const SqliteOptions& options = {});

struct PostgresOptions {
  // libpq's connection string: a URL (postgresql://user@host:port/dbname?...) or keyword=value
  // pairs. Without a password: that comes from `password` (or libpq's ~/.pgpass).
  std::string url;
  std::string password;  // never logged, never part of describe()
  std::chrono::milliseconds connect_timeout{5000};
  // Bounds every statement on the server; the client gives up on a silent server (a partition)
  // one second later and drops the connection.
  std::chrono::milliseconds statement_timeout{5000};
  std::string sslmode = "prefer";  // disable, allow, prefer, require, verify-ca, verify-full
  std::string sslrootcert;         // CA file for verify-ca / verify-full; empty: libpq's default
};

// A PostgreSQL database (libpq). Connects lazily: the first call connects, and a call after a
// lost connection reconnects; a call that cannot reach the server throws UnreachableError within
// connect_timeout or statement_timeout + 1 s. Throws std::invalid_argument for malformed options
// (an unparsable URL, a password inside it, an unknown sslmode).
std::unique_ptr<Database> open_postgres(const PostgresOptions& options);

}  // namespace emsnode::db
