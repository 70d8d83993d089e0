#include "db/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace emsnode::db {
namespace {

// The open lock file, closed again unless ownership passes to a FileLock.
class OpenFile {
 public:
  explicit OpenFile(const std::string& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + path);
  }
  ~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

std::optional<FileLock> FileLock::try_lock(const std::string& path) {
  OpenFile file(path);
  while (::flock(file.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return std::nullopt;
    if (errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "cannot lock " + path);
  }
  return FileLock(path, file.release());
}

FileLock FileLock::lock(const std::string& path) {
  OpenFile file(path);
  while (::flock(file.get(), LOCK_EX) != 0) {
    if (errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "cannot lock " + path);
  }
  return FileLock(path, file.release());
}

FileLock::FileLock(FileLock&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    unlock();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  unlock();
}

void FileLock::unlock() noexcept {
  // Closing the only descriptor of the open file description releases the lock.
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

std::string lock_path(const std::string& db_path, std::string_view suffix) {
  if (suffix.empty() || suffix.find('/') != std::string_view::npos) {
    throw std::invalid_argument("lock file suffix \"" + std::string(suffix) +
                                "\" must be a non-empty file name part without '/'");
  }
  return db_path + "." + std::string(suffix);
}

}  // namespace emsnode::db
