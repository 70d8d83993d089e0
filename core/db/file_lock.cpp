#include "db/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace emsnode::db {
namespace {

// The open lock file, closed again unless ownership passes to a FileLock. A symbolic link in its
// place is refused (O_NOFOLLOW): whoever planted it would have the node lock, or create, a file
// of their choosing.
class OpenFile {
 public:
  explicit OpenFile(const std::string& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600)) {
    if (fd_ < 0 && errno == ELOOP) {
      throw std::system_error(
          errno, std::generic_category(),
          "cannot open " + path +
              ": it is a symbolic link (remove it; a lock file is a plain file)");
    }
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

std::filesystem::path runtime_lock_dir(const std::filesystem::path& fallback) {
  std::filesystem::path dir;
  if (const char* runtime = std::getenv("RUNTIME_DIRECTORY"); runtime && *runtime) {
    dir = runtime;
  } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    dir = std::filesystem::path(xdg) / "emsnode";
  } else if (::geteuid() == 0) {
    dir = "/run/emsnode";
  } else {
    dir = fallback;
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::system_error(errno, std::generic_category(), "cannot create " + dir.string());
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    throw std::system_error(errno, std::generic_category(), "cannot inspect " + dir.string());
  }
  const auto refuse = [&](const std::string& why) {
    throw std::runtime_error("lock folder " + dir.string() + ": " + why);
  };
  if (S_ISLNK(st.st_mode)) refuse("is a symbolic link (remove it)");
  if (!S_ISDIR(st.st_mode)) refuse("is not a folder");
  if (st.st_uid != ::geteuid()) refuse("belongs to another user (remove it or run as its owner)");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) refuse("others may write to it (chmod go-w)");
  return dir;
}

}  // namespace emsnode::db
