// The threaded wrapper around RoleMachine. Three threads, each with one job, so that nothing slow
// can delay the one thing that must never be late, the self-fence:
//
//   control  Boost.Asio io_context: the machine, its one timer, the same-host OS lock, fencing
//   db       one lease call at a time (acquire, renew, release), results posted back to control
//   hooks    pre_promote hooks + Actions::promote + post_promote hooks, graceful demotions,
//            post_demote hooks (in order, one at a time)
// and a fourth where the backend has notifications (PostgreSQL):
//   listen   waits on its own connection for a peer's release and pokes the machine, so that a
//            passive takes a released lease at once instead of at its next poll
//
// Actions::promote and Actions::demote never overlap: both run under actions_mutex_, taken by
// the hook thread (promotion, graceful demotion) and by the control thread (fence). A fence that
// arrives while Actions::promote runs waits for it (promote must return within its budget); a
// fence never waits for a hook.
#include "role/role_manager.hpp"

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "db/file_lock.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "role/hooks.hpp"
#include "role/lease_store.hpp"
#include "role/role_machine.hpp"

namespace emsnode::role {
namespace {

using std::chrono::milliseconds;

class SteadyClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
};

constexpr std::array<Role, 4> kRoles = {Role::starting, Role::passive, Role::active,
                                        Role::stopping};

std::string ms(milliseconds value) {
  return std::to_string(value.count()) + " ms";
}

}  // namespace

bool reason::is_handover(std::string_view why) {
  return why == kSwitchover || why.rfind(std::string(kPluginFailed) + ":", 0) == 0;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::starting:
      return "starting";
    case Role::passive:
      return "passive";
    case Role::active:
      return "active";
    case Role::stopping:
      return "stopping";
  }
  return "unknown";
}

const Clock& steady_clock() {
  static const SteadyClock clock;
  return clock;
}

// The defaults (lease_ttl 2000, renew_interval 400, renew_deadline 1200, poll_interval 200 ms):
// - three renewals fit before the deadline, so one slow or failed renewal (a busy SQLite file, a
//   PostgreSQL hiccup) never fences a healthy active;
// - the 800 ms between deadline and expiry hold the fence (700 ms for Actions::demote) and a
//   100 ms margin for clock rates and scheduling;
// - a crashed active on another host is replaced within about lease_ttl + poll_interval (2.2 s);
//   on the same host the OS lock makes it immediate; a released lease is seen within 200 ms;
// - every passive polls at least twice per lease_ttl, which is what makes a switchover move.
std::string check_timers(const Timers& timers) {
  const std::pair<const char*, milliseconds> all[] = {{"lease_ttl", timers.lease_ttl},
                                                      {"renew_interval", timers.renew_interval},
                                                      {"renew_deadline", timers.renew_deadline},
                                                      {"poll_interval", timers.poll_interval}};
  for (const auto& [key, value] : all) {
    if (value <= milliseconds(0)) {
      return std::string("[role] ") + key + " must be greater than 0 (got " + ms(value) + ")";
    }
  }
  if (timers.lease_ttl > std::chrono::seconds(60)) {
    return "[role] lease_ttl (" + ms(timers.lease_ttl) +
           ") must be at most 60 s: a longer lease only delays failover";
  }
  if (timers.renew_interval * 2 > timers.renew_deadline) {
    return "[role] renew_interval (" + ms(timers.renew_interval) +
           ") * 2 must be <= " + "renew_deadline (" + ms(timers.renew_deadline) +
           "): the active needs two tries to renew before it self-fences";
  }
  if (timers.renew_deadline + milliseconds(200) > timers.lease_ttl) {
    return "[role] renew_deadline (" + ms(timers.renew_deadline) +
           ") + 200 ms must be <= " + "lease_ttl (" + ms(timers.lease_ttl) +
           "): a self-fencing active needs that time to stop serving before a peer may take "
           "the lease";
  }
  if (timers.poll_interval * 2 > timers.lease_ttl) {
    return "[role] poll_interval (" + ms(timers.poll_interval) + ") must be <= lease_ttl (" +
           ms(timers.lease_ttl) + ") / 2: a passive must look at least twice per lease";
  }
  return {};
}

