// An in-memory LeaseStore with the same rules as SqlLeaseStore (lease_store.cpp), which tests can
// make unreachable, stuck (every call blocks until released) or lose the lease to another node.
// Thread-safe: the threaded RoleManager calls it from its database worker.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include "db/database.hpp"
#include "role/lease_store.hpp"

namespace emsnode::role::testing {

class FakeLeaseStore final : public LeaseStore {
 public:
  struct Row {
    std::string holder;
    std::int64_t epoch = 0;
    std::int64_t expires_at_ms = 0;
    bool os_lock = false;
    std::string handover_to;
    std::int64_t handover_until_ms = 0;
  };

  explicit FakeLeaseStore(std::function<std::int64_t()> now_ms) : now_ms_(std::move(now_ms)) {}

  // Every call throws db::UnreachableError until set back.
  void set_unreachable(bool unreachable) {
    std::lock_guard lock(mutex_);
    unreachable_ = unreachable;
  }
  // Every call blocks (a hung connection) until set back.
  void set_stuck(bool stuck) {
    {
      std::lock_guard lock(mutex_);
      stuck_ = stuck;
    }
    unstuck_.notify_all();
  }
  // Another node takes the lease (as if ours had expired and it acquired it).
  void steal(const std::string& holder, std::chrono::milliseconds ttl) {
    std::lock_guard lock(mutex_);
    row_.holder = holder;
    row_.epoch += 1;
    row_.expires_at_ms = now_ms_() + ttl.count();
    row_.os_lock = false;
  }
  Row row() const {
    std::lock_guard lock(mutex_);
    return row_;
  }
  int renewals() const {
    std::lock_guard lock(mutex_);
    return renewals_;
  }

  LeaseView read() override {
    std::unique_lock lock(mutex_);
    enter(lock);
    return view(now_ms_());
  }

  AcquireResult try_acquire(std::string_view node_id, std::chrono::milliseconds ttl,
                            bool have_os_lock) override {
    std::unique_lock lock(mutex_);
    enter(lock);
    const std::int64_t now = now_ms_();
    const bool takeable =
        row_.holder.empty() || row_.expires_at_ms <= now || (have_os_lock && row_.os_lock);
    const bool admitted =
        row_.handover_to.empty() || row_.handover_to == node_id || row_.handover_until_ms <= now;
    AcquireResult result;
    if (takeable && admitted) {
      result.acquired = true;
      result.fast_path = !row_.holder.empty() && row_.expires_at_ms > now;
      row_.holder = std::string(node_id);
      row_.epoch += 1;
      row_.expires_at_ms = now + ttl.count();
      row_.os_lock = have_os_lock;
      row_.handover_to.clear();
      row_.handover_until_ms = 0;
      result.epoch = static_cast<std::uint64_t>(row_.epoch);
    }
    result.lease = view(now);
    return result;
  }

  bool renew(std::string_view node_id, std::uint64_t epoch, std::chrono::milliseconds ttl,
             bool have_os_lock) override {
    std::unique_lock lock(mutex_);
    enter(lock);
    if (!ours(node_id, epoch)) return false;
    ++renewals_;
    row_.expires_at_ms = now_ms_() + ttl.count();
    row_.os_lock = have_os_lock;
    return true;
  }

  bool release(std::string_view node_id, std::uint64_t epoch) override {
    std::unique_lock lock(mutex_);
    enter(lock);
    if (!ours(node_id, epoch)) return false;
    row_.expires_at_ms = now_ms_();
    row_.os_lock = false;
    return true;
  }

  bool reserve_handover(std::string_view node_id, std::uint64_t epoch, std::string_view to,
                        std::chrono::milliseconds duration) override {
    std::unique_lock lock(mutex_);
    enter(lock);
    if (!ours(node_id, epoch)) return false;
    row_.handover_to = std::string(to);
    row_.handover_until_ms = now_ms_() + duration.count();
    return true;
  }

 private:
  void enter(std::unique_lock<std::mutex>& lock) {
    unstuck_.wait(lock, [this] { return !stuck_; });
    if (unreachable_) throw db::UnreachableError("fake: the database is unreachable");
  }
  bool ours(std::string_view node_id, std::uint64_t epoch) const {
    return row_.holder == node_id && row_.epoch == static_cast<std::int64_t>(epoch);
  }
  LeaseView view(std::int64_t now) const {
    LeaseView view;
    view.holder = row_.holder;
    view.epoch = static_cast<std::uint64_t>(row_.epoch);
    view.expires_in_ms = row_.expires_at_ms - now;
    view.os_lock = row_.os_lock;
    if (row_.handover_until_ms > now) view.handover_to = row_.handover_to;
    return view;
  }

  const std::function<std::int64_t()> now_ms_;
  mutable std::mutex mutex_;
  std::condition_variable unstuck_;
  bool unreachable_ = false;
  bool stuck_ = false;
  Row row_;
  int renewals_ = 0;
};

// Hands a RoleManager (which owns its store) a view of a FakeLeaseStore the test keeps.
class StoreHandle final : public LeaseStore {
 public:
  explicit StoreHandle(LeaseStore& store) : store_(store) {}
  LeaseView read() override { return store_.read(); }
  AcquireResult try_acquire(std::string_view node_id, std::chrono::milliseconds ttl,
                            bool have_os_lock) override {
    return store_.try_acquire(node_id, ttl, have_os_lock);
  }
  bool renew(std::string_view node_id, std::uint64_t epoch, std::chrono::milliseconds ttl,
             bool have_os_lock) override {
    return store_.renew(node_id, epoch, ttl, have_os_lock);
  }
  bool release(std::string_view node_id, std::uint64_t epoch) override {
    return store_.release(node_id, epoch);
  }
  bool reserve_handover(std::string_view node_id, std::uint64_t epoch, std::string_view to,
                        std::chrono::milliseconds duration) override {
    return store_.reserve_handover(node_id, epoch, to, duration);
  }

 private:
  LeaseStore& store_;
};

}  // namespace emsnode::role::testing
