#include "group_commit.hpp"

#include <utility>

namespace emsnode::plugins::mq {
namespace {

// A database error other than fencing (a busy SQLite file, a dropped PostgreSQL connection) may
// pass: the batch is tried again this many times before the committer gives up.
constexpr int kAttempts = 3;
constexpr std::chrono::milliseconds kRetryDelay{100};

}  // namespace

GroupCommitter::GroupCommitter(sdk::Host& host, GroupCommitOptions options, Dispatch dispatch,
                               std::function<void(const std::string&)> on_failure)
    : host_(host),
      options_(options),
      dispatch_(std::move(dispatch)),
      on_failure_(std::move(on_failure)),
      batch_size_(host.histogram("commit_batch_operations", "Operations per group commit",
                                 {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000})),
      latency_(host.histogram("commit_seconds", "Time to write one group commit",
                              {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2})),
      failures_(host.counter("commit_failures_total",
                             "Group commits that failed for good (the node lost the lease, or "
                             "the database refused the batch)")) {}

GroupCommitter::~GroupCommitter() {
  stop();
}

void GroupCommitter::start() {
  thread_ = std::thread([this] { run(); });
}

void GroupCommitter::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool GroupCommitter::stopping() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stopping_;
}

void GroupCommitter::submit(std::vector<StoreOp> ops, std::function<void()> done) {
  bool now = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_ || stopping_) {
      return;  // acknowledge nothing once a batch could not be committed
    }
    // Nothing to write and nothing before it: it waits on nothing, but still runs later than
    // now, as any other completion does.
    now = ops.empty() && !busy_ && pending_.done.empty();
    if (!now) {
      for (StoreOp& o : ops) pending_.ops.push_back(std::move(o));
      pending_.done.push_back(std::move(done));
    }
  }
  if (now) {
    dispatch_(std::move(done));
    return;
  }
  wake_.notify_one();
}

void GroupCommitter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  bool quiet = true;  // the last commit left nothing pending
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.done.empty(); });
    if (stopping_) {
      return;
    }
    // After a quiet spell the first write waits `interval` for others to join it. Under load
    // there is no wait: what arrived during the last commit is the next batch, written at once,
    // so that a commit's latency is not added to twice. A batch with nothing to write waits
    // only for the commits before it, which are done.
    if (quiet && !pending_.ops.empty()) {
      wake_.wait_for(lock, options_.interval,
                     [&] { return stopping_ || pending_.ops.size() >= options_.max_batch; });
      if (stopping_) {
        return;
      }
    }
    Pending batch = std::move(pending_);
    pending_ = Pending{};
    busy_ = true;
    lock.unlock();
    const bool ok = commit(batch);
    lock.lock();
    busy_ = false;
    if (!ok) {
      failed_ = true;
      pending_ = Pending{};
      return;
    }
    quiet = pending_.done.empty();
  }
}

bool GroupCommitter::commit(Pending& batch) {
  if (!batch.ops.empty()) {
    const auto began = std::chrono::steady_clock::now();
    std::string failure;
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      try {
        host_.db().write([&](sdk::Transaction& tx) { SessionStore::apply(tx, batch.ops); });
        failure.clear();
        break;
      } catch (const sdk::FencedError& e) {
        failure = std::string("fenced: ") + e.what();
        host_.log().error("mq.commit_fenced", {{"error", e.what()}, {"ops", batch.ops.size()}});
        break;
      } catch (const sdk::DbError& e) {
        failure = e.what();
        host_.log().warning("mq.commit_failed",
                            {{"error", e.what()}, {"ops", batch.ops.size()}, {"attempt", attempt}});
        // A stopping plugin must meet its deadline: it acknowledges nothing more anyway.
        if (attempt == kAttempts || stopping()) break;
        std::this_thread::sleep_for(kRetryDelay);
      } catch (const std::exception& e) {
        // Not the database's doing (out of memory, a value SQL cannot hold): no retry, and it
        // must not end the process from this thread.
        failure = e.what();
        host_.log().error("mq.commit_failed", {{"error", e.what()}, {"ops", batch.ops.size()}});
        break;
      }
    }
    if (!failure.empty()) {
      failures_.add();
      dispatch_([fn = on_failure_, failure] { fn(failure); });
      return false;
    }
    batch_size_.observe(static_cast<double>(batch.ops.size()));
    latency_.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  }
  dispatch_([done = std::move(batch.done)] {
    for (const auto& fn : done) fn();
  });
  return true;
}

}  // namespace emsnode::plugins::mq
