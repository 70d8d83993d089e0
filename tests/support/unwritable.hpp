// Makes a SQLite database unwritable under a process that has it open, as a failed or
// write-protected disk would: writes then fail with SQLITE_IOERR (the backend's UnreachableError)
// while reads still work.
//
// How: the immutable attribute (chattr +i, FS_IMMUTABLE_FL) on the database file and its -wal
// file. ext4, xfs and btrfs refuse writes to an immutable file even through descriptors opened
// before (EPERM), and root is not exempt. What does not work, as root: chmod (root ignores it);
// `mount -o remount,ro` of a tmpfs holding the database (EBUSY while SQLite has files open for
// writing); the immutable attribute on tmpfs (accepted, but open descriptors still write). The
// -shm file is left alone: SQLite maps it, and a write fault on an immutable mapping is SIGBUS.
//
// Needs CAP_LINUX_IMMUTABLE (root) and such a filesystem: unwritable_unsupported() says whether
// this machine can do it in a folder, so a test can skip (support/skip.hpp) instead of passing
// vacuously.
// The attribute is cleared when the object is destroyed; a test killed meanwhile leaves immutable
// files behind (`chattr -i` removes them).
#pragma once

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace emsnode::testing {

namespace unwritable_detail {

// Sets or clears FS_IMMUTABLE_FL on `file`; an empty string, or why it failed.
inline std::string set_immutable(const std::filesystem::path& file, bool immutable) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return file.string() + ": " + std::strerror(errno);
  int flags = 0;
  std::string error;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    error = file.string() + ": cannot read file attributes: " + std::strerror(errno);
  } else {
    flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
      error = file.string() + ": cannot set the immutable attribute: " + std::strerror(errno);
    }
  }
  ::close(fd);
  return error;
}

}  // namespace unwritable_detail

// Empty when Unwritable works for files in `dir`, else why not: it tries the attribute on a
// probe file written through a descriptor opened before the attribute was set.
inline std::string unwritable_unsupported(const std::filesystem::path& dir) {
  const auto probe = dir / ".unwritable-probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return probe.string() + ": " + std::strerror(errno);
  std::string why_not = unwritable_detail::set_immutable(probe, true);
  const bool wrote = why_not.empty() && ::write(fd, "x", 1) == 1;
  ::close(fd);
  if (why_not.empty()) {
    const std::string restored = unwritable_detail::set_immutable(probe, false);
    if (!restored.empty()) throw std::runtime_error(restored);
    if (wrote) why_not = "this filesystem lets an open descriptor write to an immutable file";
  }
  std::filesystem::remove(probe);
  return why_not.empty() ? why_not : "cannot make a database unwritable here: " + why_not;
}

// Makes the SQLite database `db` (and its -wal file, created empty when absent so that SQLite
// cannot start a fresh one) unwritable until restore() or destruction. Throws when it cannot:
// check unwritable_unsupported() first.
class Unwritable {
 public:
  explicit Unwritable(const std::filesystem::path& db) {
    const auto wal = std::filesystem::path(db.string() + "-wal");
    if (!std::filesystem::exists(wal)) std::ofstream(wal, std::ios::binary | std::ios::app);
    for (const auto& file : {db, wal}) {
      const std::string error = unwritable_detail::set_immutable(file, true);
      if (!error.empty()) {
        throw std::runtime_error(error + clear());
      }
      files_.push_back(file);
    }
  }
  // A destructor must not throw: a failure to restore is reported on standard error, naming the
  // files to `chattr -i` by hand.
  ~Unwritable() {
    const std::string errors = clear();
    if (!errors.empty()) std::cerr << "Unwritable: cannot restore: " << errors << "\n";
  }
  Unwritable(const Unwritable&) = delete;
  Unwritable& operator=(const Unwritable&) = delete;

  // Makes the files writable again (the database works again without reopening it).
  void restore() {
    const std::string errors = clear();
    if (!errors.empty()) throw std::runtime_error(errors);
  }

 private:
  std::string clear() {
    std::string errors;
    for (const auto& file : files_) errors += unwritable_detail::set_immutable(file, false);
    files_.clear();
    return errors;
  }

  std::vector<std::filesystem::path> files_;
};

}  // namespace emsnode::testing
