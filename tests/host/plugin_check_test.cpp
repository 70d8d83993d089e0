// emsnode-plugin-check, run as a third party would run it on a built plugin.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "host_test_support.hpp"
#include "support/sanitizers.hpp"

namespace emsnode::host {
namespace {

using namespace std::chrono_literals;
using emsnode::testing::Completed;
using testing::Sandbox;
namespace fs = std::filesystem;

Completed plugin_check(const Sandbox& box, std::vector<std::string> args) {
  args.insert(args.begin(), EMSNODE_PLUGIN_CHECK);
  return emsnode::testing::run(args, box.root(), 60s);
}

std::string last_line(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::string last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

}  // namespace

TEST_CASE("plugin-check passes a well-behaved plugin after cycling it") {
  Sandbox box;
  const auto folder = box.add("t-healthy");
  const Completed result = plugin_check(box, {folder.string()});
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  CHECK(contains(result.out,
                 "plugin: t-healthy 1.0.0 (ABI 1.0) " + box.library("t-healthy").string() + "\n"));
  CHECK(contains(result.out, "instance 1: create, start, stop, start, stop, stop again, destroy"));
  CHECK(contains(result.out, "instance 2: create, stop without start, destroy"));
  for (const char* step :
       {"create", "start", "stop", "stop again", "stop without start", "destroy"}) {
    CHECK(contains(result.out, "  " + std::string(step) + " "));
  }
  CHECK(last_line(result.out) == "PASS t-healthy 1.0.0: 10 steps, no failures, no leaks");
}

TEST_CASE("plugin-check accepts the library file and a config file of the plugin's section") {
  Sandbox box;
  box.add("t-healthy");
  const auto config = box.dir_write("healthy.toml",
                                    "greeting = \"hi\"\ninterval = \"5ms\"\n"
                                    "journal = \"" +
                                        box.journal().string() + "\"\n");
  const Completed result =
      plugin_check(box, {box.library("t-healthy").string(), "--config", config.string()});
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  CHECK(contains(result.out, "config: " + config.string() + "\n"));
  CHECK(box.journal_lines().at(0).rfind("config greeting=hi count=3", 0) == 0);
}

TEST_CASE("plugin-check refuses an invalid config file with its position") {
  Sandbox box;
  box.add("t-healthy");
  const auto config = box.dir_write("healthy.toml", "count = \"many\"\n");
  const Completed result =
      plugin_check(box, {box.library("t-healthy").string(), "--config", config.string()});
  CHECK(result.status == 1);
  CHECK(contains(result.out, "refused: " + config.string() + ":1:9: "));
  CHECK(last_line(result.out).rfind("FAIL t-healthy 1.0.0: ", 0) == 0);
}

TEST_CASE("plugin-check fails a plugin that leaves timers armed after stop") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-timer-leak").string()});
  CHECK(result.status == 1);
  CHECK(contains(result.out, "LEAK"));
  CHECK(last_line(result.out) ==
        "FAIL t-timer-leak 1.0.0: 2 problem(s): stop: 1 timer(s) still armed when stop returned; "
        "stop: 1 timer(s) still armed when stop returned");
}

TEST_CASE("plugin-check fails a plugin that leaves a thread running after destroy") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-thread-leak").string()});
  CHECK(result.status == 1);
  CHECK(
      contains(last_line(result.out), "thread(s) still running after destroy (join them in stop)"));
}

TEST_CASE("plugin-check fails a plugin that misses its stop deadline, within the deadline") {
  Sandbox box;
  const auto folder = box.add("t-never-stops");
  const auto began = std::chrono::steady_clock::now();
  const Completed result = plugin_check(box, {folder.string(), "--stop-deadline", "200ms"});
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - began < 5s);
  CHECK(result.status == 1);
  CHECK(contains(result.out, "FAULTED"));
  // Both instances are stopped, and both stops are abandoned at the deadline.
  CHECK(last_line(result.out) ==
        "FAIL t-never-stops 1.0.0: 2 problem(s): stop: stop did not return within its deadline "
        "of 200ms; stop without start: stop did not return within its deadline of 200ms");
}

