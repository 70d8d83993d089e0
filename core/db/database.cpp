// The backend-independent part of the database interface: typed column access and the fencing
// check every write on behalf of the active node goes through.
#include "db/database.hpp"

#include <algorithm>
#include <string>

namespace emsnode::db {
namespace {

std::string_view type_name(const Value& value) {
  switch (value.index()) {
    case 0:
      return "null";
    case 1:
      return "an integer";
    case 2:
      return "a real";
    case 3:
      return "text";
    default:
      return "a blob";
  }
}

[[noreturn]] void wrong_type(std::size_t i, const Value& value, std::string_view wanted) {
  throw DbError("column " + std::to_string(i) + " is " + std::string(type_name(value)) + ", not " +
                std::string(wanted));
}

}  // namespace

std::int64_t Row::integer(std::size_t i) const {
  const Value& value = columns_.at(i);
  if (const auto* v = std::get_if<std::int64_t>(&value)) return *v;
  wrong_type(i, value, "an integer");
}

double Row::floating(std::size_t i) const {
  const Value& value = columns_.at(i);
  if (const auto* v = std::get_if<double>(&value)) return *v;
  if (const auto* v = std::get_if<std::int64_t>(&value)) return static_cast<double>(*v);
  wrong_type(i, value, "a real");
}

const std::string& Row::text(std::size_t i) const {
  const Value& value = columns_.at(i);
  if (const auto* v = std::get_if<std::string>(&value)) return *v;
  wrong_type(i, value, "text");
}

const std::string& Row::blob(std::size_t i) const {
  const Value& value = columns_.at(i);
  if (const auto* v = std::get_if<Blob>(&value)) return v->bytes;
  wrong_type(i, value, "a blob");
}

std::string sql_head(std::string_view sql) {
  constexpr std::size_t kMaxWords = 4;
  constexpr std::size_t kMaxChars = 48;
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  std::string head;
  std::size_t words = 0;
  std::size_t i = 0;
  for (;;) {
    while (i < sql.size() && is_space(sql[i])) ++i;
    if (i == sql.size()) return head;
    if (words == kMaxWords || head.size() >= kMaxChars) return head + " ...";
    std::size_t end = i;
    while (end < sql.size() && !is_space(sql[end])) ++end;
    if (!head.empty()) head += ' ';
    head.append(sql.substr(i, std::min(end - i, kMaxChars)));
    ++words;
    i = end;
  }
}

void Database::fenced(std::string_view node_id, std::uint64_t epoch,
                      const std::function<void(Transaction&)>& body) {
  if (epoch == 0) {
    throw FencedError("fenced: this node (" + std::string(node_id) +
                      ") is not serving: it holds no epoch");
  }
  transaction([&](Transaction& tx) {
    // The check and the writes share one transaction, and no other node can take the lease
    // between the check and the commit: SQLite's transaction holds the write lock from its first
    // statement (BEGIN IMMEDIATE); on PostgreSQL, FOR SHARE locks the lease row against writers
    // until the commit (an acquisition waits for it), and reads the latest committed row.
    const Rows lease = tx.query(
        backend() == "postgresql" ? "SELECT holder, epoch, expires_at_ms FROM lease "
                                    "WHERE id = 1 FOR SHARE"
                                  : "SELECT holder, epoch, expires_at_ms FROM lease WHERE id = 1");
    const std::string self = "fenced: this node (" + std::string(node_id) + ", epoch " +
                             std::to_string(epoch) + ") no longer holds the lease; ";
    if (lease.empty()) throw FencedError(self + "there is no lease row (schema not created)");
    const Row& row = lease.front();
    const std::string holder = row.is_null(0) ? std::string() : row.text(0);
    const std::int64_t current_epoch = row.integer(1);
    if (holder != node_id || current_epoch != static_cast<std::int64_t>(epoch)) {
      throw FencedError(self + (holder.empty() ? "the lease is free" : "holder " + holder) +
                        " at epoch " + std::to_string(current_epoch));
    }
    // Read inside the transaction, so it is the clock at the moment the write lock is held.
    const std::int64_t now = now_ms();
    const std::int64_t expires_at = row.integer(2);
    if (expires_at <= now) {
      throw FencedError(self + "it expired " + std::to_string(now - expires_at) + " ms ago");
    }
    body(tx);
  });
}

}  // namespace emsnode::db
