#include "role/role_machine.hpp"

#include <algorithm>
#include <utility>

namespace emsnode::role {
namespace {

using std::chrono::milliseconds;

std::string ms_text(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count());
}

}  // namespace

milliseconds fence_budget(const Timers& timers) {
  return std::max(milliseconds(50), timers.lease_ttl - timers.renew_deadline - milliseconds(100));
}

RoleMachine::RoleMachine(std::string node_id, Timers timers, bool fast_path, MachineEnv& env)
    : node_id_(std::move(node_id)), timers_(timers), env_(env), fast_path_(fast_path) {}

milliseconds RoleMachine::graceful_budget(TimePoint deadline, TimePoint now,
                                          milliseconds fence_budget) {
  return std::max(milliseconds(50),
                  std::chrono::duration_cast<milliseconds>(deadline - now) + fence_budget);
}

// A passive that took the OS lock but could not take the lease gives the lock back for at least
// one renew_interval: the live active tries the lock before each renewal, so it is sure to find
// it free once and record it in the lease row (only then can a passive prove the active's death).
milliseconds RoleMachine::os_lock_backoff() const {
  return std::max(timers_.poll_interval, timers_.renew_interval);
}

bool RoleMachine::holding() const {
  return phase_ == Phase::promoting || phase_ == Phase::active || phase_ == Phase::demoting;
}

std::optional<TimePoint> RoleMachine::deadline() const {
  if (!holding()) return std::nullopt;
  return deadline_;
}

void RoleMachine::start(TimePoint now) {
  if (phase_ != Phase::starting) return;
  phase_ = Phase::passive;
  next_acquire_at_ = now;
  set_role(Role::passive, reason::kStarted);
  if (paused_) set_not_active(reason::kPaused);
  tick(now);
}

void RoleMachine::tick(TimePoint now) {
  if (phase_ == Phase::starting || phase_ == Phase::stopped) return;
  check_deadline(now);
  if (holding()) maybe_renew(now);
  if (phase_ == Phase::passive) maybe_acquire(now);
  maybe_finish();
}

// Every event checks the deadline before it looks at anything else: after a stall (a stuck
// thread, SIGSTOP) nothing that arrives late may extend a lease this node can no longer trust.
bool RoleMachine::check_deadline(TimePoint now) {
  if (!holding() || now < deadline_) return false;
  const std::string_view why = renew_unreachable_ ? reason::kDbUnreachable : reason::kRenewDeadline;
  log_.warning("role.self_fenced", {{"epoch", std::to_string(epoch_)},
                                    {"reason", std::string(why)},
                                    {"since_renewal_ms", ms_text(now - renewed_at_)},
                                    {"budget_ms", std::to_string(fence_budget().count())}});
  drop_tenure(now, why);
  // Stay out for one lease period. A node that froze may wake while a peer is still held up
  // (on SQLite, behind the write lock the frozen node had): taking the lease straight back
  // would undo the failover the fence was for.
  not_before_ = now + timers_.lease_ttl;
  return true;
}

// Stops serving at once, without hooks: a fence, a lost lease, or a stop or pause that arrives
// while the promotion is still under way.
void RoleMachine::drop_tenure(TimePoint now, std::string_view why) {
  const std::uint64_t epoch = epoch_;
  const bool was_active = role_ == Role::active;
  const bool served = env_.fence(epoch, fence_budget());
  // Only now, with the plugins stopped: holding the OS lock means "I may be serving".
  release_os_lock();
  if (served) env_.start_post_demote_hooks(epoch, why);
  if (why != reason::kLeaseLost) {
    // The row may still name us (a fence, a stop while promoting). Ending it lets a peer take
    // over without waiting for the expiry; after a fence the release is queued behind the stuck
    // renewal on the database worker, so it also ends whatever that renewal extended.
    ++releases_in_flight_;
    env_.start_release(epoch, {});
  }
  phase_ = Phase::passive;
  renew_in_flight_ = false;
  demote_reason_.clear();
  handover_to_.clear();
  next_acquire_at_ = now + timers_.poll_interval;
  if (was_active) {
    set_role(stop_requested_ ? Role::stopping : Role::passive, why);
  } else if (served) {
    // Actions::promote had run but its outcome had not reached us yet.
    log_.warning("role.demoted", {{"epoch", std::to_string(epoch)}, {"reason", std::string(why)}});
  }
  epoch_ = 0;
  if (!stop_requested_) set_not_active(paused_ ? reason::kPaused : why);
}

