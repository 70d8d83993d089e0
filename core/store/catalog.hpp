// The catalog: one row per published file in the shared database (store_files), the change journal
// watchers read (store_state.change_seq, store_changes), and the fenced transactions that publish
// and remove. Both backends go through it, so "visible" means the same on both: a row exists.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "db/database.hpp"
#include "store/file_store.hpp"

namespace emsnode::store {

inline constexpr std::string_view kShareBackend = "share";
inline constexpr std::string_view kBlobBackend = "blob";

// A published file and where its content lives: `location` is the object's path relative to the
// share, or the blob id.
struct Entry {
  FileInfo info;
  std::string backend;
  std::string location;
};

// Runs `body`; a database that cannot be reached becomes Unavailable, saying `what` was being
// done. FencedError and other database errors pass through unchanged: callers (the plugin host,
// the node) already tell a lost lease from other failures by that type.
template <typename Body>
decltype(auto) with_database(std::string_view what, Body&& body) {
  try {
    return body();
  } catch (const db::UnreachableError& error) {
    throw Unavailable(std::string(what) + ": the shared database is unavailable: " + error.what());
  }
}

class Catalog {
 public:
  // A view of the rows of `backend`: a store sees only files whose content it holds.
  Catalog(db::Database& database, std::string_view backend)
      : database_(database), backend_(backend) {}

  std::optional<Entry> find(std::string_view key);
  std::vector<FileInfo> list(std::string_view prefix);
  // The locations this backend's rows name, for garbage collection.
  std::unordered_set<std::string> locations();
  bool references(std::string_view location);

  struct Published {
    FileInfo info;
    std::optional<Entry> replaced;  // the key's previous row, of any backend
    std::int64_t change_seq = 0;
  };
  struct Removed {
    Entry entry;
    std::int64_t change_seq = 0;
  };
  // Points `key` at `location`, in one transaction fenced by `writer`: runs `check` (which may
  // throw to abort), replaces whatever row the key had (of any backend: this is how a file moves
  // between backends), releases the blob the old row named, and journals the change.
  Published publish(const Writer& writer, std::string_view key, std::uint64_t size,
                    const std::string& sha256, const std::string& location,
                    const std::function<void(db::Transaction&)>& check = nullptr);
  // Deletes this backend's row of `key` in one fenced transaction; throws NotFound without one.
  Removed remove(const Writer& writer, std::string_view key);

 private:
  std::int64_t journal(db::Transaction& tx, std::string_view key, std::string_view kind,
                       std::int64_t now);
  void release(db::Transaction& tx, const Entry& entry, std::int64_t now);

  db::Database& database_;
  std::string backend_;
};

// One row of the change journal.
struct JournalEntry {
  std::int64_t seq = 0;
  std::string key;
  Change::Kind kind = Change::Kind::put;
};
// How many journal rows are kept: a watcher that falls further behind misses changes (and logs
// that it did).
inline constexpr std::int64_t kJournalRows = 10'000;

std::int64_t current_change_seq(db::Database& database);
std::vector<JournalEntry> changes_after(db::Database& database, std::int64_t seq);

}  // namespace emsnode::store
