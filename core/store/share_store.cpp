// The share backend: content in files on a mounted network share, published through the catalog.
//
// Layout on the share:
//   .emsnode-store       marker: the store id recorded in store_state; without it the directory is
//                        taken for an unmounted mount point and nothing is read or written
//   .emsnode-changes     replaced by every put and remove: the wake-up watchers poll
//   objects/<aa>/<id>    content; a published object is never written again, so a reader sees
//                        one whole version (a replace writes a new object and repoints the row)
//   tmp/<id>.part        a put in progress; renamed into objects/ once complete and on disk
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "db/database.hpp"
#include "store/backends.hpp"
#include "store/catalog.hpp"
#include "store/crypto.hpp"
#include "store/posix_io.hpp"
#include "store/streaming.hpp"

namespace emsnode::store {
namespace {

namespace fs = std::filesystem;

// Removes a leftover file; a failure is logged, never thrown: it runs while another error is
// being reported, or after a commit that already succeeded.
void remove_leftover(const fs::path& path) {
  try {
    remove_file(path);
  } catch (const std::exception& error) {
    log_left_for_gc(path.string(), error);
  }
}

// A file being written into tmp/ on the share: removed when destroyed unless it was renamed into
// place, so every failure of a put cleans up after itself.
class TempFile {
 public:
  explicit TempFile(fs::path path)
      : path_(std::move(path)),
        fd_(open_file(path_, O_WRONLY | O_CREAT | O_EXCL, 0644, "create a temporary file")) {}
  ~TempFile() {
    if (renamed_) return;
    fd_ = Fd();
    remove_leftover(path_);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  // Writes and at once starts the writeback of what was written, so that close(durable) finds
  // little left to flush.
  void write(const char* data, std::size_t size) {
    write_all(fd_.get(), data, size, path_);
    start_writeback(fd_.get(), written_, size);
    written_ += size;
  }
  // Closes the file, first waiting until its content is on stable storage when `durable`.
  void close(bool durable) {
    if (durable) sync_file(fd_.get(), path_);
    fd_.close(path_);
  }
  void rename_to(const fs::path& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      throw_io(errno, target, "move " + path_.string() + " into place");
    }
    renamed_ = true;
  }

 private:
  fs::path path_;
  Fd fd_;
  std::uint64_t written_ = 0;
  bool renamed_ = false;
};

bool older_than(const struct stat& info, std::chrono::system_clock::time_point cutoff) {
  const auto modified = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(info.st_mtim.tv_sec) +
          std::chrono::nanoseconds(info.st_mtim.tv_nsec)));
  return modified <= cutoff;
}

class ShareStore final : public FileStore {
 public:
  ShareStore(db::Database& database, fs::path root)
      : database_(database),
        catalog_(database, kShareBackend),
        root_(std::move(root)),
        marker_(root_ / ".emsnode-store"),
        changes_file_(root_ / ".emsnode-changes"),
        objects_(root_ / "objects"),
        tmp_(root_ / "tmp") {
    struct stat info {};
    if (::stat(root_.c_str(), &info) != 0) throw_io(errno, root_, "open the share directory");
    if (!S_ISDIR(info.st_mode)) throw StoreError(root_.string() + ": the share is not a directory");
    store_id_ = with_database("store: open the share " + root_.string(), [&] {
      const db::Row row = database_.query("SELECT store_id FROM store_state WHERE id = 1").front();
      return row.is_null(0) ? std::string() : row.text(0);
    });
    if (store_id_.empty()) initialise();
    // Before anything is created: an empty mount point must stay empty.
    check_marker();
    make_directory(objects_);
    make_directory(tmp_);
  }

  std::string_view backend() const override { return kShareBackend; }
  const fs::path& changes_file() const { return changes_file_; }

  FileInfo put_from(std::string_view key, Source& in, const Writer& writer) override {
    check_key(key);
    check_marker();
    const std::string id = random_id();
    const std::string shard = id.substr(0, 2);
    const std::string location = "objects/" + shard + "/" + id;
    std::string sha256;
    std::uint64_t size = 0;
    {
      TempFile temp(tmp_ / (id + ".part"));
      // The chunk written is the chunk hashed, so the published checksum is that of the object.
      HashedChunks chunks(kChunkBytes, kChunksInFlight);
      for (;;) {
        std::string& chunk = chunks.next();
        const std::size_t got = in.read(chunk.data(), kChunkBytes);
        if (got == 0) break;
        chunks.hash(got);
        temp.write(chunk.data(), got);
        size += got;
      }
      sha256 = chunks.hex();
      temp.close(/*durable=*/true);
      if (make_directory(objects_ / shard)) sync_directory(objects_);
      temp.rename_to(root_ / location);
    }
    Catalog::Published published;
    try {
      sync_directory(objects_ / shard);
      published = catalog_.publish(writer, key, size, sha256, location);
    } catch (...) {
      discard(location);
      throw;
    }
    if (published.replaced && published.replaced->backend == kShareBackend) {
      remove_leftover(root_ / published.replaced->location);
    }
    announce(published.change_seq);
    return published.info;
  }