void RoleMachine::maybe_renew(TimePoint now) {
  if (renew_in_flight_ || now < next_renew_at_) return;
  // An active that lacks the OS lock (a passive held it when we took the lease) takes it as soon
  // as it is free and records it with this renewal, so that its death can be proved by it.
  if (fast_path_ && !os_lock_held_) os_lock_held_ = env_.try_os_lock();
  renew_in_flight_ = true;
  renew_started_ = now;
  env_.start_renew(epoch_, os_lock_held_);
}

void RoleMachine::maybe_acquire(TimePoint now) {
  if (acquire_in_flight_ || stop_requested_ || paused_ || now < not_before_) return;
  if (fast_path_ && !os_lock_held_ && now >= os_lock_retry_at_) {
    os_lock_held_ = env_.try_os_lock();
    if (!os_lock_held_) os_lock_retry_at_ = now + kOsLockPoll;
  }
  // With the OS lock in hand, try at once: the holder may just have died.
  if (!os_lock_held_ && now < next_acquire_at_) return;
  acquire_in_flight_ = true;
  acquire_with_os_lock_ = os_lock_held_;
  acquire_started_ = now;
  env_.start_acquire(os_lock_held_);
}

void RoleMachine::on_acquire_result(TimePoint now, const AcquireOutcome& outcome) {
  if (!acquire_in_flight_) return;
  acquire_in_flight_ = false;
  next_acquire_at_ = now + timers_.poll_interval;
  if (outcome.lease) lease_ = outcome.lease;
  if (outcome.kind == AcquireOutcome::Kind::acquired) {
    std::string_view give_back;
    if (stop_requested_) {
      give_back = reason::kShutdown;
    } else if (paused_) {
      give_back = reason::kPaused;
    } else if (now >= acquire_started_ + timers_.renew_deadline) {
      // The acquisition took so long that the lease may expire before we could fence.
      give_back = reason::kRenewDeadline;
    }
    if (!give_back.empty()) {
      log_.info("lease.returned",
                {{"epoch", std::to_string(outcome.epoch)}, {"reason", std::string(give_back)}});
      release_os_lock();
      ++releases_in_flight_;
      env_.start_release(outcome.epoch, {});
      if (!stop_requested_ && !paused_) set_not_active(give_back);
    } else {
      phase_ = Phase::promoting;
      epoch_ = outcome.epoch;
      promote_reason_ = outcome.fast_path ? reason::kFastPath : reason::kAcquired;
      // The lease runs from before the acquisition's transaction on the database's clock, so
      // counting from its start on ours keeps the deadline on the safe side.
      renewed_at_ = acquire_started_;
      deadline_ = acquire_started_ + timers_.renew_deadline;
      next_renew_at_ = acquire_started_ + timers_.renew_interval;
      renew_in_flight_ = false;
      renew_unreachable_ = false;
      not_active_reason_ = reason::kPromoting;
      logged_refusal_.clear();
      log_.info("lease.acquired", {{"epoch", std::to_string(epoch_)},
                                   {"reason", promote_reason_},
                                   {"os_lock", os_lock_held_ ? "1" : "0"}});
      env_.start_promotion(epoch_, promote_reason_);
    }
  } else {
    if (acquire_with_os_lock_) {
      release_os_lock();
      os_lock_retry_at_ = now + os_lock_backoff();
    }
    if (!stop_requested_ && !paused_) {
      switch (outcome.kind) {
        case AcquireOutcome::Kind::refused: {
          const bool reserved = outcome.lease && !outcome.lease->handover_to.empty() &&
                                outcome.lease->handover_to != node_id_;
          set_not_active(reserved ? reason::kHandover : reason::kLeaseHeld);
          break;
        }
        case AcquireOutcome::Kind::blocked:
          set_not_active(outcome.reason);
          break;
        case AcquireOutcome::Kind::failed:
        case AcquireOutcome::Kind::acquired:
          set_not_active(reason::kDbUnreachable, outcome.error);
          break;
      }
    }
  }
  tick(now);
}

