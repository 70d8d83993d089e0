#include "store/posix_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "store/file_store.hpp"

namespace emsnode::store {

void throw_io(int error, const std::filesystem::path& path, std::string_view action) {
  const std::string what =
      path.string() + ": cannot " + std::string(action) + ": " + std::strerror(error);
  switch (error) {
    // What an unmounted, stale or unreachable network share looks like from here.
    case ENOENT:
    case ENOTDIR:
    case ESTALE:
    case EIO:
    case ENOTCONN:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ETIMEDOUT:
    case ENODEV:
      throw Unavailable(what + ": is the network share mounted and reachable?");
    case EACCES:
    case EPERM:
      throw StoreError(what + ": permission denied for this node's user on the share");
    case ENOSPC:
    case EDQUOT:
      throw NoSpace(what + ": no space left on the share's filesystem (or quota exceeded)");
    default:
      throw StoreError(what);
  }
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd::Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void Fd::close(const std::filesystem::path& path) {
  // Linux releases the descriptor even when close fails, so it is never retried.
  if (::close(std::exchange(fd_, -1)) != 0 && errno != EINTR) throw_io(errno, path, "close");
}

Fd open_file(const std::filesystem::path& path, int flags, mode_t mode, std::string_view action) {
  for (;;) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return Fd(fd);
    if (errno != EINTR) throw_io(errno, path, action);
  }
}

std::optional<Fd> open_existing(const std::filesystem::path& path, int flags,
                                std::string_view action) {
  for (;;) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd >= 0) return Fd(fd);
    if (errno == ENOENT) return std::nullopt;
    if (errno != EINTR) throw_io(errno, path, action);
  }
}

std::vector<std::string> list_directory(const std::filesystem::path& path) {
  struct Close {
    void operator()(DIR* directory) const { ::closedir(directory); }
  };
  const std::unique_ptr<DIR, Close> directory(::opendir(path.c_str()));
  if (!directory) throw_io(errno, path, "list the directory");
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(directory.get());
    if (!entry) {
      if (errno != 0) throw_io(errno, path, "list the directory");
      return names;
    }
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
}

bool remove_file(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw_io(errno, path, "remove");
}

std::size_t read_full(int fd, char* data, std::size_t size, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, data + done, size - done);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_io(errno, path, "read");
    }
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void write_all(int fd, const char* data, std::size_t size, const std::filesystem::path& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_io(errno, path, "write");
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void sync_file(int fd, const std::filesystem::path& path) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) throw_io(errno, path, "flush to stable storage (fsync)");
  }
}

void sync_directory(const std::filesystem::path& path) {
  Fd directory = open_file(path, O_RDONLY | O_DIRECTORY, 0, "open the directory");
  // Some network filesystems cannot fsync a directory (EINVAL): their server commits directory
  // changes itself, so there is nothing more to wait for.
  while (::fsync(directory.get()) != 0) {
    if (errno == EINVAL) break;
    if (errno != EINTR) throw_io(errno, path, "flush the directory (fsync)");
  }
  directory.close(path);
}

bool make_directory(const std::filesystem::path& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return true;
  if (errno == EEXIST) return false;
  throw_io(errno, path, "create the directory");
}

}  // namespace emsnode::store
