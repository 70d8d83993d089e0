#include "host/plugin_instance.hpp"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

namespace emsnode::host {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

milliseconds since(steady_clock::time_point began) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - began);
}

const char* const kNotStdException = "an exception that is not a std::exception";

// The ABI keeps a context valid until destroy returns, and a faulted plugin is never destroyed:
// its threads may call host services for as long as the process lives. So the context is never
// freed, not even by the exit's static destructors: its task group's timers belong to an executor
// long gone by then, and freeing them aborted the exit.
// The plugin's instance is kept with it: never destroyed, yet still the plugin's, not a leak.
void keep_until_exit(std::shared_ptr<PluginContext> context, void* instance) {
  struct Kept {
    std::shared_ptr<PluginContext> context;
    void* instance;
  };
  static std::mutex mutex;
  static auto& kept = *new std::vector<Kept>;  // immortal on purpose
  std::lock_guard<std::mutex> lock(mutex);
  kept.push_back({std::move(context), instance});
}

std::string no_reason(const char* call) {
  return std::string(call) + " returned EMSNODE_ERROR without a reason (call set_error first)";
}

}  // namespace

struct PluginInstance::CallState {
  std::mutex mutex;
  std::condition_variable done_changed;
  bool done = false;
  emsnode_status status = EMSNODE_ERROR;
  std::string exception;  // what the call threw, if it did
};

// Who may run a command now. Shared with the handlers' threads, which free it when they return,
// even after the host stopped waiting for them.
struct PluginInstance::CommandGate {
  std::mutex mutex;
  std::condition_variable changed;
  bool open = false;     // created, and destroy has not begun
  bool started = false;  // start returned OK, and stop has not begun: active_only may run
  bool busy = false;     // a handler runs (perhaps past its timeout)
  bool busy_active_only = false;
};

PluginInstance::PluginInstance(LoadedLibrary library, config::Values values,
                               std::shared_ptr<HostShared> shared, Executor& executor)
    : library_(std::move(library)),
      tasks_(std::make_shared<TaskGroup>(executor, library_.manifest.id)),
      context_(std::make_shared<PluginContext>(
          library_.manifest.id, std::move(values), std::move(shared), tasks_,
          library_.manifest.commands, library_.manifest.exports, library_.manifest.uses)),
      commands_(std::make_shared<CommandGate>()) {}

// What create promised in plugin.toml and did not do, or "".
std::string PluginInstance::unfulfilled_declarations() const {
  if (const auto unhandled = context_->unhandled_commands(); !unhandled.empty()) {
    return "command " + config::quote(unhandled.front()) +
           " is declared in plugin.toml but has no handler (call command_handle for it in create)";
  }
  if (const std::string missing = context_->missing_exports(); !missing.empty()) {
    return "plugin.toml declares exports " + missing +
           ", which create did not hand over with api_export";
  }
  return {};
}

PluginInstance::~PluginInstance() {
  // A closed group never touches the executor again, whoever still holds it.
  tasks_->close(steady_clock::now());
  if (pending_start_) {
    if (wait(*pending_start_, steady_clock::now())) {
      pending_start_->thread.join();
    } else {
      abandon(*pending_start_);
    }
  }
}

