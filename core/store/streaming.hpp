// How content moves through a put or a get: from a Source, in bounded chunks, to a Sink, with its
// SHA-256 computed beside the I/O.
//
// SHA-256 is the slowest step of a transfer between files (about 1.4 GB/s on one core with the
// SHA extensions, less than the page cache or a local disk move), and one stream cannot be hashed
// in parallel. The hashing therefore runs on a worker thread while the calling thread reads the
// next chunk and writes the previous one, so a transfer takes about as long as the slower of the
// two instead of their sum. Memory stays at a few chunks whatever the file's size.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <istream>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "store/crypto.hpp"

namespace emsnode::store {

// Where a put reads its content.
class Source {
 public:
  virtual ~Source() = default;
  // Fills `data` with up to `size` bytes; fewer only at the end of the content (0 once it ended).
  // Throws StoreError when the input fails.
  virtual std::size_t read(char* data, std::size_t size) = 0;
  // True when a read only waits for local storage, never for another party (a plugin's
  // callback, a network peer): such a source may be read while the database's write lock is held.
  virtual bool local() const { return false; }
};

// Where a get writes its content.
class Sink {
 public:
  virtual ~Sink() = default;
  // Writes all of `data`; throws StoreError (NoSpace for a full disk) when it cannot.
  virtual void write(const char* data, std::size_t size) = 0;
};

// A caller's stream. `what` names the operation in errors ("store: put KEY").
class IstreamSource final : public Source {
 public:
  IstreamSource(std::istream& in, std::string what) : in_(in), what_(std::move(what)) {}
  std::size_t read(char* data, std::size_t size) override;

 private:
  std::istream& in_;
  std::string what_;
  bool ended_ = false;
};

class OstreamSink final : public Sink {
 public:
  OstreamSink(std::ostream& out, std::string what) : out_(out), what_(std::move(what)) {}
  void write(const char* data, std::size_t size) override;

 private:
  std::ostream& out_;
  std::string what_;
};

// A file the caller named (put_file): read with read(2) straight into the chunk, with the kernel
// told the reads are sequential so that its read-ahead runs further ahead. local() unless the file
// is on a network or FUSE filesystem, whose server may keep a read waiting.
class FileSource final : public Source {
 public:
  FileSource(int fd, std::filesystem::path path);
  std::size_t read(char* data, std::size_t size) override;
  bool local() const override { return local_; }

 private:
  int fd_;
  std::filesystem::path path_;
  bool local_ = false;
};

// A local file being written (get_to_file's temporary file). Errors are the local file's, without
// the hints about network shares.
class FileSink final : public Sink {
 public:
  FileSink(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void write(const char* data, std::size_t size) override;

 private:
  int fd_;
  std::filesystem::path path_;
  std::uint64_t written_ = 0;
};

// Throws the store error for `error` (an errno value) while doing `action` on a local file (one
// the caller named, not on the share): NoSpace for a full disk, else StoreError, without the
// hints about mounts that throw_io() gives.
[[noreturn]] void throw_local(int error, const std::filesystem::path& path,
                              const std::string& action);

// Starts writing back to storage what was written to `fd` in [offset, offset + size), without
// waiting for it, so that the fsync that makes the file durable finds little left to do and the
// disk works while the transfer goes on. A hint only: a filesystem that cannot do it (a FUSE or
// network share) ignores it, and a write error it would meet is reported by that fsync.
void start_writeback(int fd, std::uint64_t offset, std::uint64_t size);

// A SHA-256 computed on a worker thread: update() queues a view of the caller's bytes and returns
// at once; the worker hashes the views in order. The caller keeps each view's bytes unchanged
// until wait() for its ticket (or hex()) returned. The worker starts with the second view, so
// that content of one chunk costs no thread.
//
// THREAD: one calling thread; the worker only reads the bytes it was handed.
class BackgroundSha256 {
 public:
  BackgroundSha256() = default;
  // Stops and joins the worker (abandoning what is not hashed yet): after it, the caller's bytes
  // are no longer read.
  ~BackgroundSha256();
  BackgroundSha256(const BackgroundSha256&) = delete;
  BackgroundSha256& operator=(const BackgroundSha256&) = delete;

  // Queues `data`; returns its ticket, counting from 1.
  std::uint64_t update(const char* data, std::size_t size);
  // Blocks until the view with `ticket` (and all before it) is hashed; rethrows a failure.
  void wait(std::uint64_t ticket);
  // Waits for everything queued; the lowercase hex digest. Ends the computation.
  std::string hex();

 private:
  struct View {
    const char* data;
    std::size_t size;
  };
  void run();
  // Hashes the oldest queued view in the calling thread; only while there is no worker.
  void hash_front();

  Sha256 sha_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<View> queue_;
  std::uint64_t queued_ = 0;  // views given to update()
  std::uint64_t hashed_ = 0;  // views hashed
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::thread worker_;  // started by the second update()
};

// A ring of `depth` buffers of `chunk_bytes` each whose chunks are hashed by a BackgroundSha256.
// The calling thread fills a buffer (next()), hands it to the hasher (hash()) and may go on
// using it (writing it out) until it comes round again, which next() waits for: the hasher never
// falls more than depth - 1 chunks behind. A buffer is a std::string so that its bytes can move
// into a database statement's parameters and back without a copy; its data() must stay where it
// was handed over until it comes round again.
class HashedChunks {
 public:
  HashedChunks(std::size_t chunk_bytes, std::size_t depth);

  // The buffer to fill next, `chunk_bytes` long: one the hasher is done with.
  std::string& next();
  // Hands the first `size` bytes of the buffer next() returned to the hasher.
  void hash(std::size_t size);
  std::string hex() { return sha_.hex(); }

 private:
  const std::size_t chunk_bytes_;
  std::vector<std::string> buffers_;
  std::vector<std::uint64_t> tickets_;  // per buffer: its last chunk's, 0 for none
  std::uint64_t filled_ = 0;            // chunks handed to hash()
  BackgroundSha256 sha_;                // last: stopped before the buffers go
};

}  // namespace emsnode::store
