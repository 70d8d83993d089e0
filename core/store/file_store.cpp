// What every backend shares: files on local disk in and out of the store, and the store's log.
#include "store/file_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "store/backends.hpp"
#include "store/crypto.hpp"
#include "store/posix_io.hpp"
#include "store/streaming.hpp"

namespace emsnode::store {
namespace {

namespace fs = std::filesystem;

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

FileInfo FileStore::put(std::string_view key, std::istream& in, const Writer& writer) {
  IstreamSource source(in, "store: put " + std::string(key));
  return put_from(key, source, writer);
}

FileInfo FileStore::get(std::string_view key, std::ostream& out) {
  OstreamSink sink(out, "store: get " + std::string(key));
  return get_into(key, sink);
}

FileInfo FileStore::put_file(std::string_view key, const std::string& path, const Writer& writer) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) throw_local(errno, path, "open");
  const Fd fd(raw);
  FileSource source(fd.get(), path);
  return put_from(key, source, writer);
}

FileInfo FileStore::get_to_file(std::string_view key, const std::string& path) {
  const fs::path target(path);
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + "." +
                                                random_id().substr(0, 16) + ".part");
  const int raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) throw_local(errno, temp, "create");
  Fd fd(raw);
  RemoveUnlessKept remove_temp(temp);

  FileSink sink(fd.get(), temp);
  const FileInfo info = get_into(key, sink);
  // The writeback FileSink started as it wrote leaves this fsync little to wait for.
  if (::fsync(fd.get()) != 0) throw_local(errno, temp, "flush to disk (fsync)");
  // Linux releases the descriptor even when close fails (a delayed write error), so it is never
  // closed twice.
  if (::close(fd.release()) != 0) throw_local(errno, temp, "close");
  if (::rename(temp.c_str(), target.c_str()) != 0) throw_local(errno, target, "create");
  remove_temp.keep();
  return info;
}

}  // namespace emsnode::store
