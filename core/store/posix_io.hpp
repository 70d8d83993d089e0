// File I/O on the share: descriptors owned by RAII, and every failure turned into the store error
// an operator can act on (share unreachable, permission denied, disk full).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace emsnode::store {

// Throws the store error for `error` (an errno value) while doing `action` on `path`:
//   ENOENT ENOTDIR ESTALE EIO ENOTCONN EHOSTDOWN EHOSTUNREACH ETIMEDOUT ENODEV -> Unavailable
//   EACCES EPERM -> StoreError "permission denied";  ENOSPC EDQUOT -> NoSpace;  else StoreError.
[[noreturn]] void throw_io(int error, const std::filesystem::path& path, std::string_view action);

// An open file descriptor, closed when destroyed.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept;
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  // Gives up ownership: the caller closes the returned descriptor.
  int release() { return std::exchange(fd_, -1); }
  // Closes now and throws on failure: network filesystems report delayed write errors at close.
  void close(const std::filesystem::path& path);

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC, retried on EINTR; throws through throw_io().
Fd open_file(const std::filesystem::path& path, int flags, mode_t mode, std::string_view action);
// Like open_file(), but nullopt when the file does not exist.
std::optional<Fd> open_existing(const std::filesystem::path& path, int flags,
                                std::string_view action);
// The names in a directory, without "." and "..".
std::vector<std::string> list_directory(const std::filesystem::path& path);
// Unlinks `path`; true when it did, false when it was already gone.
bool remove_file(const std::filesystem::path& path);
// Reads until `size` bytes are read or the file ends; returns how many were read.
std::size_t read_full(int fd, char* data, std::size_t size, const std::filesystem::path& path);
void write_all(int fd, const char* data, std::size_t size, const std::filesystem::path& path);
void sync_file(int fd, const std::filesystem::path& path);
// fsync of a directory, so that a rename or a new entry in it survives a crash.
void sync_directory(const std::filesystem::path& path);
// mkdir with mode 0755; true when it was created, false when it already existed.
bool make_directory(const std::filesystem::path& path);

}  // namespace emsnode::store
