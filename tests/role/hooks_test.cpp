// Role-change hooks as real /bin/sh scripts.
#include <catch2/catch.hpp>

#include <signal.h>
#include <stdlib.h>

#include <fstream>

#include "log/log.hpp"
#include "role/hooks.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using emsnode::role::HookContext;
using emsnode::role::HookEvent;
using emsnode::role::run_hook;
using emsnode::role::run_hooks;
using emsnode::testing::read_file;
using emsnode::testing::TempDir;

namespace {

std::string script(const TempDir& dir, const std::string& name, const std::string& body) {
  const auto path = dir.write(name, "#!/bin/sh\n" + body);
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path.string();
}

HookContext context(HookEvent event = HookEvent::pre_promote) {
  return {event, 7, "n1", "acquired"};
}

// Gone, or a zombie waiting for init: either way it no longer runs.
bool process_ended(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] == 'Z';
}

}  // namespace

TEST_CASE("a hook sees the event, epoch, node id and reason, and the node's own environment") {
  TempDir dir;
  ::setenv("EMSNODE_TEST_INHERITED", "yes", 1);
  const auto out = (dir / "out").string();
  const auto hook = script(dir, "env.sh",
                           "echo \"$EMSNODE_EVENT $EMSNODE_EPOCH $EMSNODE_NODE_ID $EMSNODE_REASON "
                           "$EMSNODE_TEST_INHERITED\" > " +
                               out + "\n");

  CHECK(run_hook(hook, context(HookEvent::post_demote), 5s).empty());
  CHECK(read_file(out) == "post_demote 7 n1 acquired yes\n");
}

TEST_CASE("a failing pre_promote hook vetoes, and the hooks after it do not run") {
  TempDir dir;
  const auto marker = dir / "ran";
  const auto fail = script(dir, "fail.sh", "exit 3\n");
  const auto mark = script(dir, "mark.sh", "touch " + marker.string() + "\n");

  CHECK(run_hooks({fail, mark}, context(), 5s, true) == fail + " exited with 3");
  CHECK_FALSE(std::filesystem::exists(marker));

  // Other events log the failure and go on with the next hook.
  CHECK(run_hooks({fail, mark}, context(HookEvent::post_demote), 5s, false) ==
        fail + " exited with 3");
  CHECK(std::filesystem::exists(marker));
}

TEST_CASE("a hook that outlives its timeout is killed with everything it started") {
  TempDir dir;
  const auto pid_file = (dir / "child.pid").string();
  const auto hook = script(dir, "hang.sh", "sleep 30 &\necho $! > " + pid_file + "\nsleep 30\n");

  const auto started = std::chrono::steady_clock::now();
  const std::string failure = run_hook(hook, context(), 300ms);
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(failure == hook + " timed out after 300 ms");

  const pid_t child = static_cast<pid_t>(std::stol(read_file(pid_file)));
  CHECK(emsnode::testing::eventually([&] { return process_ended(child); }, 2s));
}

TEST_CASE("a hook's output goes to the log, then its exit status and duration") {
  TempDir dir;
  emsnode::log::Settings settings;
  settings.console = false;
  settings.file = dir / "node.log";
  emsnode::log::init(settings);
  const auto hook = script(dir, "vip.sh", "echo 'moving 10.0.0.5'\necho oops >&2\n");

  const std::string failure = run_hook(hook, context(HookEvent::post_promote), 5s);
  emsnode::log::flush();
  const std::string log = read_file(dir / "node.log");
  emsnode::log::init(emsnode::log::Settings{});

  CHECK(failure.empty());
  CHECK_THAT(log, Catch::Contains("hook.output hook=" + hook +
                                  " event=post_promote epoch=7 line=\"moving 10.0.0.5\""));
  CHECK_THAT(log, Catch::Contains("line=oops"));
  CHECK_THAT(log, Catch::Contains("hook.finished hook=" + hook +
                                  " event=post_promote epoch=7 exit=0 elapsed_ms="));
}

TEST_CASE("a hook that cannot be started or is killed fails with the reason") {
  TempDir dir;
  CHECK(run_hook("/nonexistent/hook", context(), 1s) ==
        "/nonexistent/hook could not be started: No such file or directory");

  const auto not_executable = dir.write("plain.sh", "#!/bin/sh\nexit 0\n").string();
  CHECK(run_hook(not_executable, context(), 1s) ==
        not_executable + " could not be started: Permission denied");

  const auto killed = script(dir, "killed.sh", "kill -9 $$\n");
  CHECK(run_hook(killed, context(), 5s) == killed + " was killed by signal 9");
}