TEST_CASE("plugin-check applies the host's refusals") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-abi-major").string()});
  CHECK(result.status == 1);
  CHECK(contains(result.out,
                 "refused: " + box.library("t-abi-major").string() + ": built for ABI 2.0"));
  CHECK(last_line(result.out) == "FAIL t-abi-major 1.0.0: 1 problem(s): refused by the host");
}

TEST_CASE(
    "plugin-check gives a plugin a scratch database in which it migrates and writes in start") {
  Sandbox box;
  box.add("t-dbuser");
  const auto config =
      box.dir_write("dbuser.toml", "journal = \"" + box.journal().string() + "\"\n");
  const Completed result =
      plugin_check(box, {box.library("t-dbuser").string(), "--config", config.string()});
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  CHECK(contains(result.out, "database: scratch SQLite in "));
  CHECK(last_line(result.out) == "PASS t-dbuser 1.0.0: 10 steps, no failures, no leaks");
  // Each start is a promotion: its row, keyed by the epoch, is a new one.
  std::vector<std::string> starts;
  for (const std::string& line : box.journal_lines()) {
    if (line.rfind("start ok", 0) == 0) starts.push_back(line);
  }
  CHECK(starts == std::vector<std::string>{"start ok rows_in_txn=1", "start ok rows_in_txn=2"});
}

TEST_CASE("plugin-check removes its scratch database and store at exit") {
  Sandbox box;
  const fs::path tmp = box.root() / "tmp";
  fs::create_directories(tmp);
  std::vector<std::string> args = {EMSNODE_PLUGIN_CHECK, box.add("t-storeuser").string()};
  const Completed result = emsnode::testing::run(args, box.root(), 60s, {"TMPDIR=" + tmp.string()});
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  CHECK(contains(result.out,
                 "store: scratch share folder " + tmp.string() + "/emsnode-plugin-check-"));
  CHECK(fs::is_empty(tmp));
}

TEST_CASE("plugin-check with --no-database gives a plugin that needs one no database") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-dbuser").string(), "--no-database"});
  INFO(result.out << result.err);
  CHECK(result.status == 1);
  CHECK(contains(result.out, "database: none (--no-database)\n"));
  CHECK(contains(result.out, "no shared database"));
  CHECK(last_line(result.out).rfind("FAIL t-dbuser 1.0.0: ", 0) == 0);
}

TEST_CASE("plugin-check gives a plugin a scratch file store, and none with --no-store") {
  Sandbox box;
  const auto folder = box.add("t-storeuser");
  const Completed with_store = plugin_check(box, {folder.string()});
  INFO(with_store.out << with_store.err);
  CHECK(with_store.status == 0);
  CHECK(last_line(with_store.out) == "PASS t-storeuser 1.0.0: 10 steps, no failures, no leaks");

  const Completed without = plugin_check(box, {folder.string(), "--no-store"});
  INFO(without.out << without.err);
  CHECK(without.status == 1);
  CHECK(contains(without.out, "store: none (--no-store)\n"));
  CHECK(contains(without.out, "no shared file store"));
}

