// The blob backend: content as rows of 1 MiB chunks in the shared database, the portable form of
// SQL Server's FILESTREAM.
//
// A put writes its chunks under a fresh blob id in short, unfenced transactions (a few MiB each,
// so that no other node's lease renewal waits behind a large file), marks the blob complete, and
// then publishes it with the fenced catalog transaction. Until then no catalog row names the blob,
// so nothing is visible; a crash leaves an unreferenced blob that collect_garbage() removes.
//
// A replaced or removed blob is not deleted at once: a reader that started before may still be
// streaming it chunk by chunk. The catalog marks it released, and it is deleted a grace period
// later (by the next put or remove, or by collect_garbage()).
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "db/database.hpp"
#include "store/backends.hpp"
#include "store/catalog.hpp"
#include "store/crypto.hpp"
#include "store/streaming.hpp"

namespace emsnode::store {
namespace {

// Chunks deleted per transaction: bounds how long a deletion holds the database's write lock.
constexpr std::size_t kDeleteChunks = 16;
// How much of a local file one put transaction writes, and for how long at most. Each commit
// costs fsyncs of the WAL and, once it outgrows wal_autocheckpoint, a checkpoint with an fsync
// of the database file: a few megabytes per transaction made a put fsync-bound (four fsyncs per
// 4 MiB). The time bound keeps the write lock short next to the lease's renew_interval (400 ms
// by default), so that a renewal never waits long behind a large file.
constexpr std::uint64_t kBatchBytes = std::uint64_t{64} << 20;
constexpr std::chrono::milliseconds kBatchTime{100};
// How long a released blob stays for readers that were streaming it when it was replaced.
constexpr std::chrono::minutes kReleasedGrace{10};

class BlobStore final : public FileStore {
 public:
  explicit BlobStore(db::Database& database)
      : database_(database), catalog_(database, kBlobBackend) {}

  std::string_view backend() const override { return kBlobBackend; }

  FileInfo put_from(std::string_view key, Source& in, const Writer& writer) override {
    check_key(key);
    const std::string what = "store: put " + std::string(key);
    const std::string blob_id = random_id();
    HashedChunks hashed(kChunkBytes, kChunksInFlight);
    std::uint64_t size = 0;
    bool done = false;
    // Reads the next chunk into the ring and hands it to the hasher; null at the end.
    const auto read_chunk = [&]() -> std::string* {
      if (done) return nullptr;
      std::string& chunk = hashed.next();
      const std::size_t got = in.read(chunk.data(), kChunkBytes);
      done = got < kChunkBytes;
      if (got == 0) return nullptr;
      chunk.resize(got);
      hashed.hash(got);
      size += got;
      return &chunk;
    };
    Catalog::Published published;
    try {
      bool created = false;  // the blob's row, written with the first batch
      std::int64_t next_seq = 0;
      while (!done) {
        // What a batch starts with is read before its transaction: the write lock must not wait
        // for a slow input. A local file is read on within the transaction (see kBatchBytes).
        std::vector<std::string*> ready;
        while (ready.size() < kChunksInFlight) {
          std::string* const chunk = read_chunk();
          if (!chunk) break;
          ready.push_back(chunk);
        }
        with_database(what, [&] {
          database_.transaction([&](db::Transaction& tx) {
            const auto started = std::chrono::steady_clock::now();
            if (!created) {
              tx.exec("INSERT INTO store_blobs (blob_id, created_at_ms, complete) VALUES (?, ?, 0)",
                      {blob_id, database_.now_ms()});
            }
            std::int64_t seq = next_seq;
            std::uint64_t batch_bytes = 0;
            for (std::string* chunk : ready) {
              insert_chunk(tx, blob_id, seq++, *chunk);
              batch_bytes += chunk->size();
            }
            while (in.local() && batch_bytes < kBatchBytes &&
                   std::chrono::steady_clock::now() - started < kBatchTime) {
              std::string* const chunk = read_chunk();
              if (!chunk) break;
              insert_chunk(tx, blob_id, seq++, *chunk);
              batch_bytes += chunk->size();
            }
            if (done) tx.exec("UPDATE store_blobs SET complete = 1 WHERE blob_id = ?", {blob_id});
            next_seq = seq;
          });
        });
        created = true;
      }
      const std::string sha256 = hashed.hex();
      published = catalog_.publish(writer, key, size, sha256, blob_id, [&](db::Transaction& tx) {
        const db::Rows rows =
            tx.query("SELECT complete FROM store_blobs WHERE blob_id = ?", {blob_id});
        if (rows.empty() || rows.front().integer(0) != 1) {
          throw StoreError(what + ": its content (blob " + blob_id +
                           ") was collected as garbage before it was published: "
                           "collect_garbage() ran with a min_age shorter than this put took");
        }
      });
    } catch (...) {
      discard(blob_id);
      throw;
    }
    collect_released();
    return published.info;
  }

