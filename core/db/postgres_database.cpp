// The PostgreSQL backend (libpq): the shared database of a cluster that spans hosts.
//
// Connections: one per Database object, used under a mutex, so transactions of one object are
// serialised (as on SQLite); a Listener has its own. A connection is made lazily and again after
// it was lost: a call that finds the server gone throws UnreachableError, the next one
// reconnects. Nothing here retries in a loop: the role manager's polling is the retry.
//
// Every call is bounded, so that a partitioned server never hangs a caller (the role manager's
// renewals above all): connect_timeout for connecting; for a statement the server's
// statement_timeout, and one second later the client's own deadline, after which the connection
// is dropped (the server may be unreachable, and a late answer must not be read by the next
// call). TCP keepalives and tcp_user_timeout let a listener's idle connection notice a dead peer,
// and idle_in_transaction_session_timeout lets the server end the transaction (and release the
// lease row it may lock) of a client that vanished in the middle of one.
//
// Transactions are READ COMMITTED. The lease SQL relies on PostgreSQL re-evaluating an UPDATE's
// WHERE clause on the latest committed row (lease_store.cpp), and fenced() locks the lease row
// FOR SHARE (database.cpp). Outside transaction() the session is read-only
// (default_transaction_read_only), which is how query() refuses a write, as SQLite's does.
//
// No transaction is retried on serialization_failure or deadlock_detected: a body may have done
// more than SQL (a plugin's callback across the ABI, results kept in the caller's variables), so
// running it twice is not known to be safe. READ COMMITTED never fails with a serialization
// failure; a deadlock surfaces as DbError, and the callers that must, retry on their own schedule.
#include "db/postgres_database.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "db/confinement.hpp"
#include "db/database.hpp"

namespace emsnode::db {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Type OIDs (pg_type.dat); stable across PostgreSQL releases.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kNameOid = 19;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kTextOid = 25;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kUnknownOid = 705;
constexpr Oid kBpcharOid = 1042;
constexpr Oid kVarcharOid = 1043;
constexpr Oid kNumericOid = 1700;
constexpr Oid kVoidOid = 2278;

// How long the client waits past the server's statement_timeout before it gives up on the server.
constexpr milliseconds kClientGrace{1000};

constexpr const char* kNowSql = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

struct ConnectionCloser {
  void operator()(PGconn* connection) const noexcept { PQfinish(connection); }
};
using ConnectionHandle = std::unique_ptr<PGconn, ConnectionCloser>;

struct ResultClearer {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using ResultHandle = std::unique_ptr<PGresult, ResultClearer>;

struct ConninfoFreer {
  void operator()(PQconninfoOption* options) const noexcept { PQconninfoFree(options); }
};

bool ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool ident_char(char c) {
  return ident_start(c) || is_digit(c) || c == '$';
}

bool same_word(std::string_view word, std::string_view upper) {
  if (word.size() != upper.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c =
        word[i] >= 'a' && word[i] <= 'z' ? static_cast<char>(word[i] - 'a' + 'A') : word[i];
    if (c != upper[i]) return false;
  }
  return true;
}

// The end of the quoted text that starts at `begin` (a quote character), past its closing quote.
std::size_t end_of_quoted(std::string_view sql, std::size_t begin, char quote, bool backslashes) {
  std::size_t j = begin + 1;
  while (j < sql.size()) {
    if (backslashes && sql[j] == '\\') {
      j += 2;
      continue;
    }
    if (sql[j] == quote) {
      if (j + 1 < sql.size() && sql[j + 1] == quote) {  // a doubled quote stands for itself
        j += 2;
        continue;
      }
      return j + 1;
    }
    ++j;
  }
  return sql.size();
}

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// SQLSTATE classes and codes after which this node cannot use the database until it reconnects
// or the server recovers: connection exceptions (08), the server shutting down or starting
// (57P01-57P03), and insufficient resources such as a full disk (53).
bool unreachable_state(std::string_view state) {
  return state.rfind("08", 0) == 0 || state.rfind("53", 0) == 0 || state == "57P01" ||
         state == "57P02" || state == "57P03";
}

std::uint64_t load_be(const char* data, std::size_t size) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < size; ++i) {
    value = (value << 8) | static_cast<unsigned char>(data[i]);
  }
  return value;
}

