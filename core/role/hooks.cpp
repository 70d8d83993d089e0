#include "role/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "log/log.hpp"

extern char** environ;

namespace emsnode::role {
namespace {

// Enough for a script's diagnostics; a chatty hook must not flood the log.
constexpr std::size_t kMaxCapturedBytes = 16 * 1024;
// How often the hook's exit is checked while it runs (waitpid cannot wait with a timeout).
constexpr std::chrono::milliseconds kReapPoll{10};

const log::Logger& logger() {
  static const log::Logger log{"role"};
  return log;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

class SpawnFileActions {
 public:
  SpawnFileActions() { posix_spawn_file_actions_init(&actions_); }
  ~SpawnFileActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

class SpawnAttributes {
 public:
  SpawnAttributes() { posix_spawnattr_init(&attributes_); }
  ~SpawnAttributes() { posix_spawnattr_destroy(&attributes_); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  posix_spawnattr_t* get() { return &attributes_; }

 private:
  posix_spawnattr_t attributes_;
};

// The node's environment with ours replacing any inherited EMSNODE_* of the same names.
std::vector<std::string> hook_environment(const HookContext& context) {
  const std::pair<std::string, std::string> ours[] = {
      {"EMSNODE_EVENT", std::string(hook_event_name(context.event))},
      {"EMSNODE_EPOCH", std::to_string(context.epoch)},
      {"EMSNODE_NODE_ID", context.node_id},
      {"EMSNODE_REASON", context.reason},
  };
  std::vector<std::string> environment;
  for (char** entry = environ; *entry; ++entry) {
    const std::string_view text(*entry);
    const std::string_view name = text.substr(0, text.find('='));
    const bool replaced = std::any_of(std::begin(ours), std::end(ours),
                                      [&](const auto& o) { return o.first == name; });
    if (!replaced) environment.emplace_back(text);
  }
  for (const auto& [name, value] : ours) environment.push_back(name + "=" + value);
  return environment;
}

struct Captured {
  std::string text;
  std::size_t dropped = 0;  // bytes beyond kMaxCapturedBytes
};

// Reads what the non-blocking pipe holds now. False once the pipe is at end of file.
bool drain(int fd, Captured& captured) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      const auto size = static_cast<std::size_t>(n);
      const std::size_t room =
          kMaxCapturedBytes - std::min(kMaxCapturedBytes, captured.text.size());
      captured.text.append(buffer, std::min(size, room));
      captured.dropped += size - std::min(size, room);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    // EAGAIN: nothing more for now. Any other error ends the capture, not the hook.
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

void log_output(const Captured& captured, const log::Fields& about) {
  std::size_t start = 0;
  while (start < captured.text.size()) {
    std::size_t end = captured.text.find('\n', start);
    if (end == std::string::npos) end = captured.text.size();
    if (end > start) {
      log::Fields fields = about;
      fields.push_back({"line", captured.text.substr(start, end - start)});
      logger().info("hook.output", fields);
    }
    start = end + 1;
  }
  if (captured.dropped > 0) {
    log::Fields fields = about;
    fields.push_back({"truncated_bytes", std::to_string(captured.dropped)});
    logger().info("hook.output", fields);
  }
}

std::string elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - since)
                            .count());
}

// waitpid() that retries when a signal interrupts it; -1 with errno otherwise.
pid_t wait_for(pid_t pid, int& status, int options) {
  for (;;) {
    const pid_t reaped = ::waitpid(pid, &status, options);
    if (reaped >= 0 || errno != EINTR) return reaped;
  }
}

}  // namespace

std::string_view hook_event_name(HookEvent event) {
  switch (event) {
    case HookEvent::pre_promote:
      return "pre_promote";
    case HookEvent::post_promote:
      return "post_promote";
    case HookEvent::pre_demote:
      return "pre_demote";
    case HookEvent::post_demote:
      return "post_demote";
  }
  return "unknown";
}

std::string run_hook(const std::string& executable, const HookContext& context,
                     std::chrono::milliseconds timeout) {
  const auto started = std::chrono::steady_clock::now();
  const log::Fields about = {{"hook", executable},
                             {"event", std::string(hook_event_name(context.event))},
                             {"epoch", std::to_string(context.epoch)}};
  const auto cannot_start = [&](const std::string& why) {
    log::Fields fields = about;
    fields.push_back({"error", why});
    logger().warning("hook.failed", fields);
    return executable + " could not be started: " + why;
  };

  int fds[2];
  // Close-on-exec, so a hook started concurrently elsewhere in the node never inherits the write
  // end and keeps our pipe open.
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return cannot_start(std::string("pipe: ") + std::strerror(errno));
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);

