// Copying a store into another (`emsnode store migrate --to blob|share`): each file streams from a
// reader thread (the source's get, which verifies the source's checksum) through a bounded
// in-memory pipe into the target's put, in the calling thread. The target sees the end of the
// input only once the source has verified the whole file, so a corrupt source never gets
// published; memory stays at the pipe's capacity whatever the file's size.
//
// When both stores share one database they share one catalog, so a copied file's row moves to
// the target's backend; the source's content becomes garbage for its collect_garbage().
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <streambuf>
#include <thread>
#include <vector>

#include "store/backends.hpp"

namespace emsnode::store {
namespace {

constexpr std::size_t kPipeBytes = 4 * kChunkBytes;

// A bounded byte queue between one writer thread and one reader thread.
class Pipe {
 public:
  // Blocks while the pipe is full; false when the reader has gone.
  bool write(const char* data, std::size_t size) {
    std::unique_lock lock(mutex_);
    while (size > 0) {
      changed_.wait(lock, [&] { return reader_closed_ || used_ < buffer_.size(); });
      if (reader_closed_) return false;
      const std::size_t tail = (head_ + used_) % buffer_.size();
      const std::size_t n = std::min({size, buffer_.size() - used_, buffer_.size() - tail});
      std::memcpy(buffer_.data() + tail, data, n);
      used_ += n;
      data += n;
      size -= n;
      changed_.notify_all();
    }
    return true;
  }

  // The writer is done: `complete` says whether the data is whole (the reader then sees its end)
  // or not (the reader then fails).
  void close_writer(bool complete) {
    std::lock_guard lock(mutex_);
    writer_closed_ = true;
    complete_ = complete;
    changed_.notify_all();
  }

  // Blocks until data is there; 0 at the end of complete data. Throws when the writer failed.
  std::size_t read(char* data, std::size_t size) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return used_ > 0 || writer_closed_; });
    if (used_ == 0) {
      if (!complete_) throw StoreError("store: migrate: reading the source failed");
      return 0;
    }
    const std::size_t n = std::min({size, used_, buffer_.size() - head_});
    std::memcpy(data, buffer_.data() + head_, n);
    head_ = (head_ + n) % buffer_.size();
    used_ -= n;
    changed_.notify_all();
    return n;
  }

  // The reader is done (its put returned or failed); the writer's further writes fail.
  void close_reader() {
    std::lock_guard lock(mutex_);
    reader_closed_before_end_ = !writer_closed_;
    reader_closed_ = true;
    changed_.notify_all();
  }

  // The target gave up first, so the source's failure (a closed pipe) is only its consequence.
  bool reader_closed_before_end() const {
    std::lock_guard lock(mutex_);
    return reader_closed_before_end_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<char> buffer_ = std::vector<char>(kPipeBytes);
  std::size_t head_ = 0;
  std::size_t used_ = 0;
  bool writer_closed_ = false;
  bool complete_ = false;
  bool reader_closed_ = false;
  bool reader_closed_before_end_ = false;
};

// The source's get writes into the pipe through this.
class PipeWriteBuffer final : public std::streambuf {
 public:
  explicit PipeWriteBuffer(Pipe& pipe) : pipe_(pipe) {}

 protected:
  std::streamsize xsputn(const char* data, std::streamsize size) override {
    return pipe_.write(data, static_cast<std::size_t>(size)) ? size : 0;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char byte = traits_type::to_char_type(c);
    return pipe_.write(&byte, 1) ? c : traits_type::eof();
  }

 private:
  Pipe& pipe_;
};

// The target's put reads the pipe through this. A failed source makes underflow() throw, which
// the istream turns into badbit: the put then fails instead of publishing a truncated file.
class PipeReadBuffer final : public std::streambuf {
 public:
  explicit PipeReadBuffer(Pipe& pipe) : pipe_(pipe) {}

 protected:
  int_type underflow() override {
    const std::size_t n = pipe_.read(buffer_.data(), buffer_.size());
    if (n == 0) return traits_type::eof();
    setg(buffer_.data(), buffer_.data(), buffer_.data() + n);
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  Pipe& pipe_;
  std::vector<char> buffer_ = std::vector<char>(64 * 1024);
};

// Copies one file; returns what the source served and what the target published.
std::pair<FileInfo, FileInfo> copy(FileStore& from, FileStore& to, const std::string& key,
                                   const Writer& writer) {
  Pipe pipe;
  FileInfo source;
  std::exception_ptr source_error;
  std::thread reader([&] {
    PipeWriteBuffer buffer(pipe);
    std::ostream out(&buffer);
    try {
      source = from.get(key, out);
      pipe.close_writer(true);
    } catch (...) {
      // Handed to the calling thread, which rethrows it.
      source_error = std::current_exception();
      pipe.close_writer(false);
    }
  });
  FileInfo target;
  std::exception_ptr target_error;
  try {
    PipeReadBuffer buffer(pipe);
    std::istream in(&buffer);
    target = to.put(key, in, writer);
  } catch (...) {
    target_error = std::current_exception();  // rethrown below, once the reader has stopped
  }
  pipe.close_reader();
  reader.join();
  // Report the cause, not its echo on the other side of the pipe.
  if (target_error && (pipe.reader_closed_before_end() || !source_error)) {
    std::rethrow_exception(target_error);
  }
  if (source_error) std::rethrow_exception(source_error);
  return {source, target};
}

}  // namespace

MigrationReport migrate(FileStore& from, FileStore& to, const Writer& writer,
                        const std::function<void(const FileInfo&)>& on_file) {
  MigrationReport report;
  for (const FileInfo& file : from.list("")) {
    if (const auto existing = to.stat(file.key); existing && existing->sha256 == file.sha256) {
      ++report.skipped;
      if (on_file) on_file(*existing);
      continue;
    }
    const auto [source, target] = copy(from, to, file.key, writer);
    // The target hashed what it received; the source hashed and verified what it sent.
    if (target.sha256 != source.sha256 || target.size != source.size) {
      throw Corrupt("store: migrate " + file.key + ": the copy in " + std::string(to.backend()) +
                    " has SHA-256 " + target.sha256 + " and " + std::to_string(target.size) +
                    " bytes, the source " + source.sha256 + " and " + std::to_string(source.size));
    }
    ++report.copied;
    report.bytes += target.size;
    if (on_file) on_file(target);
  }
  store_log().info("store.migrated", {{"from", std::string(from.backend())},
                                      {"to", std::string(to.backend())},
                                      {"copied", std::to_string(report.copied)},
                                      {"skipped", std::to_string(report.skipped)},
                                      {"bytes", std::to_string(report.bytes)}});
  return report;
}

}  // namespace emsnode::store