std::string seconds_ceil(milliseconds value) {
  return std::to_string(std::max<std::int64_t>(1, (value.count() + 999) / 1000));
}

// One libpq connection with the deadline discipline described at the top of the file.
// Wakes a call waiting on the server from another thread (Database::interrupt): an eventfd that
// the wait polls beside the socket, and a generation that tells a waiting call whether the wake
// came after it started.
class Interrupter {
 public:
  Interrupter() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (fd_ < 0) throw DbError(std::string("eventfd: ") + std::strerror(errno));
  }
  ~Interrupter() { ::close(fd_); }
  Interrupter(const Interrupter&) = delete;
  Interrupter& operator=(const Interrupter&) = delete;

  int fd() const { return fd_; }
  std::uint64_t generation() const { return generation_.load(); }
  void interrupt() {
    ++generation_;
    const std::uint64_t one = 1;
    // Cannot fail short of the counter's overflow, which still leaves the fd readable.
    [[maybe_unused]] const ssize_t written = ::write(fd_, &one, sizeof one);
  }
  void drain() {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t got = ::read(fd_, &count, sizeof count);
  }

 private:
  const int fd_;
  std::atomic<std::uint64_t> generation_{0};
};

class Connection {
 public:
  // `interrupter`: what may cut this connection's waits short (nullptr: nothing).
  Connection(const PostgresOptions& options, std::string where, Interrupter* interrupter = nullptr)
      : options_(options), where_(std::move(where)), interrupter_(interrupter) {}

  const std::string& where() const { return where_; }
  bool connected() const { return handle_ != nullptr; }

  // A call of the database begins: an interrupt from now on (`generation` was read when the
  // call entered, before it waited for other threads' calls) makes its waits fail.
  void begin_call(std::uint64_t generation) {
    generation_ = generation;
    if (interrupted()) throw UnreachableError(where_ + ": interrupted before it began");
  }
  PGconn* get() const { return handle_.get(); }
  void drop() noexcept { handle_.reset(); }

