// An exclusive advisory lock on a file beside the database (flock(2), LOCK_EX), held for as long
// as the FileLock object lives.
//
// The kernel drops the lock when the process dies, however it dies (SIGKILL, a crash, the OOM
// killer): that is what makes it proof, to another process on the same host, that the holder is
// gone. The role manager uses `<db>.active.lock` for the same-host fast path, and each node
// `<db>.node-<id>.lock` to prove its identity (no other live process uses its id).
//
// flock locks belong to the open file description: two FileLock objects on the same path
// conflict even inside one process, and a child created by fork() without exec shares the lock
// (the descriptor is close-on-exec, so executables such as role hooks never inherit it). The
// file is only a lock: it is created empty (mode 0600) and never removed, since removing it
// would let a second process lock a new file of the same name while the first still holds the
// old one.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace emsnode::db {

class FileLock {
 public:
  // Takes the lock without waiting; nullopt when another open file description holds it. Throws
  // std::system_error (naming the file) when the file cannot be opened or created.
  static std::optional<FileLock> try_lock(const std::string& path);
  // Waits for the lock.
  static FileLock lock(const std::string& path);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  // Releases the lock (closing the file); nothing when already released.
  void unlock() noexcept;
  bool locked() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  FileLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
};

// The lock file beside a database file: lock_path("/var/lib/emsnode/emsnode.db", "active.lock")
// is "/var/lib/emsnode/emsnode.db.active.lock". Throws std::invalid_argument when `suffix` is
// empty or contains a '/'.
std::string lock_path(const std::string& db_path, std::string_view suffix);

// A folder for this user's lock files that every process of the user on this host agrees on and
// no other user can write to: systemd's $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR/emsnode, else
// /run/emsnode for root, else `fallback`. Created mode 0700 when missing. Throws
// std::runtime_error naming the folder when it is a symbolic link, belongs to another user, or
// others may write to it.
std::filesystem::path runtime_lock_dir(const std::filesystem::path& fallback);

}  // namespace emsnode::db
