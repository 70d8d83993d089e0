// A monotonic clock that moves only when the test says so. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>

#include "role/role_manager.hpp"

namespace emsnode::role::testing {

class ManualClock final : public Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  // Starts well away from zero, so that "the zero time point" never means "now".
  ManualClock() : ticks_(std::chrono::duration_cast<duration>(std::chrono::hours(1)).count()) {}

  time_point now() const override { return time_point(duration(ticks_.load())); }
  void advance(duration by) { ticks_ += by.count(); }
  void set(time_point at) { ticks_.store(at.time_since_epoch().count()); }
  // Milliseconds since the clock's zero: the fake database's clock.
  std::int64_t ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(duration(ticks_.load())).count();
  }

 private:
  std::atomic<duration::rep> ticks_;
};

}  // namespace emsnode::role::testing
