// watch(): reports catalog changes under a prefix, from a thread running a libuv loop.
//
// The catalog's journal is the source of truth on both backends: every put and remove bumps
// store_state.change_seq and adds a store_changes row in its own transaction, and a watch reports
// the rows after the last one it saw. What differs is when it looks:
//   blob   reads change_seq every interval;
//   share  polls the share's changes file every interval (uv_fs_poll: a stat, since network
//          shares deliver no inotify events; cheaper than a query) and reads the catalog when
//          the file changed, and every kFallbackIntervals intervals in case an announcement was
//          lost (the announcement is best effort).
#include <uv.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "store/backends.hpp"
#include "store/catalog.hpp"
#include "store/keys.hpp"

namespace emsnode::store {
namespace {

constexpr int kFallbackIntervals = 10;

void check_uv(int rc, const char* call) {
  if (rc < 0) throw StoreError(std::string("store: watch: ") + call + ": " + uv_strerror(rc));
}

void close_handle(uv_handle_t* handle, void*) {
  if (!uv_is_closing(handle)) uv_close(handle, nullptr);
}

// A libuv loop. Destroying it closes every handle still open on it and runs their close callbacks
// first, as uv_loop_close() requires; the handles' memory must outlive it.
class Loop {
 public:
  Loop() { check_uv(uv_loop_init(&loop_), "uv_loop_init"); }
  ~Loop() {
    uv_walk(&loop_, close_handle, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_{};
};

class CatalogWatch final : public Watch {
 public:
  CatalogWatch(db::Database& database, std::string_view backend, std::string prefix,
               std::chrono::milliseconds interval, std::function<void(const Change&)> on_change,
               const std::filesystem::path* changes_file)
      : database_(database),
        catalog_(database, backend),
        prefix_(std::move(prefix)),
        on_change_(std::move(on_change)),
        last_seq_(current_change_seq(database)) {
    const auto period =
        static_cast<std::uint64_t>(interval.count()) * (changes_file ? kFallbackIntervals : 1);
    stop_.data = this;
    timer_.data = this;
    poll_.data = this;
    // Stopping closes every handle; uv_run() then returns, as nothing is left to wait for.
    check_uv(
        uv_async_init(loop_.get(), &stop_,
                      [](uv_async_t* handle) { uv_walk(handle->loop, close_handle, nullptr); }),
        "uv_async_init");
    check_uv(uv_timer_init(loop_.get(), &timer_), "uv_timer_init");
    check_uv(uv_timer_start(
                 &timer_, [](uv_timer_t* handle) { self(handle)->check(); }, period, period),
             "uv_timer_start");
    if (changes_file) {
      check_uv(uv_fs_poll_init(loop_.get(), &poll_), "uv_fs_poll_init");
      // Called on any change of the file's stat, and when it cannot be read: either way the
      // catalog says what, if anything, changed.
      check_uv(uv_fs_poll_start(
                   &poll_,
                   [](uv_fs_poll_t* handle, int, const uv_stat_t*, const uv_stat_t*) {
                     self(handle)->check();
                   },
                   changes_file->c_str(), static_cast<unsigned int>(interval.count())),
               "uv_fs_poll_start");
    }
    thread_ = std::thread([this] { uv_run(loop_.get(), UV_RUN_DEFAULT); });
  }

  // Must not run on the watch's own thread (from on_change): it waits for that thread.
  ~CatalogWatch() override {
    uv_async_send(&stop_);
    thread_.join();
  }

  CatalogWatch(const CatalogWatch&) = delete;
  CatalogWatch& operator=(const CatalogWatch&) = delete;

 private:
  template <typename Handle>
  static CatalogWatch* self(Handle* handle) {
    return static_cast<CatalogWatch*>(handle->data);
  }

  // Reports the journal rows after the last one seen. A failure to read is logged and retried at
  // the next wake-up, from the same row.
  void check() {
    try {
      const std::int64_t seq = current_change_seq(database_);
      if (seq <= last_seq_) return;
      const auto entries = changes_after(database_, last_seq_);
      const std::int64_t first = entries.empty() ? seq + 1 : entries.front().seq;
      if (first > last_seq_ + 1) {
        store_log().warning("store.watch_missed",
                            {{"prefix", prefix_},
                             {"changes", std::to_string(first - last_seq_ - 1)},
                             {"why", "the journal keeps only the last " +
                                         std::to_string(kJournalRows) + " changes"}});
      }
      for (const JournalEntry& entry : entries) {
        if (entry.key.compare(0, prefix_.size(), prefix_) == 0) report(entry);
        last_seq_ = entry.seq;
      }
      last_seq_ = std::max(last_seq_, seq);
    } catch (const std::exception& error) {
      store_log().warning("store.watch_failed", {{"prefix", prefix_}, {"error", error.what()}});
    }
  }

  void report(const JournalEntry& entry) {
    Change change;
    change.kind = entry.kind;
    change.file.key = entry.key;
    // The row as it is now: a later change to the same key is reported on its own.
    if (entry.kind == Change::Kind::put) {
      if (const auto found = catalog_.find(entry.key)) change.file = found->info;
    }
    try {
      on_change_(change);
    } catch (const std::exception& error) {
      store_log().error("store.watch_callback_failed",
                        {{"key", entry.key}, {"error", error.what()}});
    }
  }

  db::Database& database_;
  Catalog catalog_;
  const std::string prefix_;
  const std::function<void(const Change&)> on_change_;
  std::int64_t last_seq_;  // touched only by the loop's thread once it runs
  // The handles are declared before the loop, so they outlive the closing in ~Loop().
  uv_async_t stop_{};
  uv_timer_t timer_{};
  uv_fs_poll_t poll_{};
  Loop loop_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Watch> watch(FileStore& store, db::Database& database, std::string prefix,
                             std::chrono::milliseconds interval,
                             std::function<void(const Change&)> on_change) {
  // libuv takes the poll interval as 32-bit milliseconds.
  if (interval.count() <= 0 || interval > std::chrono::hours(96)) {
    throw std::invalid_argument("store: watch: the interval must be positive and at most 4 days");
  }
  check_prefix(prefix);
  return std::make_unique<CatalogWatch>(database, store.backend(), std::move(prefix), interval,
                                        std::move(on_change), changes_file_of(store));
}

}  // namespace emsnode::store
