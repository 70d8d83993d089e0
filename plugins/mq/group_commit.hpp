// Group commit: the broker's durable writes, batched into one fenced transaction every few
// milliseconds (or every N operations), after which the acknowledgements waiting on them
// (PUBACK, PUBREC, SUBACK, ...) are released. Durability then costs one transaction per batch,
// not one per message.
//
// A FencedError means this node lost the lease: nothing of the batch was written, so nothing
// waiting on it may be acknowledged. The committer stops for good and reports the failure; the
// server drops every connection, and the clients reconnect to the next active.
//
// Any other database error (a dropped PostgreSQL connection, a restarting server, a busy SQLite
// file) is retried with exponential backoff for as long as the node stays active at the epoch it
// had when the committer started: the host sets the epoch to 0 the moment the node fences itself
// at its renew deadline, or demotes, so a blip shorter than that costs latency, not the service.
// The acknowledgements wait meanwhile, and the plugin reports itself DEGRADED.
#pragma once

#include "session_store.hpp"

#include <emsnode/plugin.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace emsnode::plugins::mq {

/// What the broker submits its durable changes to.
class Committer {
 public:
  virtual ~Committer() = default;

  /// Queues `ops` behind everything submitted before. `done` runs on the broker's thread once
  /// they (and everything before them) are committed, in submission order; it never runs when
  /// they cannot be committed.
  virtual void submit(std::vector<StoreOp> ops, std::function<void()> done) = 0;
};

struct GroupCommitOptions {
  /// How long the first write after a quiet spell waits for others to join its batch.
  std::chrono::milliseconds interval{5};
  std::size_t max_batch = 1000;  ///< operations that make a batch write at once
  /// The pause after a batch's first transient failure; it doubles (with a little jitter) up to
  /// `retry_max_delay`.
  std::chrono::milliseconds retry_delay{50};
  std::chrono::milliseconds retry_max_delay{1000};
  /// How long one batch is retried at most while the epoch stays ours: an error that never
  /// passes (a statement the database refuses every time) must not hold acknowledgements for
  /// ever. The committer then fails, as when fenced, and the host restarts the plugin.
  std::chrono::milliseconds retry_limit{30000};
};

/// Commits on a thread of its own. `dispatch` hands a function to the broker's thread (an
/// asio::post); `on_failure` is dispatched once, with the reason, when a batch cannot commit.
/// While a batch is retried it reports the plugin's health as DEGRADED, and OK once it commits.
class GroupCommitter final : public Committer {
 public:
  using Dispatch = std::function<void(std::function<void()>)>;

  GroupCommitter(sdk::Host& host, GroupCommitOptions options, Dispatch dispatch,
                 std::function<void(const std::string&)> on_failure);
  ~GroupCommitter() override;
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  /// Starts the thread; the node's epoch now is the one its retries hold on to.
  void start();
  /// Stops the thread, interrupting a retry's pause. What is still pending is neither written
  /// nor acknowledged.
  void stop();

  void submit(std::vector<StoreOp> ops, std::function<void()> done) override;

 private:
  struct Pending {
    std::vector<StoreOp> ops;
    std::vector<std::function<void()>> done;
  };

  void run();
  // Writes one batch; false once the committer has failed.
  bool commit(Pending& batch);
  // Writes the batch's operations, retrying transient errors; the reason it could not, or "".
  std::string write(const std::vector<StoreOp>& ops);
  // Whether the batch that failed `attempt` times may be tried again after pausing: the
  // committer is not stopping and the node is still active at its epoch. Returns the reason it
  // may not ("" if it may), after the pause.
  std::string pause_before_retry(int attempt, std::chrono::steady_clock::time_point first_failure,
                                 const std::string& error);
  // The epoch's reason to give up, or "" while the node is active at epoch_.
  std::string epoch_changed() const;
  bool stopping();

  sdk::Host& host_;
  GroupCommitOptions options_;
  Dispatch dispatch_;
  std::function<void(const std::string&)> on_failure_;
  sdk::Histogram batch_size_;
  sdk::Histogram latency_;
  sdk::Counter failures_;
  sdk::Counter retries_;
  std::uint64_t epoch_ = 0;  // the node's epoch when the committer started

  std::mutex mutex_;
  std::condition_variable wake_;
  Pending pending_;
  bool busy_ = false;  // a batch is being written
  bool stopping_ = false;
  bool failed_ = false;
  std::thread thread_;
};

}  // namespace emsnode::plugins::mq
