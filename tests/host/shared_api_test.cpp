// Shared APIs between plugins (ABI 1.3): resolution from the manifests before any create, the
// refusals naming both plugins, the lifecycle order an exporter and its users keep, and the
// supervisor restarting users together with their exporter. Real plugin libraries throughout.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "host/plugin_host.hpp"
#include "host/supervisor.hpp"
#include "host_test_support.hpp"

namespace emsnode::host {
namespace {

using namespace std::chrono_literals;
using emsnode::testing::eventually;
using testing::Sandbox;

std::string load_refusal(const config::NodeConfig& config) {
  PluginHost host(config);
  try {
    host.load();
  } catch (const HostError& e) {
    return e.what();
  }
  return "";
}

std::size_t position(const std::vector<std::string>& lines, const std::string& line) {
  const auto found = std::find(lines.begin(), lines.end(), line);
  if (found == lines.end()) throw std::logic_error("the journal has no line '" + line + "'");
  return static_cast<std::size_t>(found - lines.begin());
}

std::size_t count(const std::vector<std::string>& lines, const std::string& line) {
  return static_cast<std::size_t>(std::count(lines.begin(), lines.end(), line));
}

}  // namespace

TEST_CASE("an exporter is created and started before its user, stopped and destroyed after it") {
  Sandbox box;
  box.add("t-api-user");
  box.add("t-api-exporter");
  {
    // The user comes first in the config: the use alone puts the exporter before it.
    PluginHost host(box.node_config(box.section("t-api-user") + box.section("t-api-exporter")));
    host.load();
    host.create_all();
    host.set_epoch(1);
    REQUIRE(host.start_all());
    host.stop_all();
    host.destroy_all();
  }
  CHECK(box.journal_lines() == std::vector<std::string>{
                                   "create t-api-exporter",
                                   "create minor=1 seats=500 started=0 t-api-user",
                                   "start t-api-exporter",
                                   "start exporter_started=1 t-api-user",
                                   "stop exporter_started=1 t-api-user",
                                   "stop t-api-exporter",
                                   "destroy t-api-user",
                                   "destroy t-api-exporter",
                               });
}

TEST_CASE("a use that no enabled plugin exports is refused before any plugin is created") {
  Sandbox box;
  box.add("t-uses-missing");
  box.add("t-api-exporter");
  CHECK(
      load_refusal(box.node_config(box.section("t-api-exporter") + "[plugins.t-uses-missing]\n")) ==
      box.manifest("t-uses-missing").string() +
          ": plugin t-uses-missing uses backup.v2, which no enabled plugin exports");
  CHECK_FALSE(std::filesystem::exists(box.journal()));
}

TEST_CASE("an exporter that is found but not enabled does not serve a use") {
  Sandbox box;
  box.add("t-api-user");
  box.add("t-api-exporter");
  CHECK(load_refusal(box.node_config(box.section("t-api-user") +
                                     "[plugins.t-api-exporter]\nenabled = false\n")) ==
        box.manifest("t-api-user").string() +
            ": plugin t-api-user uses seats.v1.1, which no enabled plugin exports");
}

TEST_CASE("a use of a newer minor than its exporter offers is refused naming both plugins") {
  Sandbox box;
  box.add("t-uses-newer");
  box.add("t-api-exporter");
  CHECK(load_refusal(box.node_config("[plugins.t-uses-newer]\n" + box.section("t-api-exporter"))) ==
        box.manifest("t-uses-newer").string() +
            ": plugin t-uses-newer uses seats.v1.2, but plugin t-api-exporter exports seats.v1.1");
}

TEST_CASE("a use that two enabled plugins export is refused naming both exporters") {
  Sandbox box;
  box.add("t-api-user");
  box.add("t-api-exporter");
  box.add("t-api-rival");
  CHECK(load_refusal(box.node_config(box.section("t-api-exporter") + box.section("t-api-rival") +
                                     box.section("t-api-user"))) ==
        box.manifest("t-api-user").string() +
            ": plugin t-api-user uses seats.v1.1, which both plugin t-api-exporter and plugin "
            "t-api-rival export (enable only one)");
}

TEST_CASE("a cycle through a use is refused as a dependency cycle") {
  Sandbox box;
  box.add("t-api-user");
  box.add("t-api-exporter");
  box.edit_manifest("t-api-exporter", "exports =", "requires = [\"t-api-user\"]\nexports =");
  CHECK(load_refusal(box.node_config(box.section("t-api-user") + box.section("t-api-exporter"))) ==
        box.manifest("t-api-user").string() +
            ": dependency cycle: t-api-user -> t-api-exporter -> t-api-user");
}

TEST_CASE("an export that create does not hand over fails create, naming the API") {
  Sandbox box;
  box.add("t-export-forgotten");
  PluginHost host(box.node_config("[plugins.t-export-forgotten]\n"));
  host.load();
  CHECK_THROWS_WITH(host.create_all(),
                    box.library("t-export-forgotten").string() +
                        ": create failed: plugin.toml declares exports seats.v1, which create did "
                        "not hand over with api_export");
  CHECK(host.status().at(0).state == PluginState::failed);
}

TEST_CASE("an export at another minor than plugin.toml declares is refused, and create fails") {
  Sandbox box;
  box.add("t-export-wrong-minor");
  PluginHost host(box.node_config("[plugins.t-export-wrong-minor]\n"));
  host.load();
  CHECK_THROWS_WITH(host.create_all(),
                    box.library("t-export-wrong-minor").string() +
                        ": create failed: api_export: seats.v1 at minor 0, but plugin.toml "
                        "declares seats.v1.1");
}

TEST_CASE("check reports a user whose exporter failed to load with the reason") {
  Sandbox box;
  box.add("t-api-user");
  box.add("t-api-exporter");
  box.edit_manifest("t-api-exporter", "version = \"1.0.0\"", "version = \"1.0.1\"");
  PluginHost host(box.node_config(box.section("t-api-exporter") + box.section("t-api-user")));
  const std::vector<CheckResult> results = host.check();
  REQUIRE(results.size() == 2);
  CHECK_FALSE(results[0].ok);
  CHECK_FALSE(results[1].ok);
  CHECK(results[1].error ==
        box.library("t-api-user").string() +
            ": create failed: api_use: seats.v1: no plugin that exports it is loaded "
            "beside this one");
}

TEST_CASE("the supervisor restarts the users of an exporter it restarts, around it") {
  Sandbox box;
  const std::filesystem::path control = box.root() / "control";
  std::filesystem::create_directories(control);
  box.add("t-flaky-exporter");
  box.add("t-flaky-user");
  PluginHost host(
      box.node_config(box.section("t-flaky-user") +
                      box.section("t-flaky-exporter", "control = \"" + control.string() + "\"\n")));
  host.load();
  host.create_all();
  host.set_epoch(1);
  REQUIRE(host.start_all());
  SupervisionPolicy policy;
  policy.restart_backoff = 100ms;
  policy.restart_backoff_max = 400ms;
  policy.failure_grace = 10s;
  Cluster cluster;
  cluster.ready_peer = [](bool) { return std::optional<std::string>(); };
  cluster.hand_over = [](const std::string&, const std::string&) {};
  {
    Supervisor supervisor(host, policy, cluster);
    std::ofstream(control / "report_failed").put('\n');
    REQUIRE(
        eventually([&] { return status_of(host.status(), "t-flaky-exporter").restarts >= 1; }, 5s));
    std::filesystem::remove(control / "report_failed");
    REQUIRE(eventually(
        [&] {
          const PluginStatus exporter = status_of(host.status(), "t-flaky-exporter");
          return exporter.state == PluginState::running && exporter.health == Health::ok;
        },
        5s));
    CHECK(status_of(host.status(), "t-flaky-user").state == PluginState::running);
  }
  host.stop_all();
  const std::vector<std::string> lines = box.journal_lines();
  // The user went down while its exporter still ran, and came back once it ran again.
  CHECK(count(lines, "start exporter_started=1 t-flaky-user") >= 2);
  CHECK(count(lines, "start exporter_started=0 t-flaky-user") == 0);
  CHECK(count(lines, "stop exporter_started=0 t-flaky-user") == 0);
  const std::size_t user_stop = position(lines, "stop exporter_started=1 t-flaky-user");
  CHECK(user_stop < position(lines, "stop"));
}

TEST_CASE("an exporter whose user is faulted is never destroyed: the user's code may call it") {
  Sandbox box;
  const std::filesystem::path control = box.root() / "control";
  std::filesystem::create_directories(control);
  box.add("t-api-exporter");
  box.add("t-hanging-user");
  testing::LogCapture log(box.root() / "log.txt");
  PluginHost host(
      box.node_config(box.section("t-api-exporter") +
                          box.section("t-hanging-user", "control = \"" + control.string() + "\"\n"),
                      "2s", "300ms"));
  host.load();
  host.create_all();
  host.set_epoch(1);
  REQUIRE(host.start_all());
  std::ofstream(control / "hang_stop").put('\n');
  host.stop_all();
  REQUIRE(status_of(host.status(), "t-hanging-user").state == PluginState::faulted);
  host.destroy_all();
  CHECK(count(box.journal_lines(), "destroy t-api-exporter") == 0);
  CHECK(contains(log.text(),
                 "plugin.destroy_skipped id=t-api-exporter reason=user_faulted "
                 "user=t-hanging-user"));
  // Let the abandoned stop return, so that nothing of this test runs into the next.
  std::ofstream(control / "release").put('\n');
  CHECK(eventually([&] { return count(box.journal_lines(), "stop") == 1; }, 5s));
}

}  // namespace emsnode::host
