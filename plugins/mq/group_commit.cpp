#include "group_commit.hpp"

#include <algorithm>
#include <ctime>
#include <random>
#include <utility>

namespace emsnode::plugins::mq {
namespace {

// How often a retry's pause looks at the epoch: a fence ends the retry this soon.
constexpr std::chrono::milliseconds kEpochPoll{20};

// The pause after `attempt` failures: doubling from `first` up to `cap`, then 80..120%, so that
// the committers of a cluster's nodes and the database's other clients do not return in step.
std::chrono::milliseconds backoff(int attempt, std::chrono::milliseconds first,
                                  std::chrono::milliseconds cap) {
  thread_local std::minstd_rand random{std::random_device{}()};
  std::chrono::milliseconds delay = first;
  for (int i = 1; i < attempt && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  std::uniform_int_distribution<long long> jitter(delay.count() * 8 / 10, delay.count() * 12 / 10);
  return std::chrono::milliseconds(jitter(random));
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

long long milliseconds_since(std::chrono::steady_clock::time_point then) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               then)
      .count();
}

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
                             "the database refused the batch past the retry limit)")),
      retries_(host.counter("commit_retries_total",
                            "Group commits tried again after a transient database error")) {}

GroupCommitter::~GroupCommitter() {
  stop();
}

void GroupCommitter::start() {
  epoch_ = host_.epoch();
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
    const std::string failure = write(batch.ops);
    if (!failure.empty()) {
      // A stopping plugin acknowledges nothing more anyway; it has not failed.
      if (stopping()) return false;
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

std::string GroupCommitter::write(const std::vector<StoreOp>& ops) {
  std::chrono::steady_clock::time_point first_failure;
  for (int attempt = 1;; ++attempt) {
    try {
      host_.db().write([&](sdk::Transaction& tx) { SessionStore::apply(tx, ops); });
      if (attempt > 1) {
        host_.log().info(
            "mq.commit_recovered",
            {{"attempts", attempt}, {"retried_ms", milliseconds_since(first_failure)}});
        host_.health(EMSNODE_HEALTH_OK, "database writes commit again");
      }
      return "";
    } catch (const sdk::FencedError& e) {
      host_.log().error("mq.commit_fenced", {{"error", e.what()}, {"ops", ops.size()}});
      return std::string("fenced: ") + e.what();
    } catch (const sdk::DbError& e) {
      if (attempt == 1) {
        first_failure = std::chrono::steady_clock::now();
        host_.health(EMSNODE_HEALTH_DEGRADED,
                     "database writes retrying since " + utc_now() + ": " + e.what());
      }
      std::string refusal = pause_before_retry(attempt, first_failure, e.what());
      if (!refusal.empty()) {
        host_.log().error("mq.commit_failed",
                          {{"error", e.what()}, {"attempts", attempt}, {"reason", refusal}});
        return refusal;
      }
    } catch (const std::exception& e) {
      // Not the database's doing (out of memory, a value SQL cannot hold): no retry, and it
      // must not end the process from this thread.
      host_.log().error("mq.commit_failed", {{"error", e.what()}, {"ops", ops.size()}});
      return e.what();
    }
  }
}

std::string GroupCommitter::pause_before_retry(int attempt,
                                               std::chrono::steady_clock::time_point first_failure,
                                               const std::string& error) {
  if (std::string changed = epoch_changed(); !changed.empty()) return changed + ": " + error;
  const long long failing_ms = milliseconds_since(first_failure);
  if (failing_ms >= options_.retry_limit.count()) {
    return "the database refused the batch for " + std::to_string(failing_ms) + " ms: " + error;
  }
  const auto delay = backoff(attempt, options_.retry_delay, options_.retry_max_delay);
  retries_.add();
  // Attempts 1, 2, 4, 8...: a few lines per outage, however long the node keeps its lease.
  if ((attempt & (attempt - 1)) == 0) {
    host_.log().warning("mq.commit_retrying",
                        {{"error", error}, {"attempt", attempt}, {"delay_ms", delay.count()}});
  }
  const auto until = std::chrono::steady_clock::now() + delay;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    const auto left = until - std::chrono::steady_clock::now();
    if (stopping_ || left <= std::chrono::steady_clock::duration::zero()) break;
    wake_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(left, kEpochPoll),
                   [&] { return stopping_; });
    lock.unlock();
    std::string changed = epoch_changed();
    lock.lock();
    if (!changed.empty()) return changed + ": " + error;
  }
  return stopping_ ? "stopping" : "";
}

std::string GroupCommitter::epoch_changed() const {
  const std::uint64_t now = host_.epoch();
  if (now == epoch_ && now != 0) return "";
  if (now == 0) {
    return "the node is no longer active (it was at epoch " + std::to_string(epoch_) + ")";
  }
  return "the node's epoch moved from " + std::to_string(epoch_) + " to " + std::to_string(now);
}

}  // namespace emsnode::plugins::mq