void RoleMachine::on_renew_result(TimePoint now, std::uint64_t epoch, const RenewOutcome& outcome) {
  if (phase_ == Phase::starting || phase_ == Phase::stopped) return;
  // The deadline first: a renewal that succeeds only after it (a stall, SIGSTOP) is ignored.
  check_deadline(now);
  if (holding() && epoch == epoch_ && renew_in_flight_) {
    renew_in_flight_ = false;
    next_renew_at_ = renew_started_ + timers_.renew_interval;
    switch (outcome.kind) {
      case RenewOutcome::Kind::renewed:
        // Counted from when the renewal started, never from when it completed: the database set
        // the new expiry at some instant in between.
        renewed_at_ = renew_started_;
        deadline_ = renew_started_ + timers_.renew_deadline;
        renew_unreachable_ = false;
        lease_ = LeaseView{node_id_, epoch_, timers_.lease_ttl.count(), os_lock_held_, {}};
        break;
      case RenewOutcome::Kind::lost:
        log_.warning("lease.lost", {{"epoch", std::to_string(epoch_)}});
        drop_tenure(now, reason::kLeaseLost);
        break;
      case RenewOutcome::Kind::failed:
        renew_unreachable_ = outcome.unreachable;
        log_.warning("lease.renew_failed", {{"epoch", std::to_string(epoch_)},
                                            {"error", outcome.error},
                                            {"fence_in_ms", ms_text(deadline_ - now)}});
        break;
    }
  }
  tick(now);
}

void RoleMachine::on_promotion_result(TimePoint now, std::uint64_t epoch,
                                      const PromotionOutcome& outcome) {
  if (phase_ == Phase::starting || phase_ == Phase::stopped) return;
  check_deadline(now);
  // Anything else is stale: the tenure was dropped (and fenced) before this arrived.
  if (phase_ == Phase::promoting && epoch == epoch_) {
    switch (outcome.kind) {
      case PromotionOutcome::Kind::promoted:
        phase_ = Phase::active;
        not_active_reason_.clear();
        set_role(Role::active, promote_reason_);
        break;
      case PromotionOutcome::Kind::vetoed:
      case PromotionOutcome::Kind::failed: {
        // Nothing serves: hand the lease straight back and stay out for one lease_ttl, so that
        // another node takes it rather than this one again.
        release_os_lock();
        ++releases_in_flight_;
        env_.start_release(epoch_, {});
        phase_ = Phase::passive;
        epoch_ = 0;
        renew_in_flight_ = false;
        not_before_ = now + timers_.lease_ttl;
        next_acquire_at_ = not_before_;
        set_not_active(outcome.kind == PromotionOutcome::Kind::vetoed ? reason::kHookVeto
                                                                      : reason::kPromoteFailed,
                       outcome.detail);
        break;
      }
      case PromotionOutcome::Kind::aborted:
        break;
    }
  }
  tick(now);
}

void RoleMachine::on_demoted(TimePoint now, std::uint64_t epoch) {
  if (phase_ == Phase::starting || phase_ == Phase::stopped) return;
  check_deadline(now);
  if (phase_ == Phase::demoting && epoch == epoch_) {
    phase_ = Phase::releasing;
    set_role(stop_requested_ ? Role::stopping : Role::passive,
             stop_requested_ ? reason::kShutdown : std::string_view(demote_reason_));
    ++releases_in_flight_;
    env_.start_release(epoch_, handover_to_);
  }
  tick(now);
}

