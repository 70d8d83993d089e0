// A deterministic cluster for RoleMachine tests: machines on one manual clock, sharing a
// FakeLeaseStore (the database) and one same-host OS lock, with every asynchronous call turned
// into a timed event. Nothing runs in parallel, so each test is one exact interleaving that it can
// replay and inspect: when each node called what, when each node served, and whether two
// tenures ever overlapped.
//
// Timing model: a lease call commits `db_latency` after it is made (or when a stuck database
// comes back) and its answer reaches the node `reply_delay` later; a promotion (pre_promote hooks
// + Actions::promote) takes `promotion_time`, a graceful demotion `demotion_time`; a fence stops
// serving within its budget (counted as the whole budget, the worst case). A crashed node does
// nothing more and loses its OS lock; a frozen node (SIGSTOP) sees its events only when it thaws.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "fake_lease_store.hpp"
#include "manual_clock.hpp"
#include "role/role_machine.hpp"

namespace emsnode::role::testing {

using std::chrono::milliseconds;

struct Tenure {
  std::string node;
  std::uint64_t epoch = 0;
  TimePoint from;
  std::optional<TimePoint> until;  // the last instant it may still have served
};

struct Call {
  TimePoint at;
  std::string what;
};

class Cluster;

class SimNode final : public MachineEnv {
 public:
  SimNode(Cluster& cluster, std::string node_id, Timers timers, bool fast_path)
      : id(std::move(node_id)),
        cluster_(cluster),
        timers_(timers),
        machine_(id, timers, fast_path, *this) {}

  const std::string id;
  // Behaviour the test sets.
  std::string veto;            // pre_promote hooks fail with this text
  std::string schema_blocker;  // acquisitions are blocked with this reason
  milliseconds promotion_time{5};
  milliseconds demotion_time{5};

  // What happened.
  std::vector<Call> calls;
  std::vector<Transition> transitions;
  std::vector<std::uint64_t> promoted_epochs;
  bool crashed = false;
  bool finished_called = false;
  TimePoint frozen_until{};

  RoleMachine& machine() { return machine_; }
  RoleStatus status() const { return machine_.status(); }
  Role role() const { return machine_.status().role; }
  bool serving() const { return serving_; }

  std::optional<Call> first_call(std::string_view prefix, TimePoint since = {}) const {
    for (const auto& call : calls) {
      if (call.at >= since && call.what.compare(0, prefix.size(), prefix) == 0) return call;
    }
    return std::nullopt;
  }
  std::optional<Call> last_call(std::string_view prefix, TimePoint before) const {
    std::optional<Call> found;
    for (const auto& call : calls) {
      if (call.at < before && call.what.compare(0, prefix.size(), prefix) == 0) found = call;
    }
    return found;
  }
  std::size_t count_calls(std::string_view prefix, TimePoint since = {}) const {
    return static_cast<std::size_t>(std::count_if(calls.begin(), calls.end(), [&](const Call& c) {
      return c.at >= since && c.what.compare(0, prefix.size(), prefix) == 0;
    }));
  }

  void start_acquire(bool have_os_lock) override;
  void start_renew(std::uint64_t epoch, bool have_os_lock) override;
  void start_release(std::uint64_t epoch, const std::string& handover_to) override;
  void start_promotion(std::uint64_t epoch, std::string_view why) override;
  void start_demotion(std::uint64_t epoch, std::string_view why) override;
  void start_post_demote_hooks(std::uint64_t epoch, std::string_view why) override {
    record("post_demote epoch=" + std::to_string(epoch) + " reason=" + std::string(why));
  }
  bool fence(std::uint64_t epoch, milliseconds budget) override;
  bool try_os_lock() override;
  void release_os_lock() override;
  void transitioned(const Transition& transition) override { transitions.push_back(transition); }
  void finished() override {
    record("finished");
    finished_called = true;
  }