  // Connects when there is no connection. Throws UnreachableError naming libpq's reason (a
  // refused connection, a timeout, a failed password authentication, ...).
  void ensure() {
    if (handle_) return;
    const std::string timeout = seconds_ceil(options_.connect_timeout);
    const std::string keepalive_idle = seconds_ceil(options_.statement_timeout);
    const std::string user_timeout =
        std::to_string((options_.statement_timeout + kClientGrace).count());
    std::vector<const char*> keys;
    std::vector<const char*> values;
    std::deque<std::string> storage;  // stable addresses for the values' c_str()
    const auto add = [&](const char* key, std::string value) {
      if (value.empty()) return;
      keys.push_back(key);
      values.push_back(storage.emplace_back(std::move(value)).c_str());
    };
    // The URL first (expand_dbname): the keywords after it override what it says.
    add("dbname", options_.url);
    add("password", options_.password);
    add("connect_timeout", timeout);
    add("sslmode", options_.sslmode);
    add("sslrootcert", options_.sslrootcert);
    add("keepalives", "1");
    add("keepalives_idle", keepalive_idle);
    add("keepalives_interval", "1");
    add("keepalives_count", "3");
    add("tcp_user_timeout", user_timeout);
    add("application_name", "emsnode");
    keys.push_back(nullptr);
    values.push_back(nullptr);
    // Connected step by step (libpq's connect_timeout does not apply then: the deadline here
    // does), so that an interrupt cuts a connect to an unreachable server short too.
    ConnectionHandle handle(PQconnectStartParams(keys.data(), values.data(), 1));
    if (!handle) throw UnreachableError(where_ + ": cannot connect: out of memory");
    const auto deadline = Clock::now() + options_.connect_timeout;
    for (PostgresPollingStatusType step = PGRES_POLLING_WRITING; step != PGRES_POLLING_OK;
         step = PQconnectPoll(handle.get())) {
      if (PQstatus(handle.get()) == CONNECTION_BAD || step == PGRES_POLLING_FAILED) {
        throw UnreachableError(where_ +
                               ": cannot connect: " + trimmed(PQerrorMessage(handle.get())));
      }
      switch (wait_ready(PQsocket(handle.get()), step == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                         deadline)) {
        case Wait::ready:
          break;
        case Wait::timed_out:
          throw UnreachableError(where_ + ": cannot connect: no answer within " +
                                 std::to_string(options_.connect_timeout.count()) + " ms");
        case Wait::interrupted:
          throw UnreachableError(where_ + ": connect interrupted");
        case Wait::failed:
          throw UnreachableError(where_ + ": cannot connect: " + std::strerror(errno));
      }
    }
    // Notices (CREATE TABLE IF NOT EXISTS on an existing table, ...) are not errors; libpq would
    // print them on standard error.
    PQsetNoticeProcessor(
        handle.get(), [](void*, const char*) {}, nullptr);
    if (PQsetnonblocking(handle.get(), 1) != 0) {
      throw UnreachableError(where_ + ": cannot connect: " + trimmed(PQerrorMessage(handle.get())));
    }
    handle_ = std::move(handle);
    const auto idle_limit = std::max(milliseconds(1000), options_.statement_timeout * 2);
    run("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()), {});
    run("SET idle_in_transaction_session_timeout = " + std::to_string(idle_limit.count()), {});
    run("SET default_transaction_read_only = on", {});
  }

  // Runs one statement ($n placeholders) and returns its successful result. Throws
  // UnreachableError (and drops the connection) when the server cannot be reached or does not
  // answer in time, else DbError with the server's message.
  ResultHandle run(const std::string& sql, const Params& params, std::string_view shown = {}) {
    PGconn* const connection = handle_.get();
    const std::string head = sql_head(shown.empty() ? std::string_view(sql) : shown);
    std::vector<Oid> types(params.size(), 0);
    std::vector<std::string> storage(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    std::vector<int> lengths(params.size(), 0);
    std::vector<int> formats(params.size(), 0);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Value& value = params[i];
      if (const auto* integer = std::get_if<std::int64_t>(&value)) {
        const std::uint64_t be = htobe64(static_cast<std::uint64_t>(*integer));
        storage[i].assign(reinterpret_cast<const char*>(&be), sizeof be);
        types[i] = kInt8Oid;
        formats[i] = 1;
      } else if (const auto* real = std::get_if<double>(&value)) {
        std::uint64_t bits = 0;
        std::memcpy(&bits, real, sizeof bits);
        const std::uint64_t be = htobe64(bits);
        storage[i].assign(reinterpret_cast<const char*>(&be), sizeof be);
        types[i] = kFloat8Oid;
        formats[i] = 1;
      } else if (const auto* text = std::get_if<std::string>(&value)) {
        // Text format and no type: the server infers it from the context, as SQLite's dynamic
        // typing lets a string stand for a TEXT value. Text cannot hold a NUL byte.
        if (text->find('\0') != std::string::npos) {
          throw DbError(where_ + ": " + head + ": parameter " + std::to_string(i + 1) +
                        " is text with a NUL byte, which PostgreSQL cannot store: bind a blob");
        }
        storage[i] = *text;
      } else if (const auto* blob = std::get_if<Blob>(&value)) {
        storage[i] = blob->bytes;
        types[i] = kByteaOid;
        formats[i] = 1;
      } else {
        continue;  // NULL: a null value pointer
      }
      values[i] = storage[i].data();
      lengths[i] = static_cast<int>(storage[i].size());
    }
    const auto deadline = Clock::now() + options_.statement_timeout + kClientGrace;
    if (!PQsendQueryParams(connection, sql.c_str(), static_cast<int>(params.size()), types.data(),
                           values.data(), lengths.data(), formats.data(), 1)) {
      lost(head);
    }
    for (;;) {
      const int flushed = PQflush(connection);
      if (flushed == 0) break;
      if (flushed < 0) lost(head);
      wait_socket(POLLOUT | POLLIN, deadline, head);
      if (!PQconsumeInput(connection)) lost(head);
    }
    ResultHandle outcome;
    for (;;) {
      while (PQisBusy(connection)) {
        wait_socket(POLLIN, deadline, head);
        if (!PQconsumeInput(connection)) lost(head);
      }
      ResultHandle result(PQgetResult(connection));
      if (!result) break;
      // Keep the first error; later results (none for one statement) do not replace it.
      if (!outcome || PQresultStatus(outcome.get()) == PGRES_COMMAND_OK ||
          PQresultStatus(outcome.get()) == PGRES_TUPLES_OK) {
        outcome = std::move(result);
      }
    }
    if (!outcome) lost(head);
    const ExecStatusType status = PQresultStatus(outcome.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return outcome;
    const char* state_field = PQresultErrorField(outcome.get(), PG_DIAG_SQLSTATE);
    const std::string state = state_field ? state_field : "";
    std::string message = where_ + ": " + head + ": " +
                          trimmed(PQresultErrorField(outcome.get(), PG_DIAG_MESSAGE_PRIMARY));
    if (state == "25006") {
      throw DbError(where_ + ": " + head + ": query() only reads; write inside transaction()");
    }
    if (state == "42601" && message.find("multiple commands") != std::string::npos) {
      throw DbError(where_ + ": " + head + ": one statement at a time");
    }
    if (state == "57014") {
      throw DbError(message + " (statement_timeout " +
                    std::to_string(options_.statement_timeout.count()) + " ms)");
    }
    if (!state.empty()) message += " (SQLSTATE " + state + ")";
    if (PQstatus(connection) == CONNECTION_BAD || unreachable_state(state)) {
      drop();
      throw UnreachableError(message);
    }
    throw DbError(message);
  }

 private:
  enum class Wait { ready, timed_out, interrupted, failed };

  bool interrupted() const { return interrupter_ && interrupter_->generation() != generation_; }

  // Waits until `fd` is ready for `events`, the deadline passes, or the call is interrupted.
  Wait wait_ready(int fd, short events, Clock::time_point deadline) {
    for (;;) {
      if (interrupted()) return Wait::interrupted;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Wait::timed_out;
      pollfd p[2] = {{fd, events, 0}, {interrupter_ ? interrupter_->fd() : -1, POLLIN, 0}};
      const int ready = ::poll(p, 2, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR) return Wait::failed;
      if (ready > 0 && (p[1].revents & POLLIN)) interrupter_->drain();
      if (ready > 0 && p[0].revents != 0) return Wait::ready;
    }
  }

  // Waits until the socket is ready for `events`; on a timeout or an interrupt the connection is
  // dropped (an answer that arrives later must not be taken for the next statement's).
  void wait_socket(short events, Clock::time_point deadline, const std::string& head) {
    switch (wait_ready(PQsocket(handle_.get()), events, deadline)) {
      case Wait::ready:
        return;
      case Wait::timed_out:
        drop();
        throw UnreachableError(where_ + ": " + head + ": no answer from the server within " +
                               std::to_string((options_.statement_timeout + kClientGrace).count()) +
                               " ms");
      case Wait::interrupted:
        drop();
        throw UnreachableError(where_ + ": " + head + ": interrupted while waiting for the server");
      case Wait::failed:
        lost(head);
    }
  }

  [[noreturn]] void lost(const std::string& head) {
    const std::string reason = trimmed(PQerrorMessage(handle_.get()));
    drop();
    throw UnreachableError(where_ + ": " + head + ": connection lost: " +
                           (reason.empty() ? std::string("no result") : reason));
  }

  const PostgresOptions options_;
  const std::string where_;
  Interrupter* const interrupter_;
  std::uint64_t generation_ = 0;  // the interrupter's, when the running call started
  ConnectionHandle handle_;
};

Value decode(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return nullptr;
  const char* data = PQgetvalue(result, row, column);
  const auto size = static_cast<std::size_t>(PQgetlength(result, row, column));
  const Oid type = PQftype(result, column);
  switch (type) {
    case kBoolOid:
      return static_cast<std::int64_t>(size == 1 && data[0] != 0 ? 1 : 0);
    case kInt2Oid:
      return static_cast<std::int64_t>(static_cast<std::int16_t>(load_be(data, 2)));
    case kInt4Oid:
      return static_cast<std::int64_t>(static_cast<std::int32_t>(load_be(data, 4)));
    case kInt8Oid:
      return static_cast<std::int64_t>(load_be(data, 8));
    case kOidOid:
      return static_cast<std::int64_t>(load_be(data, 4));
    case kFloat4Oid: {
      const auto bits = static_cast<std::uint32_t>(load_be(data, 4));
      float value = 0;
      std::memcpy(&value, &bits, sizeof value);
      return static_cast<double>(value);
    }
    case kFloat8Oid: {
      const std::uint64_t bits = load_be(data, 8);
      double value = 0;
      std::memcpy(&value, &bits, sizeof value);
      return value;
    }
    case kByteaOid:
      return Blob{std::string(data, size)};
    case kTextOid:
    case kVarcharOid:
    case kBpcharOid:
    case kNameOid:
    case kUnknownOid:
      return std::string(data, size);
    case kVoidOid:
      return nullptr;
    default:
      break;
  }
  const std::string name = PQfname(result, column) ? PQfname(result, column) : "?";
  if (type == kNumericOid) {
    throw DbError("column " + std::to_string(column) + " (" + name +
                  ") is numeric, which has no portable value (SUM and AVG of integers return it "
                  "on PostgreSQL): CAST(... AS BIGINT) or CAST(... AS DOUBLE PRECISION) it");
  }
  throw DbError("column " + std::to_string(column) + " (" + name + ") has PostgreSQL type oid " +
                std::to_string(type) +
                ", which is not in the portable subset (integers, reals, text, blobs)");
}

Rows decode_rows(const PGresult* result) {
  Rows rows;
  const int count = PQntuples(result);
  const int columns = PQnfields(result);
  rows.reserve(static_cast<std::size_t>(count));
  for (int r = 0; r < count; ++r) {
    std::vector<Value> values;
    values.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) values.push_back(decode(result, r, c));
    rows.emplace_back(std::move(values));
  }
  return rows;
}

class PostgresDatabase;

class PostgresTransaction final : public Transaction {
 public:
  explicit PostgresTransaction(PostgresDatabase& database) : database_(database) {}
  std::int64_t exec(std::string_view sql, const Params& params) override;
  Rows query(std::string_view sql, const Params& params) override;
  std::int64_t confined_exec(const Confinement& confinement, std::string_view sql,
                             const Params& params) override;
  Rows confined_query(const Confinement& confinement, std::string_view sql,
                      const Params& params) override;
  void notify(std::string_view channel) override;