void RoleMachine::on_released(TimePoint now, std::uint64_t epoch, bool released) {
  if (releases_in_flight_ > 0) --releases_in_flight_;
  if (released) log_.info("lease.released", {{"epoch", std::to_string(epoch)}});
  if (phase_ == Phase::releasing && epoch == epoch_) {
    // Only now that the release (and its handover reservation) is written: a same-host passive
    // with the OS lock could otherwise take the lease by the fast path before the reservation.
    release_os_lock();
    env_.start_post_demote_hooks(epoch, demote_reason_);
    phase_ = Phase::passive;
    epoch_ = 0;
    next_acquire_at_ = now + timers_.poll_interval;
    if (reason::is_handover(demote_reason_)) {
      // Every healthy passive polls at least twice in one lease_ttl (poll_interval <= ttl / 2),
      // so while this node stays out one of them takes the lease: the role really moves.
      not_before_ = now + timers_.lease_ttl;
      next_acquire_at_ = not_before_;
    }
    if (!stop_requested_) set_not_active(paused_ ? reason::kPaused : demote_reason_);
    demote_reason_.clear();
    handover_to_.clear();
  }
  tick(now);
}

void RoleMachine::on_release_notified(TimePoint now) {
  if (phase_ == Phase::passive) next_acquire_at_ = std::min(next_acquire_at_, now);
  tick(now);
}

void RoleMachine::pause(TimePoint now) {
  if (paused_ || phase_ == Phase::stopped) return;
  check_deadline(now);
  paused_ = true;
  log_.info("role.paused", {{"role", std::string(role_name(role_))}});
  switch (phase_) {
    case Phase::starting:
    case Phase::passive:
      if (os_lock_held_ && !acquire_in_flight_) release_os_lock();
      set_not_active(reason::kPaused);
      break;
    case Phase::promoting:
      drop_tenure(now, reason::kPaused);
      break;
    case Phase::active:
      begin_demotion(reason::kPaused, std::nullopt);
      break;
    case Phase::demoting:
    case Phase::releasing:
    case Phase::stopped:
      break;  // a demotion under way ends passive, and paused_ keeps it there
  }
  tick(now);
}

void RoleMachine::resume(TimePoint now) {
  if (!paused_) return;
  paused_ = false;
  log_.info("role.resumed", {{"role", std::string(role_name(role_))}});
  if (not_active_reason_ == reason::kPaused) not_active_reason_.clear();
  logged_refusal_.clear();
  next_acquire_at_ = now;
  tick(now);
}

std::string RoleMachine::switchover(TimePoint now, const std::optional<std::string>& to,
                                    std::string_view why) {
  check_deadline(now);
  if (phase_ == Phase::demoting || phase_ == Phase::releasing) {
    return "switchover: this node is already handing over the role (" + demote_reason_ + ")";
  }
  if (phase_ != Phase::active) {
    std::string text = "switchover: this node (" + node_id_ + ") is not the active (role " +
                       std::string(role_name(role_));
    if (!not_active_reason_.empty()) text += ", " + not_active_reason_;
    text += ")";
    if (lease_ && !lease_->holder.empty() && lease_->holder != node_id_ &&
        lease_->expires_in_ms > 0) {
      text += "; the lease is held by " + lease_->holder + " at epoch " +
              std::to_string(lease_->epoch) + ": run the switchover there";
    }
    return text;
  }
  if (to && to->empty()) return "switchover: the target node id is empty";
  if (to && *to == node_id_) {
    return "switchover: the target " + node_id_ + " is this node, which is already the active";
  }
  log_.info("role.switchover", {{"epoch", std::to_string(epoch_)},
                                {"to", to.value_or("any")},
                                {"reason", std::string(why)}});
  begin_demotion(why, to);
  tick(now);
  return {};
}

void RoleMachine::stop(TimePoint now) {
  if (stop_requested_ || phase_ == Phase::stopped) return;
  check_deadline(now);
  stop_requested_ = true;
  not_active_reason_ = reason::kShutdown;
  switch (phase_) {
    case Phase::starting:
      phase_ = Phase::passive;  // nothing held: maybe_finish() completes at once
      set_role(Role::stopping, reason::kShutdown);
      break;
    case Phase::promoting:
      drop_tenure(now, reason::kShutdown);
      set_role(Role::stopping, reason::kShutdown);
      break;
    case Phase::passive:
    case Phase::releasing:
      set_role(Role::stopping, reason::kShutdown);
      break;
    case Phase::active:
      begin_demotion(reason::kShutdown, std::nullopt);
      break;
    case Phase::demoting:  // on_demoted goes on to stopping
    case Phase::stopped:
      break;
  }
  maybe_finish();
}

