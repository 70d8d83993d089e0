// A child process for integration tests: the real binary, its output captured to files, and
// signals sent to it by PID. The destructor kills (SIGKILL) and reaps a child still running, so a
// failing test never leaves a process behind.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"

extern char** environ;

namespace emsnode::testing {

class Process {
 public:
  // Starts `argv` with standard output and error sent to files in `output_dir`.
  // `env` entries ("NAME=value") are added to the test's own environment; `cwd` is the child's
  // working directory (the test's own when empty).
  Process(std::vector<std::string> argv, const std::filesystem::path& output_dir,
          const std::vector<std::string>& env = {}, const std::filesystem::path& cwd = {})
      : stdout_path_(output_dir / ("stdout-" + std::to_string(counter()++))),
        stderr_path_(output_dir / ("stderr-" + std::to_string(counter()++))) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, stdout_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) env_text.emplace_back(*e);
    env_text.insert(env_text.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  }

  ~Process() {
    if (!exit_status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // The exit status (or 128 + signal number) once the child has exited within `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!exit_status_) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else if (std::chrono::steady_clock::now() >= until) {
        return std::nullopt;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    return exit_status_;
  }

  bool running() { return !wait(std::chrono::milliseconds(0)); }

  std::string out() const { return read_file(stdout_path_); }
  std::string err() const { return read_file(stderr_path_); }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }

  std::filesystem::path stdout_path_;
  std::filesystem::path stderr_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// Runs a command to completion (bounded by `timeout`) and returns its exit status and output.
struct Completed {
  int status = -1;
  std::string out;
  std::string err;
};

inline Completed run(std::vector<std::string> argv, const std::filesystem::path& output_dir,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30),
                     const std::vector<std::string>& env = {}) {
  Process p(std::move(argv), output_dir, env);
  const auto status = p.wait(timeout);
  if (!status) throw std::runtime_error("command did not finish in time");
  return {*status, p.out(), p.err()};
}

// Polls `done` until it is true or `timeout` passes; returns its last answer.
template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace emsnode::testing
