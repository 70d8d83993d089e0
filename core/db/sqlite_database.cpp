// The SQLite backend: one file shared by the nodes of one host.
//
// Durability: journal_mode=WAL with synchronous=FULL. In WAL mode SQLite appends each commit to
// the -wal file; with FULL it fsyncs the WAL before COMMIT returns, so an acknowledged write
// survives a process kill and also an OS crash or power loss (NORMAL would only fsync at
// checkpoints: a power loss could roll back the last commits — a lease renewal or a fenced write
// the node has already acted on). The cost, one fsync per commit, is small next to the lease's
// timing (a renewal every few hundred milliseconds). The WAL is copied into the database file
// by a thread of its own, not by the commit that fills it (Checkpointer).
//
// Locking: one connection per Database object, used under a mutex, so transactions of one object
// are serialised; other processes (nodes on this host) open their own. BEGIN IMMEDIATE takes the
// write lock at the start of every transaction: a transaction never upgrades from reading to
// writing (which in WAL mode fails with SQLITE_BUSY_SNAPSHOT instead of waiting), and what it
// read stays true until it commits — the fencing check relies on this.
#include "db/sqlite_database.hpp"

#include <sqlite3.h>
#include <sys/statfs.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "db/confinement.hpp"
#include "db/database.hpp"

namespace emsnode::db {
namespace {

struct ConnectionCloser {
  void operator()(sqlite3* connection) const noexcept { sqlite3_close_v2(connection); }
};
using ConnectionHandle = std::unique_ptr<sqlite3, ConnectionCloser>;

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using StatementHandle = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// Wall-clock milliseconds since the Unix epoch. julianday('now') is SQLite's millisecond clock
// (the host's wall clock) as a fraction of days; ROUND undoes the floating-point error of the
// conversion. unixepoch('now', 'subsec') would be simpler but needs SQLite 3.42 (Debian 12 has
// 3.40, where it returns NULL). One clock for all nodes, since all of them run on this host.
constexpr const char* kNowSql =
    "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)";

// Failures that mean this node cannot use the database at all, however often it retries the
// statement: the file cannot be opened, is read-only, or the disk failed or is full. The role
// manager turns them into `db_unreachable` (and an active self-fences).
bool is_unreachable(int code) {
  switch (code & 0xff) {
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_PERM:
    case SQLITE_FULL:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return true;
    default:
      return false;
  }
}

int compare_bytes(void*, int left_size, const void* left, int right_size, const void* right) {
  const int common =
      std::memcmp(left, right, static_cast<std::size_t>(std::min(left_size, right_size)));
  if (common != 0) return common;
  return left_size < right_size ? -1 : (left_size > right_size ? 1 : 0);
}

struct NetworkFilesystem {
  std::uint32_t magic;  // statfs f_type, see statfs(2)
  std::string_view name;
};

// Filesystems where several hosts can reach the same file. SQLite's locks are advisory POSIX
// locks that network filesystems implement loosely or not at all, and the WAL index is shared
// memory (mmap of the -shm file), which is never coherent between hosts, even on cluster
// filesystems with working locks (GFS2, OCFS2). FUSE is refused as a whole because smbnetfs,
// sshfs and GlusterFS mount network storage through it and statfs cannot tell them apart.
constexpr NetworkFilesystem kNetworkFilesystems[] = {
    {0x6969, "nfs"},       {0x517B, "smb"},      {0xFF534D42, "cifs"},   {0xFE534D42, "smb2"},
    {0x65735546, "fuse"},  {0x73757245, "coda"}, {0x5346414F, "afs"},    {0x6B414653, "afs"},
    {0x01021997, "9p"},    {0x00C36400, "ceph"}, {0x0BD00BD0, "lustre"}, {0x01161970, "gfs2"},
    {0x7461636F, "ocfs2"},
};

// statfs() of the file, or of its folder while the file does not exist yet.
void refuse_network_filesystem(const std::string& path) {
  std::error_code error;
  const bool exists = std::filesystem::exists(path, error);
  std::filesystem::path probe =
      exists ? std::filesystem::path(path) : std::filesystem::path(path).parent_path();
  if (probe.empty()) probe = ".";
  struct statfs info {};
  if (::statfs(probe.c_str(), &info) != 0) {
    const int err = errno;
    throw UnreachableError(path + ": cannot open: " + probe.string() + ": " + std::strerror(err));
  }
  if (auto refusal = network_filesystem_refusal(path, static_cast<std::int64_t>(info.f_type))) {
    throw DbError(*refusal);
  }
}

// SQLITE_BUSY after busy_timeout: a DbError to callers; its own type only so that opening can
// retry the one statement for which SQLite does not wait by itself.
class BusyError final : public DbError {
 public:
  using DbError::DbError;
};

class SqliteDatabase;

// The one T of this process for the database file at `path`, made by `make(path)` when there is
// none. Held weakly here: it goes with the last connection that holds it.
template <typename T, typename Make>
std::shared_ptr<T> per_file(const std::string& path, Make make) {
  static std::mutex registry_mutex;
  static std::map<std::string, std::weak_ptr<T>> registry;
  std::lock_guard lock(registry_mutex);
  std::error_code ignored;
  const std::string key = std::filesystem::weakly_canonical(path, ignored).string();
  std::shared_ptr<T> object = registry[key].lock();
  if (!object) {
    object = make(path);
    registry[key] = object;
  }
  return object;
}

// The connections of one process to one file take SQLite's write lock in turn here, the lease's
// first (and the checkpointer's short second pass). SQLite's busy handler polls with sleeps of up
// to 100 ms, so a connection that writes back to back (a plugin under load) would otherwise keep
// the lease's renewal out until the node fences itself. Other processes still meet at SQLite's own
// lock.
class WriteGate {
 public:
  // The gate shared by every connection of this process to `path`.
  static std::shared_ptr<WriteGate> of(const std::string& path) {
    return per_file<WriteGate>(path,
                               [](const std::string&) { return std::make_shared<WriteGate>(); });
  }

