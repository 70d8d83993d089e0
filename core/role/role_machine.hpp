// Who decides the role: the state machine behind RoleManager, free of threads and timers so that
// tests can drive it through every interleaving with a clock they advance by hand.
//
// The machine is told the time with every event and says what to do through MachineEnv: start a
// lease call (the outcome comes back later as on_acquire_result / on_renew_result /
// on_released), start a promotion or a graceful demotion (hooks and plugins, outcome later), or
// fence at once (synchronous). RoleManager runs it on one control thread, with the lease calls on
// a database worker and the hooks on a hook thread, and wakes it at next_wakeup().
//
// Phases (Role in brackets, as status and /healthz/active report it):
//   passive (passive)    polls the lease every poll_interval, and the same-host OS lock
//   promoting (passive)  holds the lease; pre_promote hooks and Actions::promote are running
//   active (active)      serving; renews every renew_interval
//   demoting (active)    graceful (stop, switchover, pause): pre_demote hooks, Actions::demote
//   releasing (passive)  plugins stopped; the lease release is being written
//   stopped (stopping)
// While the lease is held (promoting, active, demoting) the machine renews it and checks its
// deadline first on every event: at `last successful renewal's start + renew_deadline` it fences.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "log/log.hpp"
#include "role/role_manager.hpp"

namespace emsnode::role {

using TimePoint = std::chrono::steady_clock::time_point;

struct AcquireOutcome {
  enum class Kind { acquired, refused, blocked, failed };
  Kind kind = Kind::failed;
  std::uint64_t epoch = 0;         // acquired
  bool fast_path = false;          // acquired
  std::optional<LeaseView> lease;  // acquired (ours) and refused (the holder's)
  std::string reason;              // blocked: the schema blocker's reason::kSchema*
  std::string error;               // failed: the database's message
};

struct RenewOutcome {
  enum class Kind { renewed, lost, failed };
  Kind kind = Kind::failed;
  bool unreachable = false;  // failed with db::UnreachableError
  std::string error;         // failed
};

struct PromotionOutcome {
  enum class Kind {
    promoted,  // Actions::promote returned: serving
    vetoed,    // a pre_promote hook failed; promote was not called
    failed,    // Actions::promote threw; the plugins were stopped again
    aborted,   // the machine gave the tenure up first (fence); promote was not called
  };
  Kind kind = Kind::aborted;
  std::string detail;  // vetoed / failed: why
};

// Actions::demote's budget when fencing: what is left of lease_ttl after renew_deadline, less
// 100 ms of margin for clock rates and scheduling, and never less than 50 ms.
std::chrono::milliseconds fence_budget(const Timers& timers);

// What the machine asks of the world. Every call is made on the machine's thread.
class MachineEnv {
 public:
  virtual ~MachineEnv() = default;

  // Asynchronous: each returns at once; the outcome comes back through the named event.
  virtual void start_acquire(bool have_os_lock) = 0;                     // on_acquire_result
  virtual void start_renew(std::uint64_t epoch, bool have_os_lock) = 0;  // on_renew_result
  // Reserves the lease for `handover_to` (when not empty), then releases it.  on_released
  virtual void start_release(std::uint64_t epoch, const std::string& handover_to) = 0;
  // pre_promote hooks, Actions::promote, then post_promote hooks.         on_promotion_result
  virtual void start_promotion(std::uint64_t epoch, std::string_view reason) = 0;
  // pre_demote hooks, then Actions::demote within the time the lease still guarantees. on_demoted
  virtual void start_demotion(std::uint64_t epoch, std::string_view reason) = 0;
  virtual void start_post_demote_hooks(std::uint64_t epoch, std::string_view reason) = 0;

  // Synchronous. Stops serving now: Actions::demote(budget) without any hook, and no promotion
  // of `epoch` may start after it. Returns whether Actions::promote was called for `epoch` (then
  // post_demote hooks are owed).
  virtual bool fence(std::uint64_t epoch, std::chrono::milliseconds budget) = 0;
  // The same-host OS lock (only called when the machine was built with the fast path).
  virtual bool try_os_lock() = 0;
  virtual void release_os_lock() = 0;

  // Notifications.
  virtual void transitioned(const Transition& transition) = 0;
  virtual void finished() = 0;  // stop() completed: nothing is held, nothing is in flight
};

class RoleMachine {
 public:
  // How often a passive retries the same-host OS lock (try_lock is one cheap system call). A
  // thread blocked in flock() cannot be cancelled without a process-wide signal handler, and
  // stop() must join every thread, so the lock is polled instead: takeover stays within ~10 ms.
  static constexpr std::chrono::milliseconds kOsLockPoll{10};