 private:
  PostgresDatabase& database_;
};

class PostgresListener final : public Listener {
 public:
  PostgresListener(const PostgresOptions& options, const std::string& where, std::string channel)
      : connection_(options, where + " (listener)"), channel_(std::move(channel)) {}

  bool wait(milliseconds timeout) override {
    if (!connection_.connected()) {
      connection_.ensure();
      connection_.run("LISTEN " + channel_, {});
      return true;  // whatever was sent while we had no connection is lost
    }
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (drain()) return true;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{PQsocket(connection_.get()), POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR) lost();
      if (ready > 0 && !PQconsumeInput(connection_.get())) lost();
    }
  }

 private:
  bool drain() {
    bool any = false;
    while (PGnotify* notification = PQnotifies(connection_.get())) {
      PQfreemem(notification);
      any = true;
    }
    return any;
  }

  [[noreturn]] void lost() {
    const std::string reason = trimmed(PQerrorMessage(connection_.get()));
    connection_.drop();
    throw UnreachableError(connection_.where() + ": connection lost: " + reason);
  }

  Connection connection_;
  const std::string channel_;
};

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(const PostgresOptions& options, std::string where)
      : options_(options), where_(std::move(where)), connection_(options, where_, &interrupter_) {}

  std::string_view backend() const override { return "postgresql"; }
  std::string describe() const override { return where_; }
  void interrupt() override { interrupter_.interrupt(); }

  std::int64_t now_ms() override {
    const auto generation = interrupter_.generation();
    std::lock_guard lock(mutex_);
    if (!in_transaction_) connection_.begin_call(generation);
    return run(kNowSql, {}, nullptr).front().integer(0);
  }

  Rows query(std::string_view sql, const Params& params) override {
    const auto generation = interrupter_.generation();
    std::lock_guard lock(mutex_);
    if (!in_transaction_) connection_.begin_call(generation);
    return run(sql, params, nullptr);
  }

  // Outside a transaction, in one of its own: READ ONLY, whatever a setting of the session says,
  // and rolled back, which also undoes any setting the statement made.
  Rows confined_query(const Confinement& confinement, std::string_view sql,
                      const Params& params) override {
    const auto generation = interrupter_.generation();
    std::lock_guard lock(mutex_);
    refuse_unconfined(confinement, sql);
    if (in_transaction_) return run(sql, params, nullptr);
    connection_.begin_call(generation);
    connection_.ensure();
    if (PQtransactionStatus(connection_.get()) != PQTRANS_IDLE) {
      connection_.drop();
      connection_.ensure();
    }
    connection_.run("BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY", {});
    in_transaction_ = true;
    struct End {
      PostgresDatabase& database;
      ~End() {
        database.in_transaction_ = false;
        database.roll_back();
      }
    } end{*this};
    return run(sql, params, nullptr);
  }

  void refuse_unconfined(const Confinement& confinement, std::string_view sql) const {
    if (auto refusal = confinement_refusal(confinement, sql)) {
      throw DbError(where_ + ": " + sql_head(sql) + ": " + *refusal);
    }
  }

  void transaction(const std::function<void(Transaction&)>& body) override {
    const auto generation = interrupter_.generation();
    std::lock_guard lock(mutex_);
    if (!in_transaction_) connection_.begin_call(generation);
    if (in_transaction_) {
      throw DbError(where_ +
                    ": transaction() called inside a transaction body; use the Transaction it "
                    "received");
    }
    connection_.ensure();
    // A connection left inside a transaction (a ROLLBACK that could not be sent) is not reused.
    if (PQtransactionStatus(connection_.get()) != PQTRANS_IDLE) {
      connection_.drop();
      connection_.ensure();
    }
    connection_.run("BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE", {});
    in_transaction_ = true;
    PostgresTransaction tx(*this);
    try {
      body(tx);
      const ResultHandle committed = connection_.run("COMMIT", {});
      // COMMIT of a transaction in which a statement failed (and the body went on) rolls back.
      if (std::strcmp(PQcmdStatus(committed.get()), "ROLLBACK") == 0) {
        throw DbError(where_ +
                      ": the transaction was rolled back: a statement in it had failed (on "
                      "PostgreSQL a failed statement ends the transaction)");
      }
    } catch (...) {
      in_transaction_ = false;
      roll_back();
      throw;
    }
    in_transaction_ = false;
  }

  std::unique_ptr<Listener> listen(std::string_view channel) override {
    const bool valid = !channel.empty() && std::all_of(channel.begin(), channel.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_';
    });
    if (!valid) {
      throw std::invalid_argument("channel \"" + std::string(channel) +
                                  "\": expected lowercase letters, digits and '_'");
    }
    return std::make_unique<PostgresListener>(options_, where_, std::string(channel));
  }

  // Runs one statement; the caller holds mutex_. `changes` receives the rows it changed.
  Rows run(std::string_view sql, const Params& params, std::int64_t* changes) {
    const RewrittenSql rewritten = rewrite_for_postgres(sql);
    if (rewritten.placeholders != params.size()) {
      throw DbError(where_ + ": " + sql_head(sql) + ": takes " +
                    std::to_string(rewritten.placeholders) + " parameters, given " +
                    std::to_string(params.size()));
    }
    connection_.ensure();
    const ResultHandle result = connection_.run(rewritten.sql, params, sql);
    if (changes) {
      const char* tuples = PQcmdTuples(result.get());
      *changes = tuples && *tuples ? std::stoll(tuples) : 0;
    }
    try {
      return decode_rows(result.get());
    } catch (const DbError& error) {
      throw DbError(where_ + ": " + sql_head(sql) + ": " + error.what());
    }
  }

 private:
  // After a failed body or COMMIT. A connection on which even ROLLBACK fails is dropped: the
  // server ends the transaction when the connection closes. This runs while the original
  // exception propagates, which must not be replaced.
  void roll_back() noexcept {
    if (!connection_.connected()) return;
    if (PQtransactionStatus(connection_.get()) == PQTRANS_IDLE) return;
    try {
      connection_.run("ROLLBACK", {});
    } catch (const std::exception&) {
      connection_.drop();
    }
  }

  const PostgresOptions options_;
  const std::string where_;
  Interrupter interrupter_;
  Connection connection_;
  // Recursive so that now_ms() and query() work from inside a transaction body on its thread
  // (they then run within the transaction); other threads wait for the transaction to end.
  std::recursive_mutex mutex_;
  bool in_transaction_ = false;
};