  // False when the gate stayed closed until `deadline`.
  bool enter(bool first, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (first) ++first_waiting_;
    const bool entered =
        open_.wait_until(lock, deadline, [&] { return !busy_ && (first || first_waiting_ == 0); });
    if (first) --first_waiting_;
    if (entered) busy_ = true;
    if (!entered && first) open_.notify_all();  // the others may go again
    return entered;
  }

  void leave() {
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    open_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable open_;
  bool busy_ = false;
  int first_waiting_ = 0;  // lease connections waiting: they go before any other
};

// Copies the WAL into the database file on a thread of its own. SQLite would do it inside the
// commit that takes the WAL past 1000 pages: that commit, and everything waiting on it, would
// wait for the copy and for the sync of the database file. Here a first pass runs beside the
// writers and does the bulk of it. A second pass, with this process's writers held at the gate,
// copies what they committed meanwhile, so that the checkpoint is complete and the next commit
// starts the WAL over: under back-to-back commits a pass beside the writers never catches up,
// and the WAL would grow without end. Other processes on the file run their own.
class Checkpointer {
 public:
  static std::shared_ptr<Checkpointer> of(const std::string& path) {
    return per_file<Checkpointer>(
        path, [](const std::string& file) { return std::make_shared<Checkpointer>(file); });
  }