void RoleMachine::begin_demotion(std::string_view why, const std::optional<std::string>& to) {
  phase_ = Phase::demoting;
  demote_reason_ = why;
  handover_to_ = to.value_or("");
  env_.start_demotion(epoch_, why);
}

void RoleMachine::maybe_finish() {
  if (!stop_requested_ || phase_ != Phase::passive || acquire_in_flight_ ||
      releases_in_flight_ > 0) {
    return;
  }
  release_os_lock();
  phase_ = Phase::stopped;
  env_.finished();
}

void RoleMachine::release_os_lock() {
  if (!os_lock_held_) return;
  env_.release_os_lock();
  os_lock_held_ = false;
}

std::optional<TimePoint> RoleMachine::next_wakeup(TimePoint now) const {
  std::optional<TimePoint> wake;
  const auto take = [&](TimePoint at) {
    if (!wake || at < *wake) wake = at;
  };
  if (holding()) {
    take(deadline_);
    if (!renew_in_flight_) take(next_renew_at_);
  }
  if (phase_ == Phase::passive && !stop_requested_ && !paused_ && !acquire_in_flight_) {
    if (now < not_before_) {
      take(not_before_);
    } else {
      take(next_acquire_at_);
      if (fast_path_ && !os_lock_held_) take(os_lock_retry_at_);
    }
  }
  return wake;
}

RoleStatus RoleMachine::status() const {
  RoleStatus status;
  status.role = role_;
  status.epoch = role_ == Role::active ? epoch_ : 0;
  if (role_ != Role::active) status.not_active_reason = not_active_reason_;
  status.lease = lease_;
  status.last_transition = last_transition_;
  status.paused = paused_;
  status.transitions = transitions_;
  return status;
}

double RoleMachine::lease_remaining_seconds(TimePoint now) const {
  double seconds = 0;
  if (holding()) {
    seconds = std::chrono::duration<double>(renewed_at_ + timers_.lease_ttl - now).count();
  } else if (lease_) {
    seconds = static_cast<double>(lease_->expires_in_ms) / 1000.0;
  }
  return std::max(0.0, seconds);
}

void RoleMachine::set_role(Role to, std::string_view why) {
  if (to == role_) return;
  Transition transition;
  transition.from = role_;
  transition.to = to;
  transition.reason = std::string(why);
  transition.epoch = epoch_;
  transition.at = std::chrono::system_clock::now();
  role_ = to;
  last_transition_ = transition;
  ++transitions_;
  const log::Fields fields = {{"epoch", std::to_string(transition.epoch)},
                              {"reason", transition.reason},
                              {"from", std::string(role_name(transition.from))},
                              {"to", std::string(role_name(to))}};
  if (to == Role::active) {
    log_.info("role.promoted", fields);
  } else if (transition.from == Role::active) {
    const bool planned =
        reason::is_handover(why) || why == reason::kPaused || why == reason::kShutdown;
    if (planned) {
      log_.info("role.demoted", fields);
    } else {
      log_.warning("role.demoted", fields);
    }
  } else {
    log_.info("role.changed", fields);
  }
  env_.transitioned(transition);
}

// Logged only when the reason (or the holder it names) changes: a passive polls every
// poll_interval and would otherwise repeat itself several times a second.
void RoleMachine::set_not_active(std::string_view why, const std::string& detail) {
  not_active_reason_ = std::string(why);
  std::string key(why);
  log::Fields fields = {{"reason", std::string(why)}};
  if ((why == reason::kLeaseHeld || why == reason::kHandover) && lease_) {
    key += "|" + lease_->holder + "|" + std::to_string(lease_->epoch);
    fields.push_back({"holder", lease_->holder});
    fields.push_back({"epoch", std::to_string(lease_->epoch)});
    if (!lease_->handover_to.empty()) fields.push_back({"handover_to", lease_->handover_to});
  }
  if (key == logged_refusal_) return;
  logged_refusal_ = key;
  if (!detail.empty()) fields.push_back({"detail", detail});
  log_.info("role.not_promoting", fields);
}

}  // namespace emsnode::role