  FileInfo get_into(std::string_view key, Sink& out) override {
    check_key(key);
    check_marker();
    // A replace unlinks the old object right after its commit: a reader that read the old row
    // but had not opened the object yet reads the row again.
    for (int attempt = 0;; ++attempt) {
      const Entry entry = find(key);
      const fs::path path = root_ / entry.location;
      if (auto fd = open_existing(path, O_RDONLY, "open")) {
        stream(*fd, entry, path, out);
        return entry.info;
      }
      const Entry again = find(key);
      if (again.location == entry.location || attempt == 3) {
        throw Corrupt("store: " + std::string(key) + " is corrupt: its object " + path.string() +
                      " is missing from the share");
      }
    }
  }

  std::optional<FileInfo> stat(std::string_view key) override {
    check_key(key);
    check_marker();
    const auto entry = catalog_.find(key);
    if (!entry) return std::nullopt;
    return entry->info;
  }

  std::vector<FileInfo> list(std::string_view prefix) override {
    check_marker();
    return catalog_.list(prefix);
  }

  void remove(std::string_view key, const Writer& writer) override {
    check_key(key);
    check_marker();
    const Catalog::Removed removed = catalog_.remove(writer, key);
    remove_leftover(root_ / removed.entry.location);
    announce(removed.change_seq);
  }

  std::size_t collect_garbage(std::chrono::milliseconds min_age) override {
    check_marker();
    // Ages are judged on this node's clock against the share's modification times: min_age must
    // be far above the clock skew between the nodes and the file server.
    const auto cutoff = std::chrono::system_clock::now() - min_age;
    // A file that vanished meanwhile (another node collecting) is simply not a candidate.
    const auto old_enough = [&](const fs::path& path) {
      struct stat info {};
      return ::lstat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && older_than(info, cutoff);
    };
    const auto is_directory = [](const fs::path& path) {
      struct stat info {};
      return ::lstat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
    };
    std::size_t removed = 0;
    for (const std::string& name : list_directory(tmp_)) {
      if (old_enough(tmp_ / name) && remove_file(tmp_ / name)) ++removed;
    }
    // The objects are listed before the catalog is read: an object published meanwhile is then in
    // the catalog read, and one renamed into place later is too young to be a candidate.
    std::vector<std::string> candidates;
    for (const std::string& shard : list_directory(objects_)) {
      if (!is_directory(objects_ / shard)) continue;
      for (const std::string& name : list_directory(objects_ / shard)) {
        if (old_enough(objects_ / shard / name))
          candidates.push_back("objects/" + shard + "/" + name);
      }
    }
    const auto referenced = catalog_.locations();
    for (const std::string& location : candidates) {
      if (referenced.count(location) == 0 && remove_file(root_ / location)) ++removed;
    }
    store_log().info("store.garbage_collected", {{"backend", std::string(kShareBackend)},
                                                 {"share", root_.string()},
                                                 {"removed", std::to_string(removed)}});
    return removed;
  }

 private:
  Entry find(std::string_view key) {
    auto entry = catalog_.find(key);
    if (!entry) throw NotFound("store: no such key: " + std::string(key));
    return std::move(*entry);
  }

  // Streams the object to `out`, verifying it against the catalog's size and SHA-256.
  static void stream(const Fd& fd, const Entry& entry, const fs::path& path, Sink& out) {
    const std::string& key = entry.info.key;
    // Advice only: without it the reads are merely less far ahead of the transfer.
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    HashedChunks chunks(kChunkBytes, kChunksInFlight);
    std::uint64_t size = 0;
    for (;;) {
      std::string& chunk = chunks.next();
      const std::size_t got = read_full(fd.get(), chunk.data(), kChunkBytes, path);
      size += got;
      if (size > entry.info.size) break;  // reported below, before passing on extra bytes
      chunks.hash(got);
      out.write(chunk.data(), got);
      if (got < kChunkBytes) break;
    }
    if (size != entry.info.size) {
      throw Corrupt("store: " + key + " is corrupt: its object " + path.string() + " has " +
                    (size > entry.info.size ? "more than " : "") + std::to_string(size) +
                    " bytes, the catalog says " + std::to_string(entry.info.size));
    }
    const std::string digest = chunks.hex();
    if (digest != entry.info.sha256) {
      throw Corrupt("store: " + key + " is corrupt: the SHA-256 of its object " + path.string() +
                    " is " + digest + ", the catalog says " + entry.info.sha256);
    }
  }