class RoleManager::Impl final : public MachineEnv {
 public:
  Impl(db::Database& database, std::unique_ptr<LeaseStore> store, std::string node_id,
       Timers timers, Hooks hooks, Actions actions,
       std::optional<std::filesystem::path> fast_path_lock,
       std::function<std::string()> schema_blocker, metrics::MetricsRegistry& metrics,
       const Clock& clock)
      : store_(store ? std::move(store) : std::make_unique<SqlLeaseStore>(database)),
        node_id_(std::move(node_id)),
        timers_(timers),
        hooks_(std::move(hooks)),
        actions_(std::move(actions)),
        lock_path_(fast_path_lock ? std::optional<std::string>(fast_path_lock->string())
                                  : std::nullopt),
        schema_blocker_(std::move(schema_blocker)),
        clock_(clock),
        metrics_(metrics),
        epoch_gauge_(metrics.gauge("emsnode_lease_epoch",
                                   "The lease's epoch (fencing token) as this node last saw it")),
        remaining_gauge_(metrics.gauge(
            "emsnode_lease_remaining_seconds",
            "Seconds the lease has left as this node knows it (the holder counts from the start "
            "of its last successful renewal)")),
        renew_seconds_(
            metrics.histogram("emsnode_lease_renew_seconds", "Time one lease renewal took", {},
                              {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
        timer_(control_io_),
        listener_(database.listen(kLeaseChannel)),
        machine_(node_id_, timers_, lock_path_.has_value(), *this) {
    for (std::size_t i = 0; i < kRoles.size(); ++i) {
      role_gauges_[i] = &metrics.gauge("emsnode_role", "1 for this node's current role, else 0",
                                       {{"role", std::string(role_name(kRoles[i]))}});
    }
    publish();
  }

  void start() {
    std::lock_guard lock(lifecycle_mutex_);
    if (lifecycle_ != Lifecycle::created) {
      throw std::logic_error("RoleManager::start() called twice or after stop()");
    }
    control_work_.emplace(control_io_.get_executor());
    db_work_.emplace(db_io_.get_executor());
    hook_work_.emplace(hook_io_.get_executor());
    db_thread_ = std::thread([this] { log::keep_running(log_, "role.thread_error", [this] { db_io_.run(); }); });
    hook_thread_ = std::thread([this] { log::keep_running(log_, "role.thread_error", [this] { hook_io_.run(); }); });
    if (listener_) listen_thread_ = std::thread([this] { listen_for_releases(); });
    boost::asio::post(control_io_,
                      [this] { handle([this](TimePoint now) { machine_.start(now); }); });
    control_thread_ = std::thread([this] {
      control_thread_id_.store(std::this_thread::get_id());
      log::keep_running(log_, "role.thread_error", [this] { control_io_.run(); });
    });
    lifecycle_ = Lifecycle::running;
  }

  void stop() {
    if (std::this_thread::get_id() == control_thread_id_.load()) {
      throw std::logic_error(
          "RoleManager::stop() called from an on_transition observer: it would "
          "wait for itself");
    }
    std::lock_guard lock(lifecycle_mutex_);
    if (lifecycle_ == Lifecycle::stopped) return;
    if (lifecycle_ == Lifecycle::running) {
      boost::asio::post(control_io_,
                        [this] { handle([this](TimePoint now) { machine_.stop(now); }); });
      control_thread_.join();
      control_thread_id_.store(std::thread::id());  // ids are reused by later threads
      listening_.store(false);
      if (listen_thread_.joinable()) listen_thread_.join();
      // The workers finish what is queued (post_demote hooks, a late renewal), then exit.
      db_work_.reset();
      db_thread_.join();
      hook_work_.reset();
      hook_thread_.join();
    }
    lifecycle_ = Lifecycle::stopped;
  }

  void pause() {
    on_control([this](TimePoint now) {
      machine_.pause(now);
      return std::string();
    });
  }

  void resume() {
    on_control([this](TimePoint now) {
      machine_.resume(now);
      return std::string();
    });
  }

  void switchover(const std::optional<std::string>& to, std::string_view why) {
    const std::string refusal =
        on_control([this, &to, why](TimePoint now) { return machine_.switchover(now, to, why); });
    if (!refusal.empty()) throw std::runtime_error(refusal);
  }

  RoleStatus status() const {
    std::lock_guard lock(status_mutex_);
    return status_;
  }

  void on_transition(std::function<void(const Transition&)> observer) {
    std::lock_guard lock(observers_mutex_);
    observers_.push_back(std::move(observer));
  }

  // MachineEnv, called on the control thread.

  void start_acquire(bool have_os_lock) override {
    boost::asio::post(db_io_, [this, have_os_lock] {
      AcquireOutcome outcome = acquire(have_os_lock);
      deliver([this, outcome](TimePoint now) { machine_.on_acquire_result(now, outcome); });
    });
  }

  void start_renew(std::uint64_t epoch, bool have_os_lock) override {
    boost::asio::post(db_io_, [this, epoch, have_os_lock] {
      RenewOutcome outcome;
      const auto started = std::chrono::steady_clock::now();
      try {
        outcome.kind = store_->renew(node_id_, epoch, timers_.lease_ttl, have_os_lock)
                           ? RenewOutcome::Kind::renewed
                           : RenewOutcome::Kind::lost;
      } catch (const db::UnreachableError& error) {
        outcome.unreachable = true;
        outcome.error = error.what();
      } catch (const std::exception& error) {
        outcome.error = error.what();
      }
      renew_seconds_.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      deliver(
          [this, epoch, outcome](TimePoint now) { machine_.on_renew_result(now, epoch, outcome); });
    });
  }

  void start_release(std::uint64_t epoch, const std::string& handover_to) override {
    boost::asio::post(db_io_, [this, epoch, handover_to] {
      if (!handover_to.empty()) reserve(epoch, handover_to);
      bool released = false;
      try {
        released = store_->release(node_id_, epoch);
        if (!released) {
          log_.info("lease.not_released",
                    {{"epoch", std::to_string(epoch)}, {"reason", "no longer held by this node"}});
        }
      } catch (const std::exception& error) {
        log_.warning("lease.release_failed",
                     {{"epoch", std::to_string(epoch)}, {"error", error.what()}});
      }
      deliver(
          [this, epoch, released](TimePoint now) { machine_.on_released(now, epoch, released); });
    });
  }

  void start_promotion(std::uint64_t epoch, std::string_view why) override {
    {
      std::lock_guard lock(actions_mutex_);
      promotable_epoch_ = epoch;
    }
    boost::asio::post(hook_io_,
                      [this, epoch, why = std::string(why)] { run_promotion(epoch, why); });
  }

  void start_demotion(std::uint64_t epoch, std::string_view why) override {
    boost::asio::post(hook_io_, [this, epoch, why = std::string(why)] {
      run_hooks(hooks_.pre_demote, {HookEvent::pre_demote, epoch, node_id_, why}, hooks_.timeout,
                false);
      {
        std::lock_guard lock(actions_mutex_);
        if (serving_ && promoted_epoch_ == epoch) {
          call_demote(graceful_budget());
          serving_ = false;
        }
      }
      deliver([this, epoch](TimePoint now) { machine_.on_demoted(now, epoch); });
    });
  }

  void start_post_demote_hooks(std::uint64_t epoch, std::string_view why) override {
    boost::asio::post(hook_io_, [this, epoch, why = std::string(why)] {
      run_hooks(hooks_.post_demote, {HookEvent::post_demote, epoch, node_id_, why}, hooks_.timeout,
                false);
    });
  }

  bool fence(std::uint64_t epoch, milliseconds budget) override {
    std::lock_guard lock(actions_mutex_);
    if (promotable_epoch_ == epoch) promotable_epoch_ = 0;
    if (serving_ && promoted_epoch_ == epoch) {
      if (actions_.fence) actions_.fence();
      call_demote(budget);
      serving_ = false;
    }
    return promoted_epoch_ == epoch;
  }

  bool try_os_lock() override {
    try {
      os_lock_ = db::FileLock::try_lock(*lock_path_);
      os_lock_error_logged_ = false;
      return os_lock_.has_value();
    } catch (const std::exception& error) {
      // Without the lock this node still works, through the lease's expiry alone.
      if (!os_lock_error_logged_) {
        log_.warning("lease.os_lock_failed", {{"path", *lock_path_}, {"error", error.what()}});
        os_lock_error_logged_ = true;
      }
      return false;
    }
  }

  void release_os_lock() override { os_lock_.reset(); }

  void transitioned(const Transition& transition) override {
    metrics_
        .counter("emsnode_role_transitions_total", "Role changes of this node, by reason",
                 {{"reason", transition.reason}})
        .add(1);
    std::vector<std::function<void(const Transition&)>> observers;
    {
      std::lock_guard lock(observers_mutex_);
      observers = observers_;
    }
    for (const auto& observer : observers) {
      try {
        observer(transition);
      } catch (const std::exception& error) {
        log_.error("role.observer_failed", {{"error", error.what()}});
      }
    }
  }

  void finished() override {
    timer_.cancel();
    control_work_.reset();
    control_io_.stop();
  }

 private:
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  enum class Lifecycle { created, running, stopped };
  // How long the listen thread waits at a time: it checks for stop() in between.
  static constexpr milliseconds kListenSlice{200};

  // Runs `body(now)` as one machine event on the control thread and returns its answer. Before
  // start() the caller's thread owns the machine and runs it directly.
  template <typename Body>
  std::string on_control(Body body) {
    if (std::this_thread::get_id() == control_thread_id_.load()) {
      throw std::logic_error(
          "RoleManager: pause, resume and switchover cannot be called from an "
          "on_transition observer");
    }
    std::lock_guard lock(lifecycle_mutex_);
    if (lifecycle_ == Lifecycle::stopped) throw std::runtime_error("the role manager has stopped");
    if (lifecycle_ == Lifecycle::created) {
      std::string answer = body(clock_.now());
      publish();
      return answer;
    }
    // Holding lifecycle_mutex_ while waiting keeps stop() from ending the control loop before
    // the task has run; the control thread never takes that mutex.
    // Shared with the handler: the answer can wake us before the task has finished returning.
    auto task = std::make_shared<std::packaged_task<std::string()>>([this, &body] {
      std::string answer = body(clock_.now());
      after_event();
      return answer;
    });
    auto answer = task->get_future();
    boost::asio::post(control_io_, [task] { (*task)(); });
    return answer.get();
  }

  template <typename Event>
  void handle(const Event& event) {
    event(clock_.now());
    after_event();
  }

  // From a worker thread: `event(now)` runs on the control thread.
  template <typename Event>
  void deliver(Event event) {
    boost::asio::post(control_io_, [this, event = std::move(event)] { handle(event); });
  }

  void after_event() {
    publish();
    reschedule();
  }

  void publish() {
    RoleStatus status = machine_.status();
    status.published_at = std::chrono::steady_clock::now();
    const auto deadline = machine_.deadline();
    deadline_ticks_.store(deadline ? deadline->time_since_epoch().count() : 0);
    for (std::size_t i = 0; i < kRoles.size(); ++i) {
      role_gauges_[i]->set(kRoles[i] == status.role ? 1 : 0);
    }
    epoch_gauge_.set(status.lease ? static_cast<double>(status.lease->epoch) : 0);
    remaining_gauge_.set(machine_.lease_remaining_seconds(clock_.now()));
    std::lock_guard lock(status_mutex_);
    status_ = status;
  }

  void reschedule() {
    if (machine_.finished()) return;
    const TimePoint now = clock_.now();
    const auto wake = machine_.next_wakeup(now);
    if (!wake) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(std::max(std::chrono::steady_clock::duration::zero(), *wake - now));
    timer_.async_wait([this](const boost::system::error_code& error) {
      // The only error a timer reports is its cancellation: a newer wakeup replaced it.
      if (error) return;
      handle([this](TimePoint now) { machine_.tick(now); });
    });
  }

  AcquireOutcome acquire(bool have_os_lock) {
    AcquireOutcome outcome;
    try {
      if (schema_blocker_) {
        std::string blocker = schema_blocker_();
        if (!blocker.empty()) {
          outcome.kind = AcquireOutcome::Kind::blocked;
          outcome.reason = std::move(blocker);
          return outcome;
        }
      }
      const AcquireResult result = store_->try_acquire(node_id_, timers_.lease_ttl, have_os_lock);
      outcome.kind =
          result.acquired ? AcquireOutcome::Kind::acquired : AcquireOutcome::Kind::refused;
      outcome.epoch = result.epoch;
      outcome.fast_path = result.fast_path;
      outcome.lease = result.lease;
    } catch (const std::exception& error) {
      // Becomes `db_unreachable`, with the message, in status and in the log.
      outcome.kind = AcquireOutcome::Kind::failed;
      outcome.error = error.what();
    }
    return outcome;
  }

  void reserve(std::uint64_t epoch, const std::string& to) {
    try {
      if (store_->reserve_handover(node_id_, epoch, to, timers_.lease_ttl)) {
        log_.info("role.handover_reserved",
                  {{"epoch", std::to_string(epoch)},
                   {"to", to},
                   {"for_ms", std::to_string(timers_.lease_ttl.count())}});
      } else {
        log_.warning("role.handover_not_reserved", {{"epoch", std::to_string(epoch)},
                                                    {"to", to},
                                                    {"error", "the lease is no longer ours"}});
      }
    } catch (const std::exception& error) {
      // The release still follows: the role moves, only perhaps to another node than `to`.
      log_.warning("role.handover_not_reserved",
                   {{"epoch", std::to_string(epoch)}, {"to", to}, {"error", error.what()}});
    }
  }

  // On the listen thread, until stop(). A notification only wakes the machine; what it does next
  // depends on the lease row, so a lost notification costs one poll_interval at most.
  void listen_for_releases() {
    bool failing = false;
    while (listening_.load()) {
      try {
        if (listener_->wait(kListenSlice)) {
          deliver([this](TimePoint now) { machine_.on_release_notified(now); });
        }
        failing = false;
      } catch (const std::exception& error) {
        // The lease calls report the database's state; the listener only says it once.
        if (!failing) log_.warning("lease.listen_failed", {{"error", error.what()}});
        failing = true;
        std::this_thread::sleep_for(std::min(timers_.poll_interval, kListenSlice));
      }
    }
  }

  // On the hook thread.
  void run_promotion(std::uint64_t epoch, const std::string& why) {
    {
      std::lock_guard lock(actions_mutex_);
      if (promotable_epoch_ != epoch) return;  // dropped while queued
    }
    const std::string veto = run_hooks(
        hooks_.pre_promote, {HookEvent::pre_promote, epoch, node_id_, why}, hooks_.timeout, true);
    PromotionOutcome outcome;
    {
      std::lock_guard lock(actions_mutex_);
      if (promotable_epoch_ != epoch) return;  // dropped (fenced) while the hooks ran
      if (!veto.empty()) {
        promotable_epoch_ = 0;
        outcome.kind = PromotionOutcome::Kind::vetoed;
        outcome.detail = veto;
      } else {
        promoted_epoch_ = epoch;
        serving_ = true;
        try {
          if (actions_.promote) actions_.promote(epoch);
          outcome.kind = PromotionOutcome::Kind::promoted;
        } catch (const std::exception& error) {
          log_.error("role.promote_failed",
                     {{"epoch", std::to_string(epoch)}, {"error", error.what()}});
          call_demote(fence_budget(timers_));
          serving_ = false;
          promotable_epoch_ = 0;
          promoted_epoch_ = 0;
          outcome.kind = PromotionOutcome::Kind::failed;
          outcome.detail = error.what();
        }
      }
    }
    deliver([this, epoch, outcome](TimePoint now) {
      machine_.on_promotion_result(now, epoch, outcome);
    });
    if (outcome.kind == PromotionOutcome::Kind::promoted) {
      run_hooks(hooks_.post_promote, {HookEvent::post_promote, epoch, node_id_, why},
                hooks_.timeout, false);
    }
  }

  // Caller holds actions_mutex_.
  void call_demote(milliseconds budget) {
    if (!actions_.demote) return;
    try {
      actions_.demote(budget);
    } catch (const std::exception& error) {
      log_.error("role.demote_failed",
                 {{"error", error.what()}, {"budget_ms", std::to_string(budget.count())}});
    }
  }

  // On the hook thread: the machine's deadline as last published.
  milliseconds graceful_budget() const {
    const auto ticks = deadline_ticks_.load();
    if (ticks == 0) return fence_budget(timers_);
    const TimePoint deadline{TimePoint::duration(ticks)};
    return RoleMachine::graceful_budget(deadline, clock_.now(), fence_budget(timers_));
  }

  const std::unique_ptr<LeaseStore> store_;
  const std::string node_id_;
  const Timers timers_;
  const Hooks hooks_;
  const Actions actions_;
  const std::optional<std::string> lock_path_;
  const std::function<std::string()> schema_blocker_;
  const Clock& clock_;
  const log::Logger log_{"role"};

  metrics::MetricsRegistry& metrics_;
  std::array<metrics::Gauge*, kRoles.size()> role_gauges_{};
  metrics::Gauge& epoch_gauge_;
  metrics::Gauge& remaining_gauge_;
  metrics::Histogram& renew_seconds_;

  boost::asio::io_context control_io_;
  boost::asio::io_context db_io_;
  boost::asio::io_context hook_io_;
  std::optional<WorkGuard> control_work_;
  std::optional<WorkGuard> db_work_;
  std::optional<WorkGuard> hook_work_;
  boost::asio::steady_timer timer_;
  // The listen thread's: nullptr when the backend has no notifications (SQLite).
  const std::unique_ptr<db::Listener> listener_;
  std::thread control_thread_;
  std::thread db_thread_;
  std::thread hook_thread_;
  std::atomic<std::thread::id> control_thread_id_{};
  std::thread listen_thread_;
  std::atomic<bool> listening_{true};

  RoleMachine machine_;                  // the control thread's (the caller's before start())
  std::optional<db::FileLock> os_lock_;  // the control thread's
  bool os_lock_error_logged_ = false;

  std::mutex lifecycle_mutex_;
  Lifecycle lifecycle_ = Lifecycle::created;

  mutable std::mutex status_mutex_;
  RoleStatus status_;
  std::mutex observers_mutex_;
  std::vector<std::function<void(const Transition&)>> observers_;

  std::mutex actions_mutex_;
  std::uint64_t promotable_epoch_ = 0;  // the tenure the hook thread may still promote
  std::uint64_t promoted_epoch_ = 0;    // the last tenure Actions::promote was called for
  bool serving_ = false;                // promoted and not demoted since
  std::atomic<TimePoint::rep> deadline_ticks_{0};  // the machine's deadline; 0: none
};

RoleManager::RoleManager(db::Database& database, std::unique_ptr<LeaseStore> store,
                         std::string node_id, Timers timers, Hooks hooks, Actions actions,
                         std::optional<std::filesystem::path> fast_path_lock,
                         std::function<std::string()> schema_blocker,
                         metrics::MetricsRegistry& metrics, const Clock& clock) {
  if (node_id.empty()) throw std::invalid_argument("the role manager needs a node id");
  if (std::string problem = check_timers(timers); !problem.empty()) {
    throw std::invalid_argument(problem);
  }
  impl_ = std::make_unique<Impl>(database, std::move(store), std::move(node_id), timers,
                                 std::move(hooks), std::move(actions), std::move(fast_path_lock),
                                 std::move(schema_blocker), metrics, clock);
}

RoleManager::~RoleManager() {
  try {
    impl_->stop();
  } catch (const std::exception& error) {
    log::Logger("role").error("role.stop_failed", {{"error", error.what()}});
  }
}

void RoleManager::start() {
  impl_->start();
}
void RoleManager::stop() {
  impl_->stop();
}
void RoleManager::pause() {
  impl_->pause();
}
void RoleManager::resume() {
  impl_->resume();
}
void RoleManager::switchover(std::optional<std::string> to, std::string_view why) {
  impl_->switchover(to, why);
}
RoleStatus RoleManager::status() const {
  return impl_->status();
}
void RoleManager::on_transition(std::function<void(const Transition&)> observer) {
  impl_->on_transition(std::move(observer));
}

}  // namespace emsnode::role
