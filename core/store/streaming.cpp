#include "store/streaming.hpp"

#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "db/sqlite_database.hpp"
#include "store/file_store.hpp"

namespace emsnode::store {

void throw_local(int error, const std::filesystem::path& path, const std::string& action) {
  const std::string what = path.string() + ": cannot " + action + ": " + std::strerror(error);
  if (error == ENOSPC || error == EDQUOT) throw NoSpace(what);
  throw StoreError(what);
}

std::size_t IstreamSource::read(char* data, std::size_t size) {
  if (ended_) return 0;
  in_.read(data, static_cast<std::streamsize>(size));
  const auto got = static_cast<std::size_t>(in_.gcount());
  if (in_.bad()) throw StoreError(what_ + ": reading the input failed");
  ended_ = !in_;
  return got;
}

void OstreamSink::write(const char* data, std::size_t size) {
  out_.write(data, static_cast<std::streamsize>(size));
  if (!out_) throw StoreError(what_ + ": writing the output failed");
}

FileSource::FileSource(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {
  struct statfs filesystem {};
  local_ = ::fstatfs(fd_, &filesystem) == 0 &&
           !db::network_filesystem_name(static_cast<std::int64_t>(filesystem.f_type));
  // Advice only: without it the reads are merely less far ahead of the transfer.
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

std::size_t FileSource::read(char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd_, data + done, size - done);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_local(errno, path_, "read");
    }
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void FileSink::write(const char* data, std::size_t size) {
  const std::uint64_t offset = written_;
  for (std::size_t left = size; left > 0;) {
    const ssize_t n = ::write(fd_, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_local(errno, path_, "write");
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  written_ += size;
  start_writeback(fd_, offset, size);
}

void start_writeback(int fd, std::uint64_t offset, std::uint64_t size) {
  // The result is deliberately not checked (see the header): EINVAL or ESPIPE from a filesystem
  // without it changes nothing, and an I/O error stays recorded for the file's fsync.
  static_cast<void>(::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(size),
                                      SYNC_FILE_RANGE_WRITE));
}

BackgroundSha256::~BackgroundSha256() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

std::uint64_t BackgroundSha256::update(const char* data, std::size_t size) {
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({data, size});
    ticket = ++queued_;
    // The worker starts with the second view: content of one chunk is hashed in the calling
    // thread, which then waits for no thread to start, be scheduled and hand the digest back.
    if (!worker_.joinable() && queue_.size() > 1) worker_ = std::thread([this] { run(); });
  }
  changed_.notify_all();
  return ticket;
}

void BackgroundSha256::wait(std::uint64_t ticket) {
  std::unique_lock lock(mutex_);
  if (!worker_.joinable()) {
    while (hashed_ < ticket) hash_front();
    return;
  }
  changed_.wait(lock, [&] { return failure_ || hashed_ >= ticket; });
  if (failure_) std::rethrow_exception(failure_);
}

std::string BackgroundSha256::hex() {
  wait(queued_);
  return sha_.hex();
}

void BackgroundSha256::hash_front() {
  sha_.update(queue_.front().data, queue_.front().size);
  queue_.pop_front();
  ++hashed_;
}

void BackgroundSha256::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    const View view = queue_.front();
    lock.unlock();
    try {
      sha_.update(view.data, view.size);
    } catch (...) {
      lock.lock();
      failure_ = std::current_exception();
      changed_.notify_all();
      return;
    }
    lock.lock();
    queue_.pop_front();
    ++hashed_;
    changed_.notify_all();
  }
}

HashedChunks::HashedChunks(std::size_t chunk_bytes, std::size_t depth)
    : chunk_bytes_(chunk_bytes), buffers_(depth), tickets_(depth) {}

std::string& HashedChunks::next() {
  const std::size_t slot = filled_ % buffers_.size();
  if (tickets_[slot] != 0) sha_.wait(tickets_[slot]);
  std::string& buffer = buffers_[slot];
  buffer.resize(chunk_bytes_);
  return buffer;
}

void HashedChunks::hash(std::size_t size) {
  const std::size_t slot = filled_ % buffers_.size();
  tickets_[slot] = sha_.update(buffers_[slot].data(), size);
  ++filled_;
}

}  // namespace emsnode::store
