#include "store/catalog.hpp"

#include "store/keys.hpp"

namespace emsnode::store {
namespace {

constexpr const char* kColumns =
    "key, size, sha256, modified_at_ms, writer_node, epoch, backend, location";

Entry entry_of(const db::Row& row) {
  Entry entry;
  entry.info.key = row.text(0);
  entry.info.size = static_cast<std::uint64_t>(row.integer(1));
  entry.info.sha256 = row.text(2);
  entry.info.modified_at_ms = row.integer(3);
  entry.info.writer_node = row.text(4);
  entry.info.epoch = static_cast<std::uint64_t>(row.integer(5));
  entry.backend = row.text(6);
  entry.location = row.text(7);
  return entry;
}

std::string_view kind_name(Change::Kind kind) {
  return kind == Change::Kind::put ? "put" : "removed";
}

}  // namespace

std::optional<Entry> Catalog::find(std::string_view key) {
  return with_database("store: stat " + std::string(key), [&]() -> std::optional<Entry> {
    const db::Rows rows = database_.query(
        std::string("SELECT ") + kColumns + " FROM store_files WHERE key = ? AND backend = ?",
        {std::string(key), backend_});
    if (rows.empty()) return std::nullopt;
    return entry_of(rows.front());
  });
}

std::vector<FileInfo> Catalog::list(std::string_view prefix) {
  check_prefix(prefix);
  return with_database("store: list " + std::string(prefix), [&] {
    // substr() and length() count characters on both backends, and need no escaping, unlike
    // LIKE with '_' and '%' in keys; the database measures the prefix itself (PostgreSQL's
    // substr takes a 32-bit length, which a bound 64-bit integer does not match). Keys list in
    // byte order on both backends.
    const db::Rows rows =
        database_.query(std::string("SELECT ") + kColumns +
                            " FROM store_files WHERE backend = ? AND substr(key, 1, length(?)) = ? "
                            "ORDER BY key COLLATE \"C\"",
                        {backend_, std::string(prefix), std::string(prefix)});
    std::vector<FileInfo> files;
    files.reserve(rows.size());
    for (const db::Row& row : rows) files.push_back(entry_of(row).info);
    return files;
  });
}

std::unordered_set<std::string> Catalog::locations() {
  return with_database("store: read the catalog", [&] {
    std::unordered_set<std::string> found;
    for (const db::Row& row :
         database_.query("SELECT location FROM store_files WHERE backend = ?", {backend_})) {
      found.insert(row.text(0));
    }
    return found;
  });
}

bool Catalog::references(std::string_view location) {
  return with_database("store: read the catalog", [&] {
    return !database_
                .query("SELECT 1 FROM store_files WHERE backend = ? AND location = ?",
                       {backend_, std::string(location)})
                .empty();
  });
}

Catalog::Published Catalog::publish(const Writer& writer, std::string_view key, std::uint64_t size,
                                    const std::string& sha256, const std::string& location,
                                    const std::function<void(db::Transaction&)>& check) {
  Published published;
  with_database("store: publish " + std::string(key), [&] {
    database_.fenced(writer.node_id, writer.epoch, [&](db::Transaction& tx) {
      if (check) check(tx);
      const db::Rows previous =
          tx.query(std::string("SELECT ") + kColumns + " FROM store_files WHERE key = ?",
                   {std::string(key)});
      const std::int64_t now = database_.now_ms();
      if (!previous.empty()) {
        published.replaced = entry_of(previous.front());
        tx.exec("DELETE FROM store_files WHERE key = ?", {std::string(key)});
        release(tx, *published.replaced, now);
      }
      published.info = {std::string(key), size, sha256, now, writer.node_id, writer.epoch};
      tx.exec(
          std::string("INSERT INTO store_files (") + kColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
          {std::string(key), static_cast<std::int64_t>(size), sha256, now, writer.node_id,
           static_cast<std::int64_t>(writer.epoch), backend_, location});
      published.change_seq = journal(tx, key, kind_name(Change::Kind::put), now);
    });
  });
  return published;
}

Catalog::Removed Catalog::remove(const Writer& writer, std::string_view key) {
  Removed removed;
  with_database("store: remove " + std::string(key), [&] {
    database_.fenced(writer.node_id, writer.epoch, [&](db::Transaction& tx) {
      const db::Rows rows = tx.query(
          std::string("SELECT ") + kColumns + " FROM store_files WHERE key = ? AND backend = ?",
          {std::string(key), backend_});
      if (rows.empty()) throw NotFound("store: no such key: " + std::string(key));
      removed.entry = entry_of(rows.front());
      const std::int64_t now = database_.now_ms();
      tx.exec("DELETE FROM store_files WHERE key = ?", {std::string(key)});
      release(tx, removed.entry, now);
      removed.change_seq = journal(tx, key, kind_name(Change::Kind::removed), now);
    });
  });
  return removed;
}

std::int64_t Catalog::journal(db::Transaction& tx, std::string_view key, std::string_view kind,
                              std::int64_t now) {
  tx.exec("UPDATE store_state SET change_seq = change_seq + 1 WHERE id = 1");
  const std::int64_t seq =
      tx.query("SELECT change_seq FROM store_state WHERE id = 1").front().integer(0);
  tx.exec("INSERT INTO store_changes (seq, key, kind, at_ms) VALUES (?, ?, ?, ?)",
          {seq, std::string(key), std::string(kind), now});
  tx.exec("DELETE FROM store_changes WHERE seq <= ?", {seq - kJournalRows});
  return seq;
}

void Catalog::release(db::Transaction& tx, const Entry& entry, std::int64_t now) {
  // Only a blob needs this: a share object is unlinked by the share backend after the commit,
  // and a reader that opened it keeps reading it (POSIX keeps an unlinked open file).
  if (entry.backend == kBlobBackend) {
    tx.exec("UPDATE store_blobs SET released_at_ms = ? WHERE blob_id = ?", {now, entry.location});
  }
}

std::int64_t current_change_seq(db::Database& database) {
  return with_database("store: read the change journal", [&] {
    return database.query("SELECT change_seq FROM store_state WHERE id = 1").front().integer(0);
  });
}

std::vector<JournalEntry> changes_after(db::Database& database, std::int64_t seq) {
  return with_database("store: read the change journal", [&] {
    std::vector<JournalEntry> entries;
    for (const db::Row& row : database.query(
             "SELECT seq, key, kind FROM store_changes WHERE seq > ? ORDER BY seq", {seq})) {
      entries.push_back({row.integer(0), row.text(1),
                         row.text(2) == "put" ? Change::Kind::put : Change::Kind::removed});
    }
    return entries;
  });
}

}  // namespace emsnode::store
