// The host executor: one Boost.Asio io_context and one thread that run every plugin's posted
// tasks and timers, and the TaskGroup through which one plugin uses it.
//
// A TaskGroup gives a plugin the guarantees of the ABI:
//  - callbacks of one group never run concurrently (one thread runs them, under the group's
//    callback lock);
//  - cancel() returns only once the timer's callback is not running and will not run again,
//    unless it is called from that group's own callback (which would otherwise wait on itself);
//  - work is accepted only between open() and stop_accepting(); close() ends the period: it
//    cancels every timer still armed (the caller reports them as leaked) and drops tasks not
//    yet run, so nothing runs with user data the plugin freed in stop.
// A callback that blocks holds up every plugin's callbacks: the contract asks plugins for short
// callbacks and their own threads for long work.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "emsnode/plugin_abi.h"

namespace emsnode::host {

class Executor {
 public:
  // Starts the thread. `shutdown_grace`: how long the destructor waits for a callback that is
  // still running before it leaves the thread behind (detached) rather than block shutdown.
  // `slow_callback`: a plugin callback that runs longer is logged (plugin.callback_slow), since
  // it holds up every other plugin's callbacks.
  explicit Executor(std::chrono::milliseconds shutdown_grace,
                    std::chrono::milliseconds slow_callback = std::chrono::milliseconds(250));
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  ~Executor();

  boost::asio::io_context& context() { return *io_; }
  std::chrono::milliseconds slow_callback() const { return slow_callback_; }
  // Timer ids are unique across the executor, and never 0.
  emsnode_timer_id next_timer_id() { return next_timer_id_.fetch_add(1); }

 private:
  struct ExitSignal {
    std::mutex mutex;
    std::condition_variable done;
    bool exited = false;
  };
  std::chrono::milliseconds shutdown_grace_;
  std::chrono::milliseconds slow_callback_;
  // Shared with the thread, so that a thread left behind still has its io_context.
  std::shared_ptr<boost::asio::io_context> io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::shared_ptr<ExitSignal> exit_;
  std::atomic<emsnode_timer_id> next_timer_id_{1};
  std::thread thread_;
};

class TaskGroup : public std::enable_shared_from_this<TaskGroup> {
 public:
  // `name` tags log records (the plugin id). The executor must outlive every group's open
  // period: the host closes each group before it destroys the executor.
  TaskGroup(Executor& executor, std::string name);
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Starts an active period: post and timer_start are accepted until stop_accepting().
  void open();
  // Refuses new work; what is already queued or armed still runs until close().
  void stop_accepting();

  struct CloseResult {
    std::size_t leaked_timers = 0;  // timers still armed, now cancelled
    bool callback_finished = true;  // false: a callback was still running at `deadline`
  };
  // Ends the active period: stops accepting, cancels every armed timer, drops tasks not yet run,
  // then waits until no callback of this group is running, at most until `deadline`.
  CloseResult close(std::chrono::steady_clock::time_point deadline);

  // False when the group is not accepting work.
  bool post(emsnode_task_fn fn, void* user_data);
  // 0 when the group is not accepting work.
  emsnode_timer_id timer_start(std::chrono::milliseconds delay, std::chrono::milliseconds period,
                               emsnode_task_fn fn, void* user_data);
  // See the file comment. Unknown or fired one-shot ids are ignored.
  void timer_cancel(emsnode_timer_id id);
  std::size_t armed_timers() const;

 private:
  struct Timer {
    Timer(boost::asio::io_context& io, emsnode_timer_id timer_id, std::uint64_t period_generation)
        : id(timer_id), generation(period_generation), timer(io) {}
    const emsnode_timer_id id;
    const std::uint64_t generation;
    std::chrono::milliseconds period{0};
    emsnode_task_fn fn = nullptr;
    void* user_data = nullptr;
    bool cancelled = false;           // under state_mutex_
    boost::asio::steady_timer timer;  // touched only under state_mutex_
  };

  void arm(const std::shared_ptr<Timer>& timer);  // state_mutex_ held
  void on_timer(const std::shared_ptr<Timer>& timer, const boost::system::error_code& ec);
  void run_posted(emsnode_task_fn fn, void* user_data, std::uint64_t generation);
  // Runs fn(user_data) with callback_mutex_ held by the caller, reporting what it throws.
  void invoke(emsnode_task_fn fn, void* user_data);
  bool in_own_callback() const;

  Executor& executor_;
  const std::string name_;
  // A copy: a callback left running when the executor went (its thread abandoned) still reads it.
  const std::chrono::milliseconds slow_callback_;

  // Held while a callback of this group runs; cancel and close take it to wait for one.
  std::timed_mutex callback_mutex_;
  std::atomic<std::thread::id> callback_thread_{};

  // Guards everything below; always taken after callback_mutex_, never before.
  mutable std::mutex state_mutex_;
  bool accepting_ = false;
  std::uint64_t generation_ = 0;  // bumped by close(): older tasks and timers are void
  std::map<emsnode_timer_id, std::shared_ptr<Timer>> timers_;
};

}  // namespace emsnode::host
