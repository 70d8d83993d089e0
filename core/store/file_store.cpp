// What every backend shares: files on local disk in and out of the store, and the store's log.
#include "store/file_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <streambuf>

#include "store/backends.hpp"
#include "store/crypto.hpp"
#include "store/posix_io.hpp"

namespace emsnode::store {
namespace {

namespace fs = std::filesystem;

// A local file is not on the share: its errors are reported as they are, without the hints
// about mounts that throw_io() gives.
[[noreturn]] void throw_local(int error, const fs::path& path, const std::string& action) {
  const std::string what = path.string() + ": cannot " + action + ": " + std::strerror(error);
  if (error == ENOSPC || error == EDQUOT) throw NoSpace(what);
  throw StoreError(what);
}

// An output buffer over a descriptor that keeps the errno of a failed write, so that a full disk
// is reported as such rather than as a failed stream.
class DescriptorBuffer final : public std::streambuf {
 public:
  explicit DescriptorBuffer(int fd) : fd_(fd) {
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const char* data = pbase();
    while (data < pptr()) {
      const ssize_t n = ::write(fd_, data, static_cast<std::size_t>(pptr() - data));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error_ = errno;
        return false;
      }
      data += n;
    }
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return true;
  }

  int fd_;
  int error_ = 0;
  std::array<char, 64 * 1024> buffer_{};
};

// Removes a local temporary file on every way out but the one that keeps it.
class RemoveUnlessKept {
 public:
  explicit RemoveUnlessKept(fs::path path) : path_(std::move(path)) {}
  ~RemoveUnlessKept() {
    if (!kept_) ::unlink(path_.c_str());
  }
  RemoveUnlessKept(const RemoveUnlessKept&) = delete;
  RemoveUnlessKept& operator=(const RemoveUnlessKept&) = delete;

  void keep() { kept_ = true; }

 private:
  fs::path path_;
  bool kept_ = false;
};

}  // namespace

const log::Logger& store_log() {
  static const log::Logger logger("store");
  return logger;
}

void log_left_for_gc(const std::string& what, const std::exception& error) {
  store_log().warning(
      "store.cleanup_deferred",
      {{"leftover", what},
       {"error", error.what()},
       {"then", "collect_garbage removes it once it is unreferenced and old enough"}});
}

FileInfo FileStore::put_file(std::string_view key, const std::string& path, const Writer& writer) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_local(errno, path, "open");
  return put(key, in, writer);
}

FileInfo FileStore::get_to_file(std::string_view key, const std::string& path) {
  const fs::path target(path);
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + "." +
                                                random_id().substr(0, 16) + ".part");
  const int raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) throw_local(errno, temp, "create");
  Fd fd(raw);
  RemoveUnlessKept remove_temp(temp);

  DescriptorBuffer buffer(fd.get());
  std::ostream out(&buffer);
  FileInfo info;
  try {
    info = get(key, out);
    out.flush();
  } catch (const StoreError&) {
    if (buffer.error() != 0) throw_local(buffer.error(), temp, "write");
    throw;
  }
  if (!out) throw_local(buffer.error(), temp, "write");
  if (::fsync(fd.get()) != 0) throw_local(errno, temp, "flush to disk (fsync)");
  // Linux releases the descriptor even when close fails (a delayed write error), so it is never
  // closed twice.
  if (::close(fd.release()) != 0) throw_local(errno, temp, "close");
  if (::rename(temp.c_str(), target.c_str()) != 0) throw_local(errno, target, "create");
  remove_temp.keep();
  return info;
}

}  // namespace emsnode::store