  // `fast_path`: a same-host OS lock exists (SQLite).
  RoleMachine(std::string node_id, Timers timers, bool fast_path, MachineEnv& env);

  void start(TimePoint now);
  void tick(TimePoint now);  // at next_wakeup(), or whenever
  void on_acquire_result(TimePoint now, const AcquireOutcome& outcome);
  void on_renew_result(TimePoint now, std::uint64_t epoch, const RenewOutcome& outcome);
  void on_promotion_result(TimePoint now, std::uint64_t epoch, const PromotionOutcome& outcome);
  void on_demoted(TimePoint now, std::uint64_t epoch);
  void on_released(TimePoint now, std::uint64_t epoch, bool released);
  // A peer announced that it released the lease (PostgreSQL NOTIFY): a passive tries to take it
  // now rather than at its next poll. Changes nothing else; the lease row decides.
  void on_release_notified(TimePoint now);

  void pause(TimePoint now);
  void resume(TimePoint now);
  // "" when the switchover started, else why it cannot (for the operator). `why`: the reason the
  // demotion carries (reason::kSwitchover, or a handover reason such as plugin_failed:<id>).
  std::string switchover(TimePoint now, const std::optional<std::string>& to,
                         std::string_view why = reason::kSwitchover);
  void stop(TimePoint now);

  bool finished() const { return phase_ == Phase::stopped; }
  // When the machine next needs tick(); nullopt when only an outcome can move it.
  std::optional<TimePoint> next_wakeup(TimePoint now) const;
  RoleStatus status() const;
  // While the lease is held: when this node stops trusting it.
  std::optional<TimePoint> deadline() const;
  // Seconds the lease has left as this node knows it: on the holder, from the start of its last
  // successful renewal (a lower bound); on a passive, as last read. Never negative.
  double lease_remaining_seconds(TimePoint now) const;

  std::chrono::milliseconds fence_budget() const { return role::fence_budget(timers_); }
  // A graceful demotion's budget at `now`: it may use the time until the deadline (renewals go
  // on meanwhile) plus the fence budget, since a fence at the deadline would wait for it.
  static std::chrono::milliseconds graceful_budget(TimePoint deadline, TimePoint now,
                                                   std::chrono::milliseconds fence_budget);

 private:
  enum class Phase { starting, passive, promoting, active, demoting, releasing, stopped };

  bool holding() const;
  bool check_deadline(TimePoint now);
  void drop_tenure(TimePoint now, std::string_view reason);
  void maybe_renew(TimePoint now);
  void maybe_acquire(TimePoint now);
  void begin_demotion(std::string_view reason, const std::optional<std::string>& to);
  void maybe_finish();
  void release_os_lock();
  void set_role(Role to, std::string_view reason);
  void set_not_active(std::string_view reason, const std::string& detail = {});
  std::chrono::milliseconds os_lock_backoff() const;

  const std::string node_id_;
  const Timers timers_;
  MachineEnv& env_;
  const log::Logger log_{"role"};
  const bool fast_path_;

  Phase phase_ = Phase::starting;
  Role role_ = Role::starting;
  bool stop_requested_ = false;
  bool paused_ = false;

  // The tenure: the lease we hold (promoting, active, demoting, releasing), else 0.
  std::uint64_t epoch_ = 0;
  std::string promote_reason_;  // reason::kAcquired or kFastPath
  TimePoint deadline_{};
  TimePoint renewed_at_{};  // start of the last successful renewal (or of the acquisition)
  TimePoint renew_started_{};
  TimePoint next_renew_at_{};
  bool renew_in_flight_ = false;
  bool renew_unreachable_ = false;  // the last renewal failed with UnreachableError

  // While passive: the next attempts, and the same-host OS lock.
  bool acquire_in_flight_ = false;
  bool acquire_with_os_lock_ = false;
  bool os_lock_held_ = false;
  int releases_in_flight_ = 0;
  TimePoint acquire_started_{};
  TimePoint next_acquire_at_{};
  TimePoint not_before_{};  // no acquisition before this (after a veto or a switchover)
  TimePoint os_lock_retry_at_{};

  // Graceful demotion in progress: why, and to whom the lease is handed (switchover --to).
  std::string demote_reason_;
  std::string handover_to_;

  std::string not_active_reason_;
  std::optional<LeaseView> lease_;
  std::string logged_refusal_;  // reason|holder|epoch of the last role.not_promoting record
  std::optional<Transition> last_transition_;
  std::uint64_t transitions_ = 0;
};

}  // namespace emsnode::role