TEST_CASE("plugin-check calls every command with valid arguments and sees invalid ones refused") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-commander").string()});
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  // Built from the declarations: the required name "x", the first choice of fail's status.
  CHECK(contains(result.out, "  command echo-args    ok "));
  CHECK(contains(result.out,
                 " ms  answered OK; refused a wrong type (name), an unknown argument, without "
                 "name\n"));
  // An error status is the plugin's answer to give, not a failure of the check.
  CHECK(contains(result.out, "  command fail         ok "));
  CHECK(contains(result.out,
                 " ms  answered INVALID (failed with status invalid); refused a wrong type "
                 "(status), an unknown argument, without status\n"));
  CHECK(contains(result.out, "  command active       ok "));
  CHECK(contains(result.out, " ms  answered OK; refused an unknown argument\n"));
  // The commands for any node right after create, the active-only one once started.
  const auto create = result.out.find("  create ");
  const auto start = result.out.find("  start ");
  REQUIRE(start != std::string::npos);
  CHECK(create < result.out.find("  command echo-args "));
  CHECK(result.out.find("  command fail ") < start);
  CHECK(start < result.out.find("  command active "));
  CHECK(result.out.find("  command active ") < result.out.find("  stop "));
  CHECK(last_line(result.out) == "PASS t-commander 1.0.0: 13 steps, no failures, no leaks");
}

TEST_CASE("plugin-check fails a plugin whose command does not answer within the timeout") {
  Sandbox box;
  const auto began = std::chrono::steady_clock::now();
  const Completed result =
      plugin_check(box, {box.add("t-command-hangs").string(), "--command-timeout", "300ms"});
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - began < 10s);
  INFO(result.out << result.err);
  CHECK(result.status == 1);
  CHECK(contains(result.out, "  command hang         TIMEOUT "));
  CHECK(contains(result.out,
                 "threads: not counted (a call was left running past the command timeout"));
  CHECK(last_line(result.out) ==
        "FAIL t-command-hangs 1.0.0: 1 problem(s): command hang: hang did not answer within "
        "300ms");
}

TEST_CASE("plugin-check waits for a slow command within its timeout and passes it") {
  Sandbox box;
  const Completed result =
      plugin_check(box, {box.add("t-command-hangs").string(), "--command-timeout", "5s"});
  INFO(result.out << result.err);
  CHECK(result.status == 0);
  CHECK(contains(result.out, "  command hang         ok "));
  CHECK(last_line(result.out) == "PASS t-command-hangs 1.0.0: 11 steps, no failures, no leaks");
}

TEST_CASE("plugin-check fails a plugin whose active-only command handler throws, and goes on") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-command-throws").string()});
  INFO(result.out << result.err);
  CHECK(result.status == 1);
  // Called with the least its bounds allow (count = 3), while started.
  CHECK(contains(result.out, "  command explode      THREW "));
  CHECK(contains(result.out, "refused a wrong type (count), an unknown argument, without count"));
  CHECK(contains(result.out, "instance 2: create, stop without start, destroy"));
  CHECK(last_line(result.out) ==
        "FAIL t-command-throws 1.0.0: 1 problem(s): command explode: threw the handler crashed "
        "(no exception may cross the C ABI)");
}

TEST_CASE("plugin-check --help documents its options and the config file format") {
  Sandbox box;
  const Completed result = plugin_check(box, {"--help"});
  CHECK(result.status == 0);
  CHECK(result.err.empty());
  CHECK(contains(result.out, "usage: emsnode-plugin-check LIB_OR_DIR"));
  for (const char* option :
       {"--config FILE.toml", "--start-timeout", "--stop-deadline", "--command-timeout",
        "--no-database", "--no-store", "--help", "[plugins.<id>]", "Every control command",
        "Exit status: 0 clean, 1 refused"}) {
    CHECK(contains(result.out, option));
  }
}

TEST_CASE("plugin-check refuses an unknown option with its usage") {
  Sandbox box;
  const Completed result = plugin_check(box, {box.add("t-healthy").string(), "--no-such"});
  CHECK(result.status == 2);
  CHECK(contains(result.err, "unexpected argument \"--no-such\""));
  CHECK(contains(result.err, "usage: emsnode-plugin-check LIB_OR_DIR"));
}

TEST_CASE("plugin-check without a plugin prints its usage") {
  Sandbox box;
  const Completed result = plugin_check(box, {});
  CHECK(result.status == 2);
  CHECK(contains(result.err, "usage: emsnode-plugin-check LIB_OR_DIR"));
}

}  // namespace emsnode::host
