// Role-change hooks: the operator's executables (move a virtual IP, update DNS) run around each
// promotion and demotion.
//
// Each hook runs synchronously, in list order, in its own process group, with the node's
// environment plus EMSNODE_EVENT (pre_promote | post_promote | pre_demote | post_demote),
// EMSNODE_EPOCH, EMSNODE_NODE_ID and EMSNODE_REASON. Its standard output and error go to the log
// (bounded), one `hook.output` record per line, then `hook.finished exit=.. elapsed_ms=..`. A hook
// still running at the timeout is killed with its whole process group (`hook.timeout`), so a
// hung script never holds up the role manager for longer than the timeout.
//
// THREAD: any; the role manager runs them on its hook thread, never on its control thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emsnode::role {

enum class HookEvent { pre_promote, post_promote, pre_demote, post_demote };
std::string_view hook_event_name(HookEvent event);

struct HookContext {
  HookEvent event = HookEvent::pre_promote;
  std::uint64_t epoch = 0;
  std::string node_id;
  std::string reason;  // why the role changes: one of reason::*
};

// Runs one hook to completion or timeout. Returns "" when it exited 0, else why not, for the
// operator: "<path> exited with 3", "<path> was killed by signal 9", "<path> timed out after
// 5000 ms", "<path> could not be started: No such file or directory".
std::string run_hook(const std::string& executable, const HookContext& context,
                     std::chrono::milliseconds timeout);

// Runs `executables` in order and returns the first failure ("" when all succeeded). With
// `stop_at_first_failure` (pre_promote: the failure is a veto) the rest do not run; otherwise a
// failure is logged and the next hook still runs.
std::string run_hooks(const std::vector<std::string>& executables, const HookContext& context,
                      std::chrono::milliseconds timeout, bool stop_at_first_failure);

}  // namespace emsnode::role
