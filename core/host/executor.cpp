#include "host/executor.hpp"

#include <exception>
#include <utility>

#include <boost/asio/post.hpp>

#include "log/log.hpp"

namespace emsnode::host {

Executor::Executor(std::chrono::milliseconds shutdown_grace,
                   std::chrono::milliseconds slow_callback)
    : shutdown_grace_(shutdown_grace),
      slow_callback_(slow_callback),
      io_(std::make_shared<boost::asio::io_context>(1)),
      work_(boost::asio::make_work_guard(*io_)),
      exit_(std::make_shared<ExitSignal>()) {
  thread_ = std::thread([io = io_, exit = exit_] {
    log::keep_running(log::Logger("host"), "executor.thread_error", [&io] { io->run(); });
    {
      std::lock_guard<std::mutex> lock(exit->mutex);
      exit->exited = true;
    }
    exit->done.notify_all();
  });
}

Executor::~Executor() {
  work_.reset();
  io_->stop();
  std::unique_lock<std::mutex> lock(exit_->mutex);
  const bool exited = exit_->done.wait_for(lock, shutdown_grace_, [this] { return exit_->exited; });
  lock.unlock();
  if (exited) {
    thread_.join();
    return;
  }
  // A plugin callback still runs: leave the thread (and the io_context it holds) behind rather
  // than hold up shutdown.
  log::write("host", log::Level::warning, "executor.abandoned",
             {{"grace_ms", std::to_string(shutdown_grace_.count())}});
  thread_.detach();
}

TaskGroup::TaskGroup(Executor& executor, std::string name)
    : executor_(executor), name_(std::move(name)), slow_callback_(executor.slow_callback()) {}

void TaskGroup::open() {
  std::lock_guard<std::mutex> lock(state_mutex_);
  accepting_ = true;
}

void TaskGroup::stop_accepting() {
  std::lock_guard<std::mutex> lock(state_mutex_);
  accepting_ = false;
}

TaskGroup::CloseResult TaskGroup::close(std::chrono::steady_clock::time_point deadline) {
  CloseResult result;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    accepting_ = false;
    ++generation_;
    result.leaked_timers = timers_.size();
    for (auto& entry : timers_) {
      entry.second->cancelled = true;
      entry.second->timer.cancel();
    }
    timers_.clear();
  }
  if (in_own_callback()) return result;
  if (!callback_mutex_.try_lock_until(deadline)) {
    result.callback_finished = false;
    return result;
  }
  callback_mutex_.unlock();
  return result;
}

bool TaskGroup::post(emsnode_task_fn fn, void* user_data) {
  std::lock_guard<std::mutex> lock(state_mutex_);
  if (!accepting_ || fn == nullptr) return false;
  boost::asio::post(executor_.context(),
                    [weak = weak_from_this(), fn, user_data, generation = generation_] {
                      if (const auto group = weak.lock()) {
                        group->run_posted(fn, user_data, generation);
                      }
                    });
  return true;
}

emsnode_timer_id TaskGroup::timer_start(std::chrono::milliseconds delay,
                                        std::chrono::milliseconds period, emsnode_task_fn fn,
                                        void* user_data) {
  std::lock_guard<std::mutex> lock(state_mutex_);
  if (!accepting_ || fn == nullptr) return 0;
  auto timer = std::make_shared<Timer>(executor_.context(), executor_.next_timer_id(), generation_);
  timer->period = period;
  timer->fn = fn;
  timer->user_data = user_data;
  timer->timer.expires_after(delay);
  timers_.emplace(timer->id, timer);
  arm(timer);
  return timer->id;
}

void TaskGroup::timer_cancel(emsnode_timer_id id) {
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    const auto found = timers_.find(id);
    if (found == timers_.end()) return;
    found->second->cancelled = true;
    found->second->timer.cancel();
    timers_.erase(found);
  }
  // The callback may be running right now on the executor thread; wait for it to return.
  if (!in_own_callback()) {
    std::lock_guard<std::timed_mutex> wait(callback_mutex_);
  }
}

std::size_t TaskGroup::armed_timers() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return timers_.size();
}

void TaskGroup::arm(const std::shared_ptr<Timer>& timer) {
  // The handler holds the group weakly: a pending wait must not keep a plugin's group alive.
  timer->timer.async_wait([weak = weak_from_this(), timer](const boost::system::error_code& ec) {
    if (const auto group = weak.lock()) group->on_timer(timer, ec);
  });
}

void TaskGroup::on_timer(const std::shared_ptr<Timer>& timer, const boost::system::error_code& ec) {
  if (ec) return;  // cancelled
  std::lock_guard<std::timed_mutex> running(callback_mutex_);
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (timer->cancelled || timer->generation != generation_) return;
  }
  invoke(timer->fn, timer->user_data);

  std::lock_guard<std::mutex> lock(state_mutex_);
  if (timer->cancelled || timer->generation != generation_) return;
  if (timer->period.count() == 0) {
    timers_.erase(timer->id);
    return;
  }
  // Keep the rate, but after a stall (a slow callback, a suspended machine) skip the missed
  // ticks instead of firing them back to back.
  const auto now = std::chrono::steady_clock::now();
  auto next = timer->timer.expiry() + timer->period;
  if (next < now) next = now + timer->period;
  timer->timer.expires_at(next);
  arm(timer);
}

void TaskGroup::run_posted(emsnode_task_fn fn, void* user_data, std::uint64_t generation) {
  std::lock_guard<std::timed_mutex> running(callback_mutex_);
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (generation != generation_) return;
  }
  invoke(fn, user_data);
}

void TaskGroup::invoke(emsnode_task_fn fn, void* user_data) {
  callback_thread_.store(std::this_thread::get_id());
  const auto began = std::chrono::steady_clock::now();
  // No exception may cross the C ABI, but a C++ plugin can still let one escape; it must not
  // take the executor thread (and every other plugin's timers) down with it.
  try {
    fn(user_data);
  } catch (const std::exception& e) {
    log::write("host", log::Level::error, "plugin.callback_threw",
               {{"id", name_}, {"reason", e.what()}});
  } catch (...) {
    log::write("host", log::Level::error, "plugin.callback_threw",
               {{"id", name_}, {"reason", "an exception that is not a std::exception"}});
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - began);
  if (elapsed > slow_callback_) {
    log::write("host", log::Level::warning, "plugin.callback_slow",
               {{"id", name_},
                {"elapsed_ms", std::to_string(elapsed.count())},
                {"threshold_ms", std::to_string(slow_callback_.count())}});
  }
  callback_thread_.store(std::thread::id());
}

bool TaskGroup::in_own_callback() const {
  return callback_thread_.load() == std::this_thread::get_id();
}

}  // namespace emsnode::host