 private:
  friend class Cluster;
  void record(std::string what);
  void begin_tenure(std::uint64_t epoch);
  void end_tenure(TimePoint at);

  Cluster& cluster_;
  const Timers timers_;
  RoleMachine machine_;
  std::uint64_t promotable_epoch_ = 0;
  std::uint64_t promoted_epoch_ = 0;
  bool serving_ = false;
  std::size_t tenure_ = 0;
  TimePoint demoting_until_{};  // a fence's Actions::demote is still running
};

class Cluster {
 public:
  explicit Cluster(Timers timers = Timers{}, bool fast_path = true)
      : timers(timers), fast_path(fast_path), store([this] { return clock.ms(); }) {}

  const Timers timers;
  const bool fast_path;  // a same-host OS lock exists (SQLite)
  ManualClock clock;
  FakeLeaseStore store;
  milliseconds db_latency{2};
  milliseconds reply_delay{1};
  TimePoint db_stuck_until{};
  bool os_lock_outsider = false;  // a process outside the cluster holds the OS lock
  SimNode* os_lock_owner = nullptr;
  std::vector<Tenure> tenures;

  TimePoint now() const { return clock.now(); }
  TimePoint at_db_ms(std::int64_t ms) const { return TimePoint(milliseconds(ms)); }

  SimNode& add(const std::string& id) {
    nodes_.push_back(std::make_unique<SimNode>(*this, id, timers, fast_path));
    return *nodes_.back();
  }
  SimNode& start(const std::string& id) {
    SimNode& node = add(id);
    node.machine().start(now());
    return node;
  }

  // The process dies: it stops serving at once and the kernel drops its OS lock.
  void crash(SimNode& node) {
    node.crashed = true;
    if (node.serving_) node.end_tenure(now());
    node.serving_ = false;
    if (os_lock_owner == &node) os_lock_owner = nullptr;
  }
  void freeze(SimNode& node, milliseconds how_long) { node.frozen_until = now() + how_long; }

  void run_for(milliseconds duration) {
    const TimePoint until = now() + duration;
    while (step(until)) {
    }
    if (now() < until) clock.set(until);
  }
  template <typename Done>
  bool run_until(Done done, milliseconds limit) {
    const TimePoint until = now() + limit;
    while (!done()) {
      if (!step(until)) {
        if (now() < until) clock.set(until);
        return done();
      }
    }
    return true;
  }

  // The one node that is active; nullptr when none. Throws when two are.
  SimNode* active() {
    SimNode* found = nullptr;
    for (auto& node : nodes_) {
      if (node->crashed || node->role() != Role::active) continue;
      if (found) throw std::logic_error("two active nodes: " + found->id + " and " + node->id);
      found = node.get();
    }
    return found;
  }

  // "" when no two tenures overlap, else the first pair that did.
  std::string overlapping_tenures() const {
    for (std::size_t i = 0; i < tenures.size(); ++i) {
      for (std::size_t j = i + 1; j < tenures.size(); ++j) {
        const Tenure& a = tenures[i];
        const Tenure& b = tenures[j];
        const TimePoint a_end = a.until.value_or(TimePoint::max());
        const TimePoint b_end = b.until.value_or(TimePoint::max());
        if (a.from < b_end && b.from < a_end) {
          return a.node + "@" + std::to_string(a.epoch) + " overlaps " + b.node + "@" +
                 std::to_string(b.epoch);
        }
      }
    }
    return {};
  }

  // For SimNode: `action` runs at `when`; bound to `node`, it is dropped when the node has
  // crashed and postponed while it is frozen.
  void at(TimePoint when, SimNode* node, std::function<void()> action) {
    events_.push(Event{when, seq_++, node, std::move(action)});
  }
  // A lease call: `exec` runs against the store at commit time, `deliver` gets its result at
  // the node `reply_delay` later.
  template <typename Exec, typename Deliver>
  void db_call(SimNode& node, Exec exec, Deliver deliver) {
    const TimePoint commit = std::max(now() + db_latency, db_stuck_until);
    at(commit, nullptr, [this, &node, exec, deliver] {
      auto result = exec();
      at(now() + reply_delay, &node, [result, deliver] { deliver(result); });
    });
  }

