// One instance of a loaded plugin: its context and the calls into its entry points, each with
// the host's time limit. start and stop run on a worker thread of their own; create and destroy
// on the caller's (main) thread, as the ABI says.
//
// A call that misses its limit is never waited for beyond it. A start past its timeout keeps
// running; the next stop first waits (within its deadline) for it to return, because start and
// stop of one instance never run concurrently. A stop past its deadline is abandoned: its
// thread is detached, the instance is faulted (no further call, never destroyed), and its library
// and context stay for the life of the process, since its code may still be running.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "config/schema.hpp"
#include "host/executor.hpp"
#include "host/host_services.hpp"
#include "host/plugin_loader.hpp"

namespace emsnode::host {

enum class CallResult {
  ok,
  failed,     // returned EMSNODE_ERROR or threw: `error` says why
  timed_out,  // start only: still running at the timeout
  abandoned,  // missed the stop deadline: the instance is now faulted
};

struct CallOutcome {
  CallResult result = CallResult::ok;
  std::string error;  // for failed, timed_out and abandoned
  std::chrono::milliseconds elapsed{0};
  std::size_t leaked_timers = 0;  // stop: timers the plugin left armed (the host cancelled them)
};

// How a control command's call ended (run_command).
enum class CommandResult {
  answered,     // the handler returned `status`
  not_started,  // an active_only command while the plugin is not started, or not created
  busy,         // an earlier call was still running for the whole timeout
  timed_out,    // the handler had not returned at the timeout; its late answer is dropped
  threw,        // the handler threw (no exception may cross the C ABI)
};

struct CommandOutcome {
  CommandResult result = CommandResult::answered;
  emsnode_status status = EMSNODE_ERROR;  // for answered
  std::string reply;                      // answered with EMSNODE_OK: its JSON ("{}" without one)
  std::string error;                      // otherwise: why, one line
  std::chrono::milliseconds elapsed{0};
};

class PluginInstance {
 public:
  // `executor` must outlive this object.
  PluginInstance(LoadedLibrary library, config::Values values, std::shared_ptr<HostShared> shared,
                 Executor& executor);
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;
  // Ends the task group's period and lets go of threads; does not call destroy (the owner does).
  ~PluginInstance();

  const Manifest& manifest() const { return library_.manifest; }
  PluginContext& context() { return *context_; }
  // The context, for a user of this plugin's shared APIs to hold (plugin_abi.h: the tables stay
  // valid until the exporter's destroy, and so does the context that hands them over).
  std::shared_ptr<PluginContext> shared_context() const { return context_; }
  bool created() const { return created_; }
  bool faulted() const { return faulted_; }

  CallOutcome create();
  CallOutcome start(std::chrono::milliseconds timeout);
  // Idempotent; valid after a failed or timed-out start and before any start. Cancels (and
  // counts) timers the plugin left armed.
  CallOutcome stop(std::chrono::milliseconds deadline);
  // Refused (failed) when not created or faulted. Waits up to `command_wait` for a command
  // handler still running; past it the instance is faulted instead of destroyed.
  CallOutcome destroy(std::chrono::milliseconds command_wait = std::chrono::seconds(30));
  // Never destroyed: its library and context stay for the life of the process, for a faulted
  // user of its shared APIs whose code may still call into them.
  void keep_loaded();

  // Runs `command` (declared in the manifest) with checked `args` on a thread of its own, one
  // call at a time, never with create or destroy, an active_only one only while started (stop
  // waits for it). Gives up after `timeout`, counting the wait for an earlier call.
  CommandOutcome run_command(const CommandSpec& command, config::Values args,
                             std::chrono::milliseconds timeout);

 private:
  struct CallState;
  struct CommandGate;
  struct Call {
    std::thread thread;
    std::shared_ptr<CallState> state;
  };
  template <typename Fn>
  Call launch(Fn&& fn);
  static bool wait(const Call& call, std::chrono::steady_clock::time_point until);
  CallOutcome finish(Call& call, std::chrono::steady_clock::time_point began);
  void abandon(Call& call);
  std::string unfulfilled_declarations() const;
  // No further call, no destroy; the library and the context stay until the process exits.
  void fault();

  LoadedLibrary library_;
  std::shared_ptr<TaskGroup> tasks_;
  std::shared_ptr<PluginContext> context_;
  void* instance_ = nullptr;
  bool created_ = false;
  bool faulted_ = false;
  std::optional<Call> pending_start_;  // a start that outlived its timeout
  std::shared_ptr<CommandGate> commands_;
};

}  // namespace emsnode::host