  explicit Checkpointer(const std::string& path) : gate_(WriteGate::of(path)) {
    sqlite3* raw = nullptr;
    const int opened =
        sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    connection_.reset(raw);
    if (opened != SQLITE_OK) {
      throw UnreachableError(path + ": cannot open a connection for checkpoints: " +
                             (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(opened)));
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Checkpointer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Every connection's WAL hook, in place of SQLite's own checkpoint: called after each commit
  // with the WAL's size in pages.
  static int after_commit(void* self, sqlite3*, const char*, int pages) {
    if (pages >= kPages) static_cast<Checkpointer*>(self)->request();
    return SQLITE_OK;
  }

 private:
  static constexpr int kPages = 1000;  // SQLite's own threshold
  // The second pass waits this long at most for the writer in progress.
  static constexpr std::chrono::seconds kGateWait{1};

  void request() {
    {
      std::lock_guard lock(mutex_);
      due_ = true;
    }
    wake_.notify_one();
  }

  void checkpoint() {
    // SQLITE_BUSY (another process checkpoints) or an I/O error: the next commit asks again.
    sqlite3_wal_checkpoint_v2(connection_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return due_ || stopping_; });
      if (stopping_) return;
      lock.unlock();
      // A connection learns that the file is in WAL mode by reading it; until then a checkpoint
      // does nothing.
      sqlite3_exec(connection_.get(), "PRAGMA schema_version", nullptr, nullptr, nullptr);
      checkpoint();
      // The writer in progress (there is one under load) commits more behind the first pass,
      // and a WAL is started over only by a transaction that began with all of it copied.
      // Ahead of writers that would otherwise take the gate back to back, as the lease does.
      if (gate_->enter(/*first=*/true, std::chrono::steady_clock::now() + kGateWait)) {
        checkpoint();
        gate_->leave();
      }
      lock.lock();
      due_ = false;  // the commits that asked meanwhile are in; a WAL not started over asks again
    }
  }

  const std::shared_ptr<WriteGate> gate_;
  ConnectionHandle connection_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

// The tables of the schema itself.
bool is_schema_table(std::string_view table) {
  return table == "sqlite_master" || table == "sqlite_schema" || table == "sqlite_temp_master" ||
         table == "sqlite_temp_schema";
}

// Whether SQLite may compile `action` into a statement of the plugin confined by `confinement`
// (sqlite3_set_authorizer's arguments); nullopt when it may, else why not.
std::optional<std::string> authorize(const Confinement& confinement, int action, const char* first,
                                     const char* second, const char* database) {
  const std::string_view a = first ? first : "";
  const std::string_view b = second ? second : "";
  const bool row_action = action == SQLITE_READ || action == SQLITE_INSERT ||
                          action == SQLITE_UPDATE || action == SQLITE_DELETE;
  // What SQLite reads of the schema, and writes of it for a CREATE, ALTER or DROP that was
  // allowed (a rename also rewrites the temp schema's references); no plugin statement can name
  // these tables for writing itself (SQLite refuses it without PRAGMA writable_schema).
  if (row_action && is_schema_table(a)) return std::nullopt;
  if (database != nullptr && std::string_view(database) != "main") {
    return "it reaches the database \"" + std::string(database) +
           "\" (only the node's main database is a plugin's)";
  }
  const auto own = [&](std::string_view name) -> std::optional<std::string> {
    if (owns(confinement, name)) return std::nullopt;
    return "it touches \"" + std::string(name) + "\"" +
           (is_core_object(name) ? " (the core's)" : "") + ", which is not " + confinement.owner +
           "'s: its tables are named " + confinement.table_prefix + "...";
  };
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return std::nullopt;
    case SQLITE_READ:    // table, column
    case SQLITE_INSERT:  // table
    case SQLITE_UPDATE:  // table, column
    case SQLITE_DELETE:  // table
      return own(a);
    case SQLITE_CREATE_TABLE:  // table
    case SQLITE_DROP_TABLE:
    case SQLITE_CREATE_VIEW:  // view
    case SQLITE_DROP_VIEW:
      return own(a);
    case SQLITE_CREATE_INDEX:  // index, table
    case SQLITE_DROP_INDEX:
      // A PRIMARY KEY or UNIQUE constraint's index, which SQLite names itself.
      if (a.rfind("sqlite_autoindex_", 0) == 0) return own(b);
      if (auto refusal = own(a)) return refusal;
      return own(b);
    case SQLITE_CREATE_TRIGGER:  // trigger, table
    case SQLITE_DROP_TRIGGER:
      if (auto refusal = own(a)) return refusal;
      return own(b);
    case SQLITE_ALTER_TABLE:  // database, table
      return own(b);
    case SQLITE_REINDEX:  // index: SQLite may refill an index it is creating
      return own(a);
    case SQLITE_PRAGMA:
      return "PRAGMA changes the node's shared connection";
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      return "ATTACH and DETACH change the node's shared connection";
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return "the host makes the transactions (db_write)";
    default:  // temporary objects, virtual tables, ANALYZE, REINDEX, ...
      return "the statement is not in what a plugin may run (action " + std::to_string(action) +
             ")";
  }
}

// Statements of one transaction, run on the transaction's connection.
class SqliteTransaction final : public Transaction {
 public:
  explicit SqliteTransaction(SqliteDatabase& database) : database_(database) {}
  std::int64_t exec(std::string_view sql, const Params& params) override;
  Rows query(std::string_view sql, const Params& params) override;
  std::int64_t confined_exec(const Confinement& confinement, std::string_view sql,
                             const Params& params) override;
  Rows confined_query(const Confinement& confinement, std::string_view sql,
                      const Params& params) override;

