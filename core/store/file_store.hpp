// The shared file store: files every node must see (installers, policy files, the license file,
// uploaded content) on storage that survives the loss of any node. One API, two backends:
//   share - a directory on a mounted network share (the seeds' W:\; an SMB or NFS mount)
//   blob  - a FILESTREAM-like table of chunks in the shared database
//
// Both publish a file through one catalog row in the shared database (key, size, SHA-256,
// modified time, writer node and epoch), written in a fenced transaction: a put becomes visible
// only when complete and verified, and a put by a node that lost the lease writes nothing
// visible. Content is streamed in bounded chunks; no operation holds a whole file in memory.
// A crash in the middle of a put leaves only garbage that collect_garbage() (run by each new
// active) removes.
//
// Errors: the classes below, each naming the key or path and what to check. Two database errors
// pass through unchanged, because callers already act on their type: db::FencedError (the writer
// lost the lease; nothing was published) and db::DbError for other database failures (a busy
// timeout). A database that cannot be reached becomes Unavailable.
//
// Both backends keep their catalog in the same table, keyed by key: a store sees the files whose
// content it holds, and a put replaces the key's row whichever backend held it, which is how
// migrate() moves files between two stores on one database.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace emsnode::db {
class Database;
}

namespace emsnode::store {

class Source;  // store/streaming.hpp
class Sink;

// A store failure an operator can act on: what, which key or path, and why.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class NotFound : public StoreError {  // no such key
 public:
  using StoreError::StoreError;
};
class InvalidKey : public StoreError {  // "..", absolute, NUL, empty segment, too long, ...
 public:
  using StoreError::StoreError;
};
class Corrupt : public StoreError {  // content does not match its catalog size or SHA-256
 public:
  using StoreError::StoreError;
};
class Unavailable : public StoreError {  // share not mounted or unreachable, database down
 public:
  using StoreError::StoreError;
};
class NoSpace : public StoreError {  // the share's filesystem (or the database) is full
 public:
  using StoreError::StoreError;
};

// Throws InvalidKey unless `key` is a relative path of 1..1024 bytes made of segments that are
// not empty, "." or "..", with no NUL, no backslash, no control character and no leading '/'.
// It must also be well-formed UTF-8: keys are stored as TEXT, which PostgreSQL refuses otherwise.
void check_key(std::string_view key);

struct FileInfo {
  std::string key;
  std::uint64_t size = 0;
  std::string sha256;               // lowercase hex
  std::int64_t modified_at_ms = 0;  // the database's clock when it was published
  std::string writer_node;
  std::uint64_t epoch = 0;
};

// Who writes: the node and the epoch its writes are fenced with.
struct Writer {
  std::string node_id;
  std::uint64_t epoch = 0;
};

// A change seen by watch().
struct Change {
  enum class Kind { put, removed } kind = Kind::put;
  FileInfo file;  // for `removed`, only `key` is set
};

// A store may be used from several threads at once; it keeps no state between calls beyond what
// it was opened with.
class FileStore {
 public:
  virtual ~FileStore() = default;

  virtual std::string_view backend() const = 0;  // "share" or "blob"

  // Streams `in` to `key` and publishes it when complete. Returns what was published.
  FileInfo put(std::string_view key, std::istream& in, const Writer& writer);
  // Streams `key` to `out`, verifying size and SHA-256 as it goes; throws Corrupt (after the
  // last byte at the latest) on a mismatch. Callers that must not pass bad bytes on buffer to a
  // temporary file first: get_to_file() does.
  FileInfo get(std::string_view key, std::ostream& out);
  virtual std::optional<FileInfo> stat(std::string_view key) = 0;
  // Every file whose key starts with `prefix` ("" for all), ordered by key.
  virtual std::vector<FileInfo> list(std::string_view prefix) = 0;
  // Throws NotFound when there is no such key.
  virtual void remove(std::string_view key, const Writer& writer) = 0;
  // Removes what crashed or fenced-out puts left behind (temporary files, orphaned chunks)
  // older than `min_age`. Returns how many items were removed. `min_age` must exceed the longest
  // put still running anywhere (and, for the share, the clock skew between nodes and the file
  // server): younger leftovers may belong to a put in progress.
  virtual std::size_t collect_garbage(std::chrono::milliseconds min_age) = 0;

  // Files from a path; get_to_file writes a temporary file beside `path` and renames it into
  // place only once verified, so a corrupt file never appears at `path`.
  FileInfo put_file(std::string_view key, const std::string& path, const Writer& writer);
  FileInfo get_to_file(std::string_view key, const std::string& path);

 protected:
  // What the backends implement: put() and get() over a stream, and put_file() and get_to_file()
  // over a file descriptor (read and written without a stream's buffer in between).
  virtual FileInfo put_from(std::string_view key, Source& in, const Writer& writer) = 0;
  virtual FileInfo get_into(std::string_view key, Sink& out) = 0;
};

// Opens the share backend on `share_dir` (a mounted network share). The first node to open a
// store records its identity in the database and in a marker file on the share; later opens
// refuse a share without the marker (not mounted: an empty mount point) with Unavailable.
std::unique_ptr<FileStore> open_share_store(db::Database& database, const std::string& share_dir);
// Opens the blob backend in the shared database.
std::unique_ptr<FileStore> open_blob_store(db::Database& database);

// Copies every file of `from` into `to`, verifying each copy's SHA-256 (skipping files `to`
// already has with the same checksum). Reports progress per file.
struct MigrationReport {
  std::size_t copied = 0;
  std::size_t skipped = 0;
  std::uint64_t bytes = 0;
};
MigrationReport migrate(FileStore& from, FileStore& to, const Writer& writer,
                        const std::function<void(const FileInfo&)>& on_file = nullptr);

// Calls `on_change` for each change under `prefix` (byte prefix of the key; "" for all) made
// after watch() returns, by any node, until the returned handle is destroyed. The share backend
// polls a changes file on the share every `interval` (network shares deliver no inotify events;
// libuv's uv_fs_poll) and the catalog when it changed or every 10 intervals; the blob backend polls
// the catalog every `interval`; both report what the catalog says. `on_change` runs on the
// watch's own thread; destroying the handle stops and joins it, so it must not be destroyed from
// `on_change`. A `put` change carries the key's current catalog row (only the key if it is gone).
class Watch {
 public:
  virtual ~Watch() = default;
};
std::unique_ptr<Watch> watch(FileStore& store, db::Database& database, std::string prefix,
                             std::chrono::milliseconds interval,
                             std::function<void(const Change&)> on_change);

}  // namespace emsnode::store