 private:
  struct Event {
    TimePoint when;
    std::uint64_t seq;
    SimNode* node;
    std::function<void()> action;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return std::tie(a.when, a.seq) > std::tie(b.when, b.seq);
    }
  };

  bool live(const SimNode& node) const { return !node.crashed && !node.finished_called; }

  // Runs everything due at the next instant that is <= `limit`; false when there is none.
  bool step(TimePoint limit) {
    std::optional<TimePoint> next;
    const auto take = [&](TimePoint t) {
      if (!next || t < *next) next = t;
    };
    if (!events_.empty()) take(events_.top().when);
    for (auto& node : nodes_) {
      if (!live(*node)) continue;
      if (now() < node->frozen_until) {
        take(node->frozen_until);
      } else if (auto wake = node->machine_.next_wakeup(now())) {
        take(*wake);
      }
    }
    if (!next || *next > limit) return false;
    if (*next > now()) {
      clock.set(*next);
      steps_at_instant_ = 0;
    } else if (++steps_at_instant_ > 100000) {
      throw std::logic_error("the simulation does not advance: a machine keeps waking at once");
    }
    const TimePoint t = now();
    while (!events_.empty() && events_.top().when <= t) {
      Event event = events_.top();
      events_.pop();
      if (event.node) {
        if (event.node->crashed) continue;
        if (t < event.node->frozen_until) {
          at(event.node->frozen_until, event.node, std::move(event.action));
          continue;
        }
      }
      event.action();
    }
    for (auto& node : nodes_) {
      if (!live(*node) || t < node->frozen_until) continue;
      const auto wake = node->machine_.next_wakeup(t);
      if (wake && *wake <= t) node->machine_.tick(t);
    }
    return true;
  }

  std::priority_queue<Event, std::vector<Event>, Later> events_;
  std::uint64_t seq_ = 0;
  int steps_at_instant_ = 0;
  std::deque<std::unique_ptr<SimNode>> nodes_;
};

inline void SimNode::record(std::string what) {
  calls.push_back({cluster_.now(), std::move(what)});
}

inline void SimNode::begin_tenure(std::uint64_t epoch) {
  serving_ = true;
  promoted_epoch_ = epoch;
  promoted_epochs.push_back(epoch);
  cluster_.tenures.push_back({id, epoch, cluster_.now(), std::nullopt});
  tenure_ = cluster_.tenures.size() - 1;
}

inline void SimNode::end_tenure(TimePoint at) {
  cluster_.tenures[tenure_].until = at;
}

inline void SimNode::start_acquire(bool have_os_lock) {
  record(std::string("acquire os_lock=") + (have_os_lock ? "1" : "0"));
  cluster_.db_call(
      *this,
      [this, have_os_lock] {
        AcquireOutcome outcome;
        try {
          if (!schema_blocker.empty()) {
            outcome.kind = AcquireOutcome::Kind::blocked;
            outcome.reason = schema_blocker;
            return outcome;
          }
          const AcquireResult result =
              cluster_.store.try_acquire(id, timers_.lease_ttl, have_os_lock);
          outcome.kind =
              result.acquired ? AcquireOutcome::Kind::acquired : AcquireOutcome::Kind::refused;
          outcome.epoch = result.epoch;
          outcome.fast_path = result.fast_path;
          outcome.lease = result.lease;
        } catch (const std::exception& error) {
          outcome.kind = AcquireOutcome::Kind::failed;
          outcome.error = error.what();
        }
        return outcome;
      },
      [this](const AcquireOutcome& outcome) {
        machine_.on_acquire_result(cluster_.now(), outcome);
      });
}