std::int64_t PostgresTransaction::exec(std::string_view sql, const Params& params) {
  std::int64_t changes = 0;
  database_.run(sql, params, &changes);
  return changes;
}

Rows PostgresTransaction::query(std::string_view sql, const Params& params) {
  return database_.run(sql, params, nullptr);
}

std::int64_t PostgresTransaction::confined_exec(const Confinement& confinement,
                                                std::string_view sql, const Params& params) {
  database_.refuse_unconfined(confinement, sql);
  return exec(sql, params);
}

Rows PostgresTransaction::confined_query(const Confinement& confinement, std::string_view sql,
                                         const Params& params) {
  database_.refuse_unconfined(confinement, sql);
  return query(sql, params);
}

void PostgresTransaction::notify(std::string_view channel) {
  database_.run("SELECT pg_notify(?, '')", {std::string(channel)}, nullptr);
}

}  // namespace

RewrittenSql rewrite_for_postgres(std::string_view sql) {
  RewrittenSql out;
  out.sql.reserve(sql.size() + 16);
  const std::size_t n = sql.size();
  std::size_t i = 0;
  const auto copy_to = [&](std::size_t end) {
    out.sql.append(sql.substr(i, end - i));
    i = end;
  };
  while (i < n) {
    const char c = sql[i];
    const char next = i + 1 < n ? sql[i + 1] : '\0';
    if (c == '\'') {
      // E'...' strings take backslash escapes; standard strings do not.
      const bool escapes =
          i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') && (i < 2 || !ident_char(sql[i - 2]));
      copy_to(end_of_quoted(sql, i, '\'', escapes));
    } else if (c == '"') {
      copy_to(end_of_quoted(sql, i, '"', false));
    } else if (c == '-' && next == '-') {
      const std::size_t end = sql.find('\n', i);
      copy_to(end == std::string_view::npos ? n : end);
    } else if (c == '/' && next == '*') {
      int depth = 1;  // PostgreSQL's block comments nest
      std::size_t j = i + 2;
      while (j < n && depth > 0) {
        if (sql.compare(j, 2, "/*") == 0) {
          ++depth;
          j += 2;
        } else if (sql.compare(j, 2, "*/") == 0) {
          --depth;
          j += 2;
        } else {
          ++j;
        }
      }
      copy_to(j);
    } else if (c == '$' && !is_digit(next) && (i == 0 || !ident_char(sql[i - 1]))) {
      // A dollar-quoted string: $tag$ ... $tag$ (the tag may be empty).
      std::size_t j = i + 1;
      while (j < n && ident_char(sql[j]) && sql[j] != '$') ++j;
      if (j < n && sql[j] == '$') {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const std::size_t close = sql.find(tag, j + 1);
        copy_to(close == std::string_view::npos ? n : close + tag.size());
      } else {
        copy_to(i + 1);
      }
    } else if (c == '?') {
      out.sql += '$' + std::to_string(++out.placeholders);
      ++i;
    } else if (ident_start(c)) {
      std::size_t j = i;
      while (j < n && ident_char(sql[j])) ++j;
      const std::string_view word = sql.substr(i, j - i);
      // A qualified name (t.real) is a column, not a type.
      const bool qualified = !out.sql.empty() && out.sql.back() == '.';
      if (!qualified && same_word(word, "INTEGER")) {
        out.sql += "BIGINT";
        i = j;
      } else if (!qualified && same_word(word, "BLOB")) {
        out.sql += "BYTEA";
        i = j;
      } else if (!qualified && same_word(word, "REAL")) {
        out.sql += "DOUBLE PRECISION";
        i = j;
      } else {
        copy_to(j);
      }
    } else if (is_digit(c)) {
      // A number, with any exponent or suffix letters (1e5), is never a type name.
      std::size_t j = i;
      while (j < n && (ident_char(sql[j]) || sql[j] == '.')) ++j;
      copy_to(j);
    } else {
      copy_to(i + 1);
    }
  }
  return out;
}