  std::optional<std::string> read_marker() const {
    auto fd = open_existing(marker_, O_RDONLY, "read the store marker");
    if (!fd) return std::nullopt;
    char buffer[128];
    const std::size_t got = read_full(fd->get(), buffer, sizeof buffer, marker_);
    std::string content(buffer, got);
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
      content.pop_back();
    }
    return content;
  }

  // Before every operation: a share that is not mounted shows the empty mount point below it,
  // and writing there would hide files from every other node.
  void check_marker() const {
    const auto content = read_marker();
    if (!content) {
      throw Unavailable(root_.string() +
                        ": not the emsnode share (marker missing): is the network share mounted?");
    }
    if (*content != store_id_) {
      throw Unavailable(root_.string() + ": not the emsnode share of this cluster (its marker " +
                        marker_.string() + " names store " + *content + ", the database store " +
                        store_id_ + "): is the right network share mounted?");
    }
  }

  // The first open of a store: records a new store id in the database and in the marker, in one
  // database transaction, so that nodes opening at once agree on one id.
  void initialise() {
    with_database("store: initialise the share " + root_.string(), [&] {
      database_.transaction([&](db::Transaction& tx) {
        // Lock the row first: where transactions do not exclude each other from their start
        // (PostgreSQL), a node must see the id a peer committed meanwhile, not the empty row of
        // its own snapshot, before it looks at the marker.
        tx.exec("UPDATE store_state SET store_id = store_id WHERE id = 1");
        const db::Row row = tx.query("SELECT store_id FROM store_state WHERE id = 1").front();
        if (!row.is_null(0)) {
          store_id_ = row.text(0);  // another node was first
          return;
        }
        if (const auto other = read_marker()) {
          throw StoreError(marker_.string() + ": this share belongs to another emsnode store (" +
                           *other +
                           ") while this database has none: mount the share of this cluster, or "
                           "remove the marker to give the share to this database");
        }
        make_directory(objects_);
        make_directory(tmp_);
        const std::string id = random_id();
        const std::string content = id + "\n";
        {
          TempFile temp(tmp_ / (id + ".marker"));
          temp.write(content.data(), content.size());
          temp.close(/*durable=*/true);
          temp.rename_to(marker_);
        }
        sync_directory(root_);
        tx.exec("UPDATE store_state SET store_id = ? WHERE id = 1", {id});
        store_id_ = id;
      });
    });
  }

  // Removes the object of a put that failed, unless the catalog names it after all (a commit
  // that failed to report success); when that cannot be told, collect_garbage() decides later.
  void discard(const std::string& location) {
    try {
      if (!catalog_.references(location)) remove_file(root_ / location);
    } catch (const std::exception& error) {
      log_left_for_gc((root_ / location).string(), error);
    }
  }

  // Replaces the changes file (a new inode, so that a stat-based poll sees it even within one
  // timestamp tick). A wake-up only: watchers also read the catalog on a slower timer, so a
  // failure here is logged and the put or remove still succeeds.
  void announce(std::int64_t change_seq) {
    try {
      const std::string content = std::to_string(change_seq) + "\n";
      TempFile temp(tmp_ / (random_id() + ".changes"));
      temp.write(content.data(), content.size());
      temp.close(/*durable=*/false);
      temp.rename_to(changes_file_);
    } catch (const std::exception& error) {
      store_log().warning("store.announce_failed",
                          {{"file", changes_file_.string()}, {"error", error.what()}});
    }
  }

  db::Database& database_;
  Catalog catalog_;
  const fs::path root_;
  const fs::path marker_;
  const fs::path changes_file_;
  const fs::path objects_;
  const fs::path tmp_;
  std::string store_id_;
};

}  // namespace

std::unique_ptr<FileStore> open_share_store(db::Database& database, const std::string& share_dir) {
  return std::make_unique<ShareStore>(database, share_dir);
}

const std::filesystem::path* changes_file_of(const FileStore& store) {
  const auto* share = dynamic_cast<const ShareStore*>(&store);
  return share ? &share->changes_file() : nullptr;
}

}  // namespace emsnode::store
