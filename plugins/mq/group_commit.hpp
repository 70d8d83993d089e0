// Group commit: the broker's durable writes, batched into one fenced transaction every few
// milliseconds (or every N operations), after which the acknowledgements waiting on them
// (PUBACK, PUBREC, SUBACK, ...) are released. Durability then costs one transaction per batch,
// not one per message.
//
// A FencedError means this node lost the lease: nothing of the batch was written, so nothing
// waiting on it may be acknowledged. The committer stops for good and reports the failure; the
// server drops every connection, and the clients reconnect to the next active.
#pragma once

#include "session_store.hpp"

#include <emsnode/plugin.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
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
};

/// Commits on a thread of its own. `dispatch` hands a function to the broker's thread (an
/// asio::post); `on_failure` is dispatched once, with the reason, when a batch cannot commit.
class GroupCommitter final : public Committer {
 public:
  using Dispatch = std::function<void(std::function<void()>)>;

  GroupCommitter(sdk::Host& host, GroupCommitOptions options, Dispatch dispatch,
                 std::function<void(const std::string&)> on_failure);
  ~GroupCommitter() override;
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  void start();
  /// Stops the thread. What is still pending is neither written nor acknowledged.
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
  bool stopping();

  sdk::Host& host_;
  GroupCommitOptions options_;
  Dispatch dispatch_;
  std::function<void(const std::string&)> on_failure_;
  sdk::Histogram batch_size_;
  sdk::Histogram latency_;
  sdk::Counter failures_;

  std::mutex mutex_;
  std::condition_variable wake_;
  Pending pending_;
  bool busy_ = false;  // a batch is being written
  bool stopping_ = false;
  bool failed_ = false;
  std::thread thread_;
};

}  // namespace emsnode::plugins::mq