template <typename Fn>
PluginInstance::Call PluginInstance::launch(Fn&& fn) {
  Call call;
  call.state = std::make_shared<CallState>();
  // The thread holds the library and the context too: if it is abandoned, the code it runs and
  // the host services it calls stay valid for as long as it runs.
  call.thread = std::thread([state = call.state, fn = std::forward<Fn>(fn),
                             keep_library = library_.library, keep_context = context_] {
    emsnode_status status = EMSNODE_ERROR;
    std::string exception;
    try {
      status = fn();
    } catch (const std::exception& e) {
      exception = e.what();
    } catch (...) {
      exception = kNotStdException;
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->done = true;
    state->status = status;
    state->exception = std::move(exception);
    state->done_changed.notify_all();
  });
  return call;
}

bool PluginInstance::wait(const Call& call, steady_clock::time_point until) {
  std::unique_lock<std::mutex> lock(call.state->mutex);
  return call.state->done_changed.wait_until(lock, until, [&] { return call.state->done; });
}

CallOutcome PluginInstance::finish(Call& call, steady_clock::time_point began) {
  call.thread.join();
  CallOutcome outcome;
  outcome.elapsed = since(began);
  if (!call.state->exception.empty()) {
    outcome.result = CallResult::failed;
    outcome.error = "threw " + call.state->exception + " (no exception may cross the C ABI)";
  } else if (call.state->status != EMSNODE_OK) {
    outcome.result = CallResult::failed;
    outcome.error = context_->take_error();
  }
  return outcome;
}

void PluginInstance::abandon(Call& call) {
  call.thread.detach();
  fault();
}

void PluginInstance::fault() {
  faulted_ = true;
  pin_library(library_);
  keep_until_exit(context_, instance_);
}

CallOutcome PluginInstance::create() {
  const auto began = steady_clock::now();
  if (created_ || faulted_) return {CallResult::failed, "create called twice", {}, 0};
  context_->take_error();
  void* instance = nullptr;
  emsnode_status status = EMSNODE_ERROR;
  std::string exception;
  context_->set_creating(true);
  try {
    status = library_.api->create(&host_api(), context_->handle(), &instance);
  } catch (const std::exception& e) {
    exception = e.what();
  } catch (...) {
    exception = kNotStdException;
  }
  context_->set_creating(false);
  CallOutcome outcome;
  outcome.elapsed = since(began);
  if (!exception.empty()) {
    outcome.result = CallResult::failed;
    outcome.error = "threw " + exception + " (no exception may cross the C ABI)";
  } else if (status != EMSNODE_OK) {
    outcome.result = CallResult::failed;
    outcome.error = context_->take_error();
    if (outcome.error.empty()) outcome.error = no_reason("create");
  } else if (std::string unfulfilled = unfulfilled_declarations(); !unfulfilled.empty()) {
    // A declared command without a handler, or an export its users would not find: the instance
    // goes (the host will never call destroy on it), and so does the node.
    outcome.result = CallResult::failed;
    outcome.error = std::move(unfulfilled);
    try {
      library_.api->destroy(instance);
    } catch (const std::exception& e) {
      outcome.error += " (and destroy threw " + std::string(e.what()) + ")";
    } catch (...) {
      outcome.error += std::string(" (and destroy threw ") + kNotStdException + ")";
    }
  } else {
    instance_ = instance;
    created_ = true;
    std::lock_guard<std::mutex> lock(commands_->mutex);
    commands_->open = true;
  }
  return outcome;
}

CallOutcome PluginInstance::start(milliseconds timeout) {
  const auto began = steady_clock::now();
  if (faulted_) return {CallResult::failed, "faulted: an earlier call never returned", {}, 0};
  if (!created_) return {CallResult::failed, "start before create", {}, 0};
  if (pending_start_) {
    return {CallResult::failed, "the previous start has not returned yet", {}, 0};
  }
  context_->take_error();
  context_->reset_health();
  tasks_->open();
  context_->set_writable(true);
  const emsnode_plugin_api* api = library_.api;
  void* instance = instance_;
  Call call = launch([api, instance] { return api->start(instance); });
  if (!wait(call, began + timeout)) {
    pending_start_ = std::move(call);
    return {CallResult::timed_out,
            "start did not return within " + std::to_string(timeout.count()) + "ms", since(began),
            0};
  }
  CallOutcome outcome = finish(call, began);
  if (outcome.result == CallResult::failed && outcome.error.empty()) {
    outcome.error = no_reason("start");
  }
  if (outcome.result == CallResult::ok) {
    std::lock_guard<std::mutex> lock(commands_->mutex);
    commands_->started = true;
  }
  return outcome;
}

CallOutcome PluginInstance::stop(milliseconds deadline) {
  const auto began = steady_clock::now();
  const auto until = began + deadline;
  if (faulted_) return {CallResult::abandoned, "faulted: an earlier call never returned", {}, 0};
  if (!created_) return {};
  tasks_->stop_accepting();
  {
    // An active_only command runs only while started: let a running one finish, within the
    // deadline, before the plugin is told to stop.
    std::unique_lock<std::mutex> lock(commands_->mutex);
    commands_->started = false;
    commands_->changed.wait_until(
        lock, until, [&] { return !(commands_->busy && commands_->busy_active_only); });
  }
  // Stop may still flush to the shared database; once it returns, or is abandoned, no write.
  struct EndWrites {
    PluginContext& context;
    ~EndWrites() { context.set_writable(false); }
  } end_writes{*context_};

  if (pending_start_) {
    if (!wait(*pending_start_, until)) {
      abandon(*pending_start_);
      pending_start_.reset();
      tasks_->close(steady_clock::now());
      return {CallResult::abandoned,
              "start had still not returned at the stop deadline of " +
                  std::to_string(deadline.count()) + "ms",
              since(began), 0};
    }
    pending_start_->thread.join();
    pending_start_.reset();
  }

  context_->take_error();
  const emsnode_plugin_api* api = library_.api;
  void* instance = instance_;
  const auto remaining = std::chrono::duration_cast<milliseconds>(until - steady_clock::now());
  const std::uint64_t remaining_ms = remaining.count() > 0 ? remaining.count() : 0;
  Call call = launch([api, instance, remaining_ms] { return api->stop(instance, remaining_ms); });
  if (!wait(call, until)) {
    abandon(call);
    tasks_->close(steady_clock::now());
    return {CallResult::abandoned,
            "stop did not return within its deadline of " + std::to_string(deadline.count()) + "ms",
            since(began), 0};
  }
  CallOutcome outcome = finish(call, began);
  if (outcome.result == CallResult::failed && outcome.error.empty()) {
    outcome.error = no_reason("stop");
  }
  const TaskGroup::CloseResult closed = tasks_->close(until);
  outcome.leaked_timers = closed.leaked_timers;
  if (!closed.callback_finished) {
    // The executor thread is inside this plugin's callback: nothing to detach, but its code is
    // running, so it is faulted like a stop that never returned.
    fault();
    outcome.result = CallResult::abandoned;
    outcome.error = "a timer or posted callback was still running at the stop deadline of " +
                    std::to_string(deadline.count()) + "ms";
  }
  outcome.elapsed = since(began);
  return outcome;
}

void PluginInstance::keep_loaded() {
  pin_library(library_);
  keep_until_exit(context_, instance_);
}

CallOutcome PluginInstance::destroy(milliseconds command_wait) {
  const auto began = steady_clock::now();
  if (faulted_) return {CallResult::failed, "faulted: its code may still be running", {}, 0};
  if (!created_) return {CallResult::failed, "not created", {}, 0};
  {
    std::unique_lock<std::mutex> lock(commands_->mutex);
    commands_->open = false;
    if (!commands_->changed.wait_until(lock, began + command_wait,
                                       [&] { return !commands_->busy; })) {
      lock.unlock();
      fault();
      return {CallResult::abandoned,
              "a command handler was still running after " + std::to_string(command_wait.count()) +
                  "ms; not destroyed",
              since(began), 0};
    }
  }
  created_ = false;
  try {
    library_.api->destroy(instance_);
  } catch (const std::exception& e) {
    return {CallResult::failed, "threw " + std::string(e.what()), since(began), 0};
  } catch (...) {
    return {CallResult::failed, std::string("threw ") + kNotStdException, since(began), 0};
  }
  instance_ = nullptr;
  return {CallResult::ok, {}, since(began), 0};
}

CommandOutcome PluginInstance::run_command(const CommandSpec& command, config::Values args,
                                           milliseconds timeout) {
  const auto began = steady_clock::now();
  const auto until = began + timeout;
  const auto refused = [&](CommandResult result, std::string error) {
    CommandOutcome outcome;
    outcome.result = result;
    outcome.error = std::move(error);
    outcome.elapsed = since(began);
    return outcome;
  };
  const std::optional<CommandHandler> handler = context_->command_handler(command.name);
  {
    std::unique_lock<std::mutex> lock(commands_->mutex);
    if (!commands_->changed.wait_until(lock, until, [&] { return !commands_->busy; })) {
      return refused(CommandResult::busy, "an earlier command of " + library_.manifest.id +
                                              " was still running after " +
                                              std::to_string(timeout.count()) + "ms");
    }
    if (!commands_->open || !handler) {
      return refused(CommandResult::not_started, library_.manifest.id + " is not created");
    }
    if (command.active_only && !commands_->started) {
      return refused(CommandResult::not_started, command.name + " runs only while " +
                                                     library_.manifest.id +
                                                     " is started, on the active node");
    }
    commands_->busy = true;
    commands_->busy_active_only = command.active_only;
  }

  auto call = std::make_shared<CommandCall>();
  call->command = command.name;
  call->args = std::move(args);
  auto state = std::make_shared<CallState>();
  // Detached: a handler past its timeout is left to finish on its own; it holds the library,
  // the context, its call and the gate, which it frees when it returns.
  std::thread([state, call, gate = commands_, handler = *handler, keep_library = library_.library,
               keep_context = context_] {
    emsnode_status status = EMSNODE_ERROR;
    std::string exception;
    try {
      status = handler.fn(handler.user_data, call->handle());
    } catch (const std::exception& e) {
      exception = e.what();
    } catch (...) {
      exception = kNotStdException;
    }
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->done = true;
      state->status = status;
      state->exception = std::move(exception);
      state->done_changed.notify_all();
    }
    std::lock_guard<std::mutex> lock(gate->mutex);
    gate->busy = false;
    gate->changed.notify_all();
  }).detach();

  std::unique_lock<std::mutex> lock(state->mutex);
  if (!state->done_changed.wait_until(lock, until, [&] { return state->done; })) {
    return refused(CommandResult::timed_out, command.name + " did not answer within " +
                                                 std::to_string(timeout.count()) + "ms");
  }
  if (!state->exception.empty()) {
    return refused(CommandResult::threw,
                   "threw " + state->exception + " (no exception may cross the C ABI)");
  }
  CommandOutcome outcome;
  outcome.status = state->status;
  outcome.elapsed = since(began);
  if (state->status == EMSNODE_OK) {
    outcome.reply = call->reply.value_or("{}");
  } else {
    outcome.error = call->failure.empty()
                        ? command.name + " failed without a reason (call command_fail first)"
                        : call->failure;
  }
  return outcome;
}

}  // namespace emsnode::host