std::string describe_postgres_url(const std::string& url) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFreer> options(PQconninfoParse(url.c_str(), &error));
  if (!options) {
    std::string reason = error ? trimmed(error) : "out of memory";
    if (error) PQfreemem(error);
    throw std::invalid_argument("the PostgreSQL connection string cannot be parsed: " + reason);
  }
  std::string host;
  std::string hostaddr;
  std::string port;
  std::string dbname;
  for (const PQconninfoOption* option = options.get(); option->keyword; ++option) {
    if (!option->val) continue;
    const std::string_view keyword = option->keyword;
    if (keyword == "password" && *option->val) {
      throw std::invalid_argument(
          "the PostgreSQL connection string holds a password, which would be shown in logs and "
          "status: give it as [database] password (inline, \"env:NAME\" or password_file)");
    }
    if (keyword == "host") host = option->val;
    if (keyword == "hostaddr") hostaddr = option->val;
    if (keyword == "port") port = option->val;
    if (keyword == "dbname") dbname = option->val;
  }
  if (host.empty()) host = hostaddr.empty() ? "localhost" : hostaddr;
  return "postgresql://" + host + ":" + (port.empty() ? "5432" : port) + "/" + dbname;
}

PostgresTarget postgres_target(const std::string& url) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFreer> options(PQconninfoParse(url.c_str(), &error));
  if (!options) {
    std::string reason = error ? trimmed(error) : "out of memory";
    if (error) PQfreemem(error);
    throw std::invalid_argument("the PostgreSQL connection string cannot be parsed: " + reason);
  }
  PostgresTarget target;
  std::string hosts;
  for (const PQconninfoOption* option = options.get(); option->keyword; ++option) {
    if (!option->val || !*option->val) continue;
    const std::string_view keyword = option->keyword;
    if (keyword == "host" || keyword == "hostaddr") hosts += std::string(option->val) + ",";
    if (keyword == "sslmode") target.sslmode = option->val;
  }
  if (hosts.empty()) {
    if (const char* env = std::getenv("PGHOST"); env && *env) hosts = env;
  }
  std::size_t begin = 0;
  while (begin < hosts.size()) {
    std::size_t end = hosts.find(',', begin);
    if (end == std::string::npos) end = hosts.size();
    if (end > begin) target.hosts.push_back(hosts.substr(begin, end - begin));
    begin = end + 1;
  }
  return target;
}

bool is_loopback_host(std::string_view host) {
  if (host.empty() || host.front() == '/' || host.front() == '@') return true;  // Unix sockets
  if (host == "localhost" || host == "localhost.") return true;
  const std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

std::unique_ptr<Database> open_postgres(const PostgresOptions& options) {
  static constexpr std::string_view kSslModes[] = {"disable", "allow",     "prefer",
                                                   "require", "verify-ca", "verify-full"};
  if (std::find(std::begin(kSslModes), std::end(kSslModes), options.sslmode) ==
      std::end(kSslModes)) {
    throw std::invalid_argument(
        "sslmode \"" + options.sslmode +
        "\" is not one of disable, allow, prefer, require, verify-ca, verify-full");
  }
  if (options.connect_timeout.count() <= 0 || options.statement_timeout.count() <= 0) {
    throw std::invalid_argument("connect_timeout and statement_timeout must be greater than 0");
  }
  return std::make_unique<PostgresDatabase>(options, describe_postgres_url(options.url));
}

}  // namespace emsnode::db