  FileInfo get_into(std::string_view key, Sink& out) override {
    check_key(key);
    const Entry entry = find(key);
    const std::uint64_t chunks = (entry.info.size + kChunkBytes - 1) / kChunkBytes;
    // The last few chunks' rows stay while the hasher reads them from where the query put them;
    // the hasher, declared after them, is stopped before they go.
    std::vector<db::Rows> in_flight(kChunksInFlight);
    std::vector<std::uint64_t> tickets(kChunksInFlight);
    BackgroundSha256 hashed;
    std::uint64_t size = 0;
    for (std::uint64_t seq = 0; seq < chunks; ++seq) {
      const std::size_t slot = seq % in_flight.size();
      if (tickets[slot] != 0) hashed.wait(tickets[slot]);
      db::Rows& rows = in_flight[slot];
      rows = with_database("store: get " + std::string(key), [&] {
        return database_.query("SELECT data FROM store_blob_chunks WHERE blob_id = ? AND seq = ?",
                               {entry.location, static_cast<std::int64_t>(seq)});
      });
      if (rows.empty()) missing_chunk(entry, seq);
      const std::string& data = rows.front().blob(0);
      size += data.size();
      if (size > entry.info.size) break;  // reported below, before passing on extra bytes
      tickets[slot] = hashed.update(data.data(), data.size());
      out.write(data.data(), data.size());
    }
    if (size != entry.info.size) {
      throw Corrupt("store: " + std::string(key) + " is corrupt: its blob " + entry.location +
                    " has " + (size > entry.info.size ? "more than " : "") + std::to_string(size) +
                    " bytes, the catalog says " + std::to_string(entry.info.size));
    }
    const std::string digest = hashed.hex();
    if (digest != entry.info.sha256) {
      throw Corrupt("store: " + std::string(key) + " is corrupt: the SHA-256 of its blob " +
                    entry.location + " is " + digest + ", the catalog says " + entry.info.sha256);
    }
    return entry.info;
  }

  std::optional<FileInfo> stat(std::string_view key) override {
    check_key(key);
    const auto entry = catalog_.find(key);
    if (!entry) return std::nullopt;
    return entry->info;
  }

  std::vector<FileInfo> list(std::string_view prefix) override { return catalog_.list(prefix); }

  void remove(std::string_view key, const Writer& writer) override {
    check_key(key);
    catalog_.remove(writer, key);
    collect_released();
  }

  std::size_t collect_garbage(std::chrono::milliseconds min_age) override {
    const std::int64_t cutoff =
        with_database("store: collect garbage", [&] { return database_.now_ms(); }) -
        min_age.count();
    // A blob's age counts from its release, or from its creation when no row ever named it (a
    // crashed or fenced-out put).
    std::size_t removed = collect("COALESCE(released_at_ms, created_at_ms) <= ?", cutoff);
    // Chunks whose blob row is gone: a put still writing when its blob was collected, or a
    // deletion interrupted between its batches.
    const db::Rows orphans = with_database("store: collect garbage", [&] {
      return database_.query(
          "SELECT DISTINCT blob_id FROM store_blob_chunks c WHERE NOT EXISTS "
          "(SELECT 1 FROM store_blobs b WHERE b.blob_id = c.blob_id)");
    });
    for (const db::Row& row : orphans) {
      delete_chunks(row.text(0));
      ++removed;
    }
    store_log().info("store.garbage_collected", {{"backend", std::string(kBlobBackend)},
                                                 {"removed", std::to_string(removed)}});
    return removed;
  }

 private:
  Entry find(std::string_view key) {
    auto entry = catalog_.find(key);
    if (!entry) throw NotFound("store: no such key: " + std::string(key));
    return std::move(*entry);
  }