  SpawnFileActions actions;
  posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDERR_FILENO);

  // Its own process group (so a timeout kills the hook and whatever it started), and a clean
  // signal state: the node may block or ignore signals that a shell script relies on.
  SpawnAttributes attributes;
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(attributes.get(), &none);
  posix_spawnattr_setsigdefault(attributes.get(), &all);
  posix_spawnattr_setpgroup(attributes.get(), 0);
  posix_spawnattr_setflags(attributes.get(),
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::string program = executable;
  char* const argv[] = {program.data(), nullptr};
  std::vector<std::string> environment = hook_environment(context);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int spawned =
      ::posix_spawn(&pid, program.c_str(), actions.get(), attributes.get(), argv, envp.data());
  write_end.reset();  // the hook holds the only write end now: its exit closes the pipe
  if (spawned != 0) return cannot_start(std::strerror(spawned));

  ::fcntl(read_end.get(), F_SETFL, ::fcntl(read_end.get(), F_GETFL) | O_NONBLOCK);
  Captured captured;
  bool pipe_open = true;
  std::optional<int> status;
  bool timed_out = false;
  const auto deadline = started + timeout;
  for (;;) {
    int raw = 0;
    const pid_t reaped = wait_for(pid, raw, WNOHANG);
    if (reaped == pid) {
      status = raw;
      break;
    }
    if (reaped < 0) break;  // ECHILD: the node ignores SIGCHLD, so the kernel reaped it for us
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    const auto wait =
        std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now), kReapPoll);
    if (pipe_open) {
      pollfd polled{read_end.get(), POLLIN, 0};
      ::poll(&polled, 1, static_cast<int>(wait.count()) + 1);
      pipe_open = drain(read_end.get(), captured);
    } else {
      // The hook closed its output but still runs: only its exit is left to wait for.
      std::this_thread::sleep_for(wait);
    }
  }
  if (timed_out) {
    // `pid` is our child and not yet reaped, so its process group exists and is the hook's.
    ::kill(-pid, SIGKILL);
    int raw = 0;
    wait_for(pid, raw, 0);
  }
  // What the hook wrote before it ended. Processes it left behind may keep the pipe open; their
  // output is not waited for.
  if (pipe_open) drain(read_end.get(), captured);
  log_output(captured, about);

  log::Fields fields = about;
  if (timed_out) {
    fields.push_back({"timeout_ms", std::to_string(timeout.count())});
    fields.push_back({"elapsed_ms", elapsed_ms(started)});
    logger().warning("hook.timeout", fields);
    return executable + " timed out after " + std::to_string(timeout.count()) + " ms";
  }
  std::string failure;
  if (!status) {
    fields.push_back({"exit", "unknown"});
    failure = executable + " ended with an unknown status (SIGCHLD is ignored by the node)";
  } else if (WIFEXITED(*status)) {
    fields.push_back({"exit", std::to_string(WEXITSTATUS(*status))});
    if (WEXITSTATUS(*status) != 0) {
      failure = executable + " exited with " + std::to_string(WEXITSTATUS(*status));
    }
  } else {
    const int signal = WTERMSIG(*status);
    fields.push_back({"exit", "signal " + std::to_string(signal)});
    failure = executable + " was killed by signal " + std::to_string(signal);
  }
  fields.push_back({"elapsed_ms", elapsed_ms(started)});
  if (failure.empty()) {
    logger().info("hook.finished", fields);
  } else {
    logger().warning("hook.finished", fields);
  }
  return failure;
}

std::string run_hooks(const std::vector<std::string>& executables, const HookContext& context,
                      std::chrono::milliseconds timeout, bool stop_at_first_failure) {
  std::string first_failure;
  for (const auto& executable : executables) {
    std::string failure = run_hook(executable, context, timeout);
    if (failure.empty()) continue;
    if (first_failure.empty()) first_failure = std::move(failure);
    if (stop_at_first_failure) break;
  }
  return first_failure;
}

}  // namespace emsnode::role
