#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "db/file_lock.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace emsnode::db;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using emsnode::testing::TempDir;

TEST_CASE("a file lock is refused to a second holder even in the same process", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "emsnode.db.active.lock").string();
  auto first = FileLock::try_lock(path);
  REQUIRE(first);
  CHECK(first->locked());
  CHECK(first->path() == path);
  CHECK_FALSE(FileLock::try_lock(path));
}

TEST_CASE("a file lock is released by unlock and by its destructor", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "x.lock").string();
  {
    auto held = FileLock::try_lock(path);
    REQUIRE(held);
  }
  auto again = FileLock::try_lock(path);
  REQUIRE(again);
  again->unlock();
  CHECK_FALSE(again->locked());
  again->unlock();
  CHECK(FileLock::try_lock(path));
}

TEST_CASE("a moved file lock keeps the lock", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "x.lock").string();
  FileLock moved = std::move(*FileLock::try_lock(path));
  CHECK(moved.locked());
  CHECK_FALSE(FileLock::try_lock(path));
  FileLock assigned = std::move(*FileLock::try_lock((dir / "other.lock").string()));
  assigned = std::move(moved);
  CHECK(assigned.path() == path);
  CHECK(FileLock::try_lock((dir / "other.lock").string()));  // released by the assignment
  CHECK_FALSE(FileLock::try_lock(path));
}

TEST_CASE("a lock file is created readable by its owner only", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "x.lock").string();
  REQUIRE(FileLock::try_lock(path));
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
}

TEST_CASE("a blocking lock waits until the holder releases it", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "x.lock").string();
  auto held = FileLock::try_lock(path);
  REQUIRE(held);
  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    FileLock lock = FileLock::lock(path);
    acquired = true;
  });
  std::this_thread::sleep_for(100ms);
  CHECK_FALSE(acquired);
  held->unlock();
  waiter.join();
  CHECK(acquired);
}

TEST_CASE("the kernel releases the lock of a process killed with SIGKILL", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "emsnode.db.active.lock").string();
  // flock --no-fork locks the file and then becomes `sleep`, so one process holds the lock.
  emsnode::testing::Process holder({"/usr/bin/flock", "--no-fork", path, "/bin/sleep", "60"},
                                   dir.path());
  REQUIRE(emsnode::testing::eventually([&] { return !FileLock::try_lock(path); }));
  CHECK(holder.running());
  holder.signal(SIGKILL);
  REQUIRE(holder.wait(5s) == 128 + SIGKILL);
  CHECK(FileLock::try_lock(path));
}

TEST_CASE("lock files are named after the database file", "[sqlite]") {
  CHECK(lock_path("/var/lib/emsnode/emsnode.db", "active.lock") ==
        "/var/lib/emsnode/emsnode.db.active.lock");
  CHECK(lock_path("emsnode.db", "node-n1.lock") == "emsnode.db.node-n1.lock");
  CHECK_THROWS_AS(lock_path("emsnode.db", ""), std::invalid_argument);
  CHECK_THROWS_AS(lock_path("emsnode.db", "a/b"), std::invalid_argument);
}

TEST_CASE("a lock file that cannot be created fails naming the file", "[sqlite]") {
  TempDir dir;
  const std::string path = (dir / "missing" / "x.lock").string();
  CHECK_THROWS_AS(FileLock::try_lock(path), std::system_error);
  CHECK_THROWS_WITH(FileLock::lock(path), Contains(path));
}

TEST_CASE("a symbolic link in a lock file's place is refused, not followed", "[sqlite]") {
  TempDir dir;
  const auto victim = dir.write("victim", "keep\n");
  std::filesystem::create_symlink(victim, dir / "x.lock");
  CHECK_THROWS_WITH(FileLock::try_lock((dir / "x.lock").string()), Contains("symbolic link"));
  CHECK(emsnode::testing::read_file(victim) == "keep\n");
}

namespace {
// Sets an environment variable for one scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};
}  // namespace

TEST_CASE("the runtime lock folder is the user's own, created private, and refused otherwise",
          "[sqlite]") {
  TempDir dir;
  const ScopedEnv no_systemd("RUNTIME_DIRECTORY", nullptr);
  const ScopedEnv xdg("XDG_RUNTIME_DIR", dir.path().c_str());
  const auto lock_dir = runtime_lock_dir(dir / "fallback");
  CHECK(lock_dir == dir / "emsnode");
  struct stat st {};
  REQUIRE(::stat(lock_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(runtime_lock_dir(dir / "fallback") == lock_dir);  // the same folder the next time

  ::chmod(lock_dir.c_str(), 0777);
  CHECK_THROWS_WITH(runtime_lock_dir(dir / "fallback"), Contains("others may write to it"));
  std::filesystem::remove(lock_dir);
  std::filesystem::create_directories(dir / "elsewhere");
  std::filesystem::create_directory_symlink(dir / "elsewhere", lock_dir);
  CHECK_THROWS_WITH(runtime_lock_dir(dir / "fallback"), Contains("symbolic link"));
}