  [[noreturn]] void missing_chunk(const Entry& entry, std::uint64_t seq) {
    const auto now = catalog_.find(entry.info.key);
    if (!now || now->location != entry.location) {
      throw StoreError("store: get " + entry.info.key +
                       ": the file was replaced or removed while it was being read, and its old "
                       "content is gone: read it again");
    }
    throw Corrupt("store: " + entry.info.key + " is corrupt: chunk " + std::to_string(seq) +
                  " of its blob " + entry.location + " is missing");
  }

  // Inserts one chunk row. The chunk's buffer moves into the statement's parameters and back
  // (whatever happens), without a copy: the hasher may still be reading it.
  static void insert_chunk(db::Transaction& tx, const std::string& blob_id, std::int64_t seq,
                           std::string& chunk) {
    db::Params params;
    params.reserve(3);
    params.emplace_back(blob_id);
    params.emplace_back(seq);
    params.emplace_back(db::Blob{std::move(chunk)});
    const auto give_back = [&] { chunk = std::move(std::get<db::Blob>(params[2]).bytes); };
    try {
      tx.exec("INSERT INTO store_blob_chunks (blob_id, seq, data) VALUES (?, ?, ?)", params);
    } catch (...) {
      give_back();
      throw;
    }
    give_back();
  }

  // Deletes the unreferenced blobs that match `condition` (one `?`, bound to `cutoff`).
  std::size_t collect(const std::string& condition, std::int64_t cutoff) {
    const db::Rows rows = with_database("store: collect garbage", [&] {
      return database_.query(
          "SELECT blob_id FROM store_blobs b WHERE " + condition +
              " AND NOT EXISTS (SELECT 1 FROM store_files f WHERE f.backend = ? AND "
              "f.location = b.blob_id)",
          {cutoff, std::string(kBlobBackend)});
    });
    std::size_t removed = 0;
    for (const db::Row& row : rows) removed += delete_blob(row.text(0)) ? 1 : 0;
    return removed;
  }

  // Deletes a blob unless a catalog row names it: first its row (from then on it is gone for
  // every reader), then its chunks in batches.
  bool delete_blob(const std::string& blob_id) {
    bool deleted = false;
    with_database("store: delete blob " + blob_id, [&] {
      database_.transaction([&](db::Transaction& tx) {
        const bool referenced =
            !tx.query("SELECT 1 FROM store_files WHERE backend = ? AND location = ?",
                      {std::string(kBlobBackend), blob_id})
                 .empty();
        if (!referenced) {
          deleted = tx.exec("DELETE FROM store_blobs WHERE blob_id = ?", {blob_id}) > 0;
        }
      });
    });
    if (deleted) delete_chunks(blob_id);
    return deleted;
  }

  // A few chunks per transaction: deleting a large blob at once would hold the write lock (and
  // stall other nodes' lease renewals) for as long as the database takes to free it.
  void delete_chunks(const std::string& blob_id) {
    for (std::int64_t deleted = 1; deleted > 0;) {
      with_database("store: delete blob " + blob_id, [&] {
        database_.transaction([&](db::Transaction& tx) {
          deleted = tx.exec(
              "DELETE FROM store_blob_chunks WHERE blob_id = ? AND seq IN "
              "(SELECT seq FROM store_blob_chunks WHERE blob_id = ? ORDER BY seq LIMIT ?)",
              {blob_id, blob_id, static_cast<std::int64_t>(kDeleteChunks)});
        });
      });
    }
  }

  // Removes the blob of a put that failed, unless the catalog names it after all (a commit that
  // failed to report success); when that cannot be told, collect_garbage() decides later.
  void discard(const std::string& blob_id) {
    try {
      delete_blob(blob_id);
    } catch (const std::exception& error) {
      log_left_for_gc("blob " + blob_id, error);
    }
  }

  // After a put or remove committed: deletes blobs released longer ago than the grace period,
  // so a store whose files are replaced often does not grow until the next promotion.
  void collect_released() {
    try {
      const std::int64_t cutoff =
          database_.now_ms() -
          std::chrono::duration_cast<std::chrono::milliseconds>(kReleasedGrace).count();
      collect("released_at_ms IS NOT NULL AND released_at_ms <= ?", cutoff);
    } catch (const std::exception& error) {
      log_left_for_gc("released blobs", error);
    }
  }

  db::Database& database_;
  Catalog catalog_;
};

}  // namespace

std::unique_ptr<FileStore> open_blob_store(db::Database& database) {
  return std::make_unique<BlobStore>(database);
}

}  // namespace emsnode::store