inline void SimNode::start_renew(std::uint64_t epoch, bool have_os_lock) {
  record("renew epoch=" + std::to_string(epoch) + " os_lock=" + (have_os_lock ? "1" : "0"));
  cluster_.db_call(
      *this,
      [this, epoch, have_os_lock] {
        RenewOutcome outcome;
        try {
          outcome.kind = cluster_.store.renew(id, epoch, timers_.lease_ttl, have_os_lock)
                             ? RenewOutcome::Kind::renewed
                             : RenewOutcome::Kind::lost;
        } catch (const db::UnreachableError& error) {
          outcome.unreachable = true;
          outcome.error = error.what();
        }
        return outcome;
      },
      [this, epoch](const RenewOutcome& outcome) {
        machine_.on_renew_result(cluster_.now(), epoch, outcome);
      });
}

inline void SimNode::start_release(std::uint64_t epoch, const std::string& handover_to) {
  record("release epoch=" + std::to_string(epoch) + " handover=" + handover_to);
  cluster_.db_call(
      *this,
      [this, epoch, handover_to] {
        try {
          if (!handover_to.empty()) {
            cluster_.store.reserve_handover(id, epoch, handover_to, timers_.lease_ttl);
          }
          return cluster_.store.release(id, epoch);
        } catch (const db::UnreachableError&) {
          return false;  // the wrapper logs lease.release_failed; the machine sees "not released"
        }
      },
      [this, epoch](bool released) { machine_.on_released(cluster_.now(), epoch, released); });
}

inline void SimNode::start_promotion(std::uint64_t epoch, std::string_view why) {
  record("promotion epoch=" + std::to_string(epoch) + " reason=" + std::string(why));
  promotable_epoch_ = epoch;
  cluster_.at(cluster_.now() + promotion_time, this, [this, epoch] {
    if (promotable_epoch_ != epoch) return;  // fenced while the hooks ran
    PromotionOutcome outcome;
    if (!veto.empty()) {
      promotable_epoch_ = 0;
      outcome.kind = PromotionOutcome::Kind::vetoed;
      outcome.detail = veto;
    } else {
      begin_tenure(epoch);
      outcome.kind = PromotionOutcome::Kind::promoted;
    }
    machine_.on_promotion_result(cluster_.now(), epoch, outcome);
  });
}

inline void SimNode::start_demotion(std::uint64_t epoch, std::string_view why) {
  record("demotion epoch=" + std::to_string(epoch) + " reason=" + std::string(why));
  cluster_.at(cluster_.now() + demotion_time, this, [this, epoch] {
    if (serving_ && promoted_epoch_ == epoch) {
      end_tenure(cluster_.now());
      serving_ = false;
    }
    machine_.on_demoted(cluster_.now(), epoch);
  });
}

// Actions::demote is taken to use its whole budget (the worst case), so whatever the machine does
// right after the fence (release the OS lock) takes effect only when the budget has run out.
inline bool SimNode::fence(std::uint64_t epoch, milliseconds budget) {
  record("fence epoch=" + std::to_string(epoch) + " budget=" + std::to_string(budget.count()));
  if (promotable_epoch_ == epoch) promotable_epoch_ = 0;
  if (serving_ && promoted_epoch_ == epoch) {
    end_tenure(cluster_.now() + budget);
    serving_ = false;
    demoting_until_ = cluster_.now() + budget;
  }
  return promoted_epoch_ == epoch;
}

inline bool SimNode::try_os_lock() {
  if (cluster_.os_lock_owner || cluster_.os_lock_outsider) return false;
  cluster_.os_lock_owner = this;
  return true;
}

inline void SimNode::release_os_lock() {
  record("os_lock.release");
  if (cluster_.now() < demoting_until_) {
    cluster_.at(demoting_until_, nullptr, [this] {
      if (cluster_.os_lock_owner == this) cluster_.os_lock_owner = nullptr;
    });
    return;
  }
  if (cluster_.os_lock_owner == this) cluster_.os_lock_owner = nullptr;
}

}  // namespace emsnode::role::testing