 private:
  SqliteDatabase& database_;
};

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(std::string path, ConnectionHandle connection, const SqliteOptions& options)
      : path_(std::move(path)),
        checkpointer_(Checkpointer::of(path_)),
        connection_(std::move(connection)),
        busy_timeout_ms_(options.busy_timeout_ms),
        writes_first_(options.writes_first),
        gate_(WriteGate::of(path_)) {
    sqlite3_wal_hook(connection_.get(), &Checkpointer::after_commit, checkpointer_.get());
    // Installed once: installing an authorizer expires every prepared statement, and SQLite
    // re-prepares an expired or schema-changed statement inside sqlite3_step, calling whatever
    // authorizer is in force then. This one judges by confined_, which is set exactly while a
    // plugin's statement is prepared and stepped (under mutex_), so each statement is judged by
    // its own caller's rule, the core's statements by none.
    sqlite3_set_authorizer(connection_.get(), &SqliteDatabase::authorizer, this);
  }

  std::string_view backend() const override { return "sqlite"; }
  std::string describe() const override { return path_; }
  void interrupt() override { sqlite3_interrupt(connection_.get()); }

  // Checks that the file is writable and sets the connection's durability and integrity.
  void configure() {
    std::lock_guard lock(mutex_);
    // SQLite silently falls back to read-only when it cannot open the file for writing; a node
    // must write (the lease, its registry row), so that is a failure to reach the database.
    if (sqlite3_db_readonly(connection_.get(), "main") == 1) {
      throw UnreachableError(path_ +
                             ": the database file is read-only for this process (permissions, a "
                             "read-only mount or the immutable attribute)");
    }
    // Switching a new file to WAL needs an exclusive lock, and when nodes open a new file at the
    // same moment SQLite reports SQLITE_BUSY at once instead of calling the busy handler (it
    // would risk a deadlock), so the wait for the other nodes happens here, within the same
    // busy_timeout. Once the file is in WAL mode, this statement only reads the mode.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
    Rows mode;
    for (;;) {
      try {
        mode = run("PRAGMA journal_mode = WAL", {}, nullptr);
        break;
      } catch (const BusyError&) {
        if (std::chrono::steady_clock::now() >= deadline) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (mode.empty() || mode.front().text(0) != "wal") {
      throw DbError(path_ + ": cannot switch the database to WAL mode");
    }
    run("PRAGMA synchronous = FULL", {}, nullptr);
    run("PRAGMA foreign_keys = ON", {}, nullptr);
  }

  std::int64_t now_ms() override {
    std::lock_guard lock(mutex_);
    recover_if_idle();
    return run(kNowSql, {}, nullptr).front().integer(0);
  }

  Rows query(std::string_view sql, const Params& params) override {
    std::lock_guard lock(mutex_);
    recover_if_idle();
    return run(sql, params, nullptr, /*read_only=*/true);
  }

  Rows confined_query(const Confinement& confinement, std::string_view sql,
                      const Params& params) override {
    std::lock_guard lock(mutex_);
    recover_if_idle();
    return run(sql, params, nullptr, /*read_only=*/true, &confinement);
  }

  void transaction(const std::function<void(Transaction&)>& body) override {
    std::lock_guard lock(mutex_);
    if (in_transaction_) {
      throw DbError(path_ +
                    ": transaction() called inside a transaction body; use the Transaction it "
                    "received");
    }
    recover_if_idle();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms_);
    if (!gate_->enter(writes_first_, deadline)) {
      throw BusyError(path_ +
                      ": busy: another connection of this process held the database for "
                      "longer than busy_timeout (" +
                      std::to_string(busy_timeout_ms_) + " ms)");
    }
    struct Leave {
      WriteGate& gate;
      ~Leave() { gate.leave(); }
    } leave{*gate_};
    run("BEGIN IMMEDIATE", {}, nullptr);
    in_transaction_ = true;
    SqliteTransaction tx(*this);
    try {
      body(tx);
      run("COMMIT", {}, nullptr);
    } catch (...) {
      in_transaction_ = false;
      roll_back();
      throw;
    }
    in_transaction_ = false;
  }

  // Runs one statement on the connection; the caller holds mutex_. `changes` receives the number
  // of rows changed; `read_only` refuses a statement that could write; `confinement` (a plugin's
  // statement) refuses one its words or the authorizer do not allow.
  Rows run(std::string_view sql, const Params& params, std::int64_t* changes,
           bool read_only = false, const Confinement* confinement = nullptr) {
    if (confinement) {
      if (auto refusal = confinement_refusal(*confinement, sql)) {
        throw DbError(path_ + ": " + sql_head(sql) + ": " + *refusal);
      }
    }
    // From prepare to the end of the last step: SQLite may re-prepare the statement in a step.
    struct Confine {
      SqliteDatabase& database;
      Confine(SqliteDatabase& db, const Confinement* confinement) : database(db) {
        database.confined_ = confinement;
        database.denial_.clear();
      }
      ~Confine() { database.confined_ = nullptr; }
    } confine{*this, confinement};
    sqlite3_stmt* const statement = prepared(sql, confinement);
    // Reset at once, even on error: a statement left mid-way would hold its read snapshot.
    struct Reset {
      sqlite3_stmt* statement;
      ~Reset() {
        sqlite3_reset(statement);
        sqlite3_clear_bindings(statement);
      }
    } reset{statement};
    if (read_only && !sqlite3_stmt_readonly(statement)) {
      throw DbError(path_ + ": " + sql_head(sql) +
                    ": query() only reads; write inside transaction()");
    }
    bind(statement, sql, params);
    Rows rows;
    for (;;) {
      const int stepped = sqlite3_step(statement);
      if (stepped == SQLITE_DONE) break;
      if (stepped != SQLITE_ROW) fail(stepped, sql);
      rows.emplace_back(read_row(statement));
    }
    if (changes) *changes = sqlite3_changes64(connection_.get());
    return rows;
  }

 private:
  // The statement for `sql`, prepared once and then reused: plugins run the same few statements
  // many times (the mq plugin several per message), and preparing costs more than running.
  // A plugin's statements are kept apart from the core's and from other plugins' (the key starts
  // with its prefix), so that none runs a statement prepared under another's rule.
  sqlite3_stmt* prepared(std::string_view sql, const Confinement* confinement) {
    std::string key;
    if (confinement) key = '\0' + confinement->table_prefix + '\0';
    key.append(sql);
    if (auto found = statements_.find(key); found != statements_.end()) {
      return found->second.get();
    }
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    const int code = sqlite3_prepare_v3(connection_.get(), sql.data(), static_cast<int>(sql.size()),
                                        SQLITE_PREPARE_PERSISTENT, &raw, &tail);
    StatementHandle statement(raw);
    if (code != SQLITE_OK) fail(code, sql);
    if (!statement) throw DbError(path_ + ": empty statement");
    const std::string_view rest(tail, static_cast<std::size_t>(sql.data() + sql.size() - tail));
    if (rest.find_first_not_of(" \t\r\n;") != std::string_view::npos) {
      throw DbError(path_ + ": " + sql_head(sql) + ": one statement at a time");
    }
    // Bounded for plugins that build their SQL: the set starts over when full.
    if (statements_.size() >= kStatementCacheSize) statements_.clear();
    return statements_.emplace(std::move(key), std::move(statement)).first->second.get();
  }

  void bind(sqlite3_stmt* statement, std::string_view sql, const Params& params) {
    const int expected = sqlite3_bind_parameter_count(statement);
    if (expected != static_cast<int>(params.size())) {
      throw DbError(path_ + ": " + sql_head(sql) + ": takes " + std::to_string(expected) +
                    " parameters, given " + std::to_string(params.size()));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      const Value& value = params[i];
      int rc = SQLITE_OK;
      if (const auto* integer = std::get_if<std::int64_t>(&value)) {
        rc = sqlite3_bind_int64(statement, index, *integer);
      } else if (const auto* real = std::get_if<double>(&value)) {
        rc = sqlite3_bind_double(statement, index, *real);
      } else if (const auto* text = std::get_if<std::string>(&value)) {
        rc = sqlite3_bind_text64(statement, index, text->data(), text->size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
      } else if (const auto* blob = std::get_if<Blob>(&value)) {
        // A null data pointer would bind NULL, so an empty blob is bound as a zero-length blob.
        rc = blob->bytes.empty() ? sqlite3_bind_zeroblob(statement, index, 0)
                                 : sqlite3_bind_blob64(statement, index, blob->bytes.data(),
                                                       blob->bytes.size(), SQLITE_TRANSIENT);
      } else {
        rc = sqlite3_bind_null(statement, index);
      }
      if (rc != SQLITE_OK) fail(rc, sql);
    }
  }

  static Row read_row(sqlite3_stmt* statement) {
    const int count = sqlite3_column_count(statement);
    std::vector<Value> columns;
    columns.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      switch (sqlite3_column_type(statement, i)) {
        case SQLITE_INTEGER:
          columns.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(statement, i)));
          break;
        case SQLITE_FLOAT:
          columns.emplace_back(sqlite3_column_double(statement, i));
          break;
        case SQLITE_TEXT: {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, i));
          columns.emplace_back(
              std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(statement, i))));
          break;
        }
        case SQLITE_BLOB: {
          const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement, i));
          const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement, i));
          columns.emplace_back(Blob{bytes ? std::string(bytes, size) : std::string()});
          break;
        }
        default:
          columns.emplace_back(nullptr);
      }
    }
    return Row(std::move(columns));
  }

  static int authorizer(void* self, int action, const char* first, const char* second,
                        const char* database, const char* /*trigger or view*/) {
    auto& db = *static_cast<SqliteDatabase*>(self);
    if (db.confined_ == nullptr) return SQLITE_OK;
    auto refusal = authorize(*db.confined_, action, first, second, database);
    if (!refusal) return SQLITE_OK;
    if (db.denial_.empty()) db.denial_ = std::move(*refusal);
    return SQLITE_DENY;
  }

  // Throws the error of the statement that just failed with `code`: UnreachableError when the
  // database cannot be used at all, else DbError.
  [[noreturn]] void fail(int code, std::string_view sql) {
    sqlite3* const connection = connection_.get();
    std::string message = path_ + ": " + sql_head(sql) + ": ";
    if ((code & 0xff) == SQLITE_AUTH && !denial_.empty()) {
      throw DbError(message + "refused: " + denial_);
    }
    if ((code & 0xff) == SQLITE_BUSY) {
      message += "busy: another node held the database for longer than busy_timeout (" +
                 std::to_string(busy_timeout_ms_) + " ms)";
      throw BusyError(message);
    }
    message += sqlite3_errmsg(connection);
    if (!is_unreachable(code)) throw DbError(message);
    // The extended code tells a failed write from a failed fsync or a full disk; errno, when
    // SQLite still has it, names the OS's reason.
    message += " (SQLite error " + std::to_string(code);
    if (const int system_error = sqlite3_system_errno(connection); system_error != 0) {
      message += std::string(", ") + std::strerror(system_error);
    }
    throw UnreachableError(message + ")");
  }

  // Rolls back after a failed body or COMMIT. Some errors (an I/O error, a full disk) make SQLite
  // roll back on its own; otherwise ROLLBACK runs here. If even that fails, the open transaction
  // is left for recover_if_idle(), which reports the failure at the next call: this runs while
  // the original exception propagates, which must not be replaced.
  void roll_back() noexcept {
    if (!sqlite3_get_autocommit(connection_.get())) {
      sqlite3_exec(connection_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  // Before a statement outside any transaction body: a transaction still open here is one whose
  // rollback failed, and it would hold the write lock (and wrap our statement) forever.
  void recover_if_idle() {
    if (in_transaction_ || sqlite3_get_autocommit(connection_.get())) return;
    run("ROLLBACK", {}, nullptr);
  }

  const std::string path_;
  const std::shared_ptr<Checkpointer> checkpointer_;  // outlives the connection and its WAL hook
  const ConnectionHandle connection_;
  const std::int64_t busy_timeout_ms_;
  const bool writes_first_;
  const std::shared_ptr<WriteGate> gate_;
  // Recursive so that now_ms() and query() work from inside a transaction body on its thread
  // (they then run within the transaction); other threads wait for the transaction to end.
  std::recursive_mutex mutex_;
  bool in_transaction_ = false;
  // The rule of the plugin statement being prepared or run, and the authorizer's first refusal.
  const Confinement* confined_ = nullptr;
  std::string denial_;
  // After connection_, so that the statements are finalized before the connection closes.
  static constexpr std::size_t kStatementCacheSize = 256;
  std::map<std::string, StatementHandle, std::less<>> statements_;
};

std::int64_t SqliteTransaction::exec(std::string_view sql, const Params& params) {
  std::int64_t changes = 0;
  database_.run(sql, params, &changes);
  return changes;
}

Rows SqliteTransaction::query(std::string_view sql, const Params& params) {
  return database_.run(sql, params, nullptr);
}

std::int64_t SqliteTransaction::confined_exec(const Confinement& confinement, std::string_view sql,
                                              const Params& params) {
  std::int64_t changes = 0;
  database_.run(sql, params, &changes, /*read_only=*/false, &confinement);
  return changes;
}

Rows SqliteTransaction::confined_query(const Confinement& confinement, std::string_view sql,
                                       const Params& params) {
  return database_.run(sql, params, nullptr, /*read_only=*/false, &confinement);
}

}  // namespace

std::optional<std::string_view> network_filesystem_name(std::int64_t f_type) {
  // f_type is a signed word whose width differs between platforms; every magic fits 32 bits.
  const auto magic = static_cast<std::uint32_t>(f_type);
  for (const auto& filesystem : kNetworkFilesystems) {
    if (filesystem.magic == magic) return filesystem.name;
  }
  return std::nullopt;
}

std::optional<std::string> network_filesystem_refusal(const std::string& db_path,
                                                      std::int64_t f_type) {
  const auto name = network_filesystem_name(f_type);
  if (!name) return std::nullopt;
  return db_path + " is on a network filesystem (" + std::string(*name) +
         "): SQLite cannot keep nodes on different hosts apart there; use [database] backend = "
         "\"postgresql\" for a cluster that spans hosts";
}

std::unique_ptr<Database> open_sqlite(const std::string& path, const SqliteOptions& options) {
  if (options.busy_timeout_ms < 0 || options.busy_timeout_ms > INT_MAX) {
    throw std::invalid_argument("busy_timeout_ms must be between 0 and " + std::to_string(INT_MAX) +
                                " ms");
  }
  refuse_network_filesystem(path);
  sqlite3* raw = nullptr;
  const int opened = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  // SQLite hands out a connection even when opening fails; it must be closed all the same.
  ConnectionHandle connection(raw);
  if (opened != SQLITE_OK) {
    std::string reason = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(opened);
    if (raw && sqlite3_system_errno(raw) != 0) {
      reason += std::string(" (") + std::strerror(sqlite3_system_errno(raw)) + ")";
    }
    throw UnreachableError(path + ": cannot open: " + reason);
  }
  sqlite3_busy_timeout(connection.get(), static_cast<int>(options.busy_timeout_ms));
  // COLLATE "C" orders text by its bytes on PostgreSQL, whatever the database's locale; SQLite
  // gets a collation of that name that does the same (its BINARY), so that portable SQL can ask
  // for byte order on both backends.
  sqlite3_create_collation_v2(connection.get(), "C", SQLITE_UTF8, nullptr, &compare_bytes, nullptr);
  auto database = std::make_unique<SqliteDatabase>(path, std::move(connection), options);
  database->configure();
  return database;
}

}  // namespace emsnode::db
