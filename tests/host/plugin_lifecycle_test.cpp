// The lifecycle the host drives (create, start, stop, destroy, over role flips) and the host
// services a plugin sees, through real plugin libraries.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "host/plugin_host.hpp"
#include "host_test_support.hpp"
#include "support/sanitizers.hpp"

namespace emsnode::host {
namespace {

using namespace std::chrono_literals;
using emsnode::testing::eventually;
using testing::LogCapture;
using testing::Sandbox;

std::chrono::milliseconds time_of(const std::function<void()>& action) {
  const auto began = std::chrono::steady_clock::now();
  action();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               began);
}

// The value of a sample line `name{labels} value` in Prometheus text, or -1.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find(series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 1));
}

}  // namespace

TEST_CASE("a healthy plugin gets every host service through the C ABI") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  ::setenv("EMSNODE_TEST_TOKEN", "s3cret", 1);
  box.add("t-healthy");
  PluginHost host(box.node_config(box.section("t-healthy",
                                              "greeting = \"hi there\"\ncount = 7\nratio = 0.25\n"
                                              "flag = true\ninterval = \"10ms\"\n"
                                              "token = \"env:EMSNODE_TEST_TOKEN\"\n"
                                              "data_dir = \"state\"\nlisten = \"[::1]:8013\"\n"
                                              "tags = [\"x\", \"y\", \"z\"]")));
  host.load();
  host.create_all();
  host.set_epoch(7);
  REQUIRE(host.start_all());

  // The first timer tick reports ok; the posted task set the gauge.
  REQUIRE(eventually([&] { return host.status().at(0).health_detail == "serving"; }));
  CHECK(host.status().at(0).health == Health::ok);
  CHECK(host.status().at(0).state == PluginState::running);
  REQUIRE(eventually([&] {
    return sample(host.metrics().render_prometheus(),
                  "emsnode_plugin_t_healthy_posted{plugin=\"t-healthy\"}") == 42;
  }));
  const std::string metrics = host.metrics().render_prometheus();
  CHECK(contains(metrics,
                 "# HELP emsnode_plugin_t_healthy_ticks_total Timer ticks.\n"
                 "# TYPE emsnode_plugin_t_healthy_ticks_total counter\n"));
  CHECK(sample(metrics,
               "emsnode_plugin_t_healthy_ticks_total{kind=\"timer\",plugin=\"t-healthy\"}") >= 1);
  CHECK(contains(metrics, "# TYPE emsnode_plugin_t_healthy_tick_seconds histogram\n"));
  CHECK(sample(metrics,
               "emsnode_plugin_t_healthy_tick_seconds_bucket{plugin=\"t-healthy\",le=\"0.1\"}") >=
        1);
  CHECK(sample(metrics,
               "emsnode_plugin_t_healthy_tick_seconds_bucket{plugin=\"t-healthy\",le=\"0.01\"}") ==
        0);

  host.stop_all();
  CHECK(host.status().at(0).state == PluginState::stopped);
  CHECK(host.status().at(0).leaked_timers == 0);
  host.destroy_all();

  const std::vector<std::string> journal = box.journal_lines();
  REQUIRE(journal.size() == 4);
  CHECK(journal[0] ==
        "config greeting=hi there count=7 ratio=0.25 flag=1 interval_ms=10 "
        "token=s3cret data_dir=" +
            (box.root() / "state").string() + " listen=[::1]:8013 tags=x,y,z");
  CHECK(journal[1] == "start epoch=7 node=node-a");
  CHECK(journal[2] == "stop post_refused=1");
  CHECK(journal[3] == "destroy");

  const std::string text = log.text();
  CHECK(std::regex_search(text, std::regex("host plugin.loaded id=t-healthy version=1.0.0 abi=1.0 "
                                           "file=" +
                                           box.library("t-healthy").string())));
  CHECK(contains(text, "host plugin.created id=t-healthy elapsed_ms="));
  CHECK(contains(text, "host plugin.started id=t-healthy version=1.0.0 elapsed_ms="));
  CHECK(contains(text, "plugin.t-healthy healthy.created interval_ms=\"from config\""));
  CHECK(contains(text, "host plugin.stopped id=t-healthy elapsed_ms="));
  CHECK(contains(text, "host plugin.destroyed id=t-healthy elapsed_ms="));
  CHECK_FALSE(contains(text, "healthy.trace_enabled"));  // below the configured level
}

TEST_CASE("config defaults from the manifest reach the plugin when its section is empty") {
  Sandbox box;
  box.add("t-healthy");
  PluginHost host(box.node_config(box.section("t-healthy")));
  host.load();
  host.create_all();
  const std::vector<std::string> journal = box.journal_lines();
  REQUIRE(journal.size() == 1);
  CHECK(journal[0] ==
        "config greeting=hello count=3 ratio=0.5 flag=0 interval_ms=20 "
        "token=(none) data_dir=" +
            (box.root() / "data").string() + " listen=127.0.0.1:9 tags=a,b");
}

TEST_CASE("plugins start after the plugins they require and stop in reverse order") {
  Sandbox box;
  for (const char* id : {"t-order-a", "t-order-b", "t-order-c"}) box.add(id);
  // Config order b, c, a; b requires a.
  PluginHost host(box.node_config(box.section("t-order-b") + box.section("t-order-c") +
                                  box.section("t-order-a")));
  host.load();
  host.create_all();
  REQUIRE(host.start_all());
  host.stop_all();
  CHECK(box.journal_lines() == std::vector<std::string>{"start t-order-a", "start t-order-b",
                                                        "start t-order-c", "stop t-order-c",
                                                        "stop t-order-b", "stop t-order-a"});
  std::vector<std::string> status_order;
  for (const PluginStatus& status : host.status()) status_order.push_back(status.id);
  CHECK(status_order == std::vector<std::string>{"t-order-a", "t-order-b", "t-order-c"});
}

TEST_CASE("start and stop repeat on every role flip and a second stop_all does nothing") {
  Sandbox box;
  box.add("t-order-a");
  PluginHost host(box.node_config(box.section("t-order-a")));
  host.load();
  host.create_all();
  host.start_all();
  host.stop_all();
  host.stop_all();
  host.start_all();
  host.stop_all();
  CHECK(box.journal_lines() == std::vector<std::string>{"start t-order-a", "stop t-order-a",
                                                        "start t-order-a", "stop t-order-a"});
  CHECK(host.status().at(0).state == PluginState::stopped);
}

TEST_CASE("a plugin whose start fails is stopped and marked failed while the others run") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  box.add("t-start-fails");
  box.add("t-order-a");
  PluginHost host(box.node_config(box.section("t-start-fails") + box.section("t-order-a")));
  host.load();
  host.create_all();
  CHECK_FALSE(host.start_all());

  const std::vector<PluginStatus> status = host.status();
  CHECK(status_of(status, "t-start-fails").state == PluginState::failed);
  CHECK(status_of(status, "t-start-fails").last_error ==
        "cannot listen on 127.0.0.1:1: address already in use");
  CHECK(status_of(status, "t-order-a").state == PluginState::running);
  CHECK(box.journal_lines() ==
        std::vector<std::string>{"start t-start-fails", "stop t-start-fails", "start t-order-a"});
  CHECK(contains(log.text(),
                 "plugin.start_failed id=t-start-fails reason=error detail=\"cannot "
                 "listen on 127.0.0.1:1: address already in use\""));

  // The next activation tries it again.
  host.stop_all();
  host.start_all();
  CHECK(box.journal_lines().size() == 7);
}

TEST_CASE("plugins that require a failed plugin are skipped with reason dependency_failed") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  box.add("t-start-fails");
  box.add("t-order-c");
  box.add("t-order-a");
  box.edit_manifest("t-order-c", "requires = []", "requires = [\"t-start-fails\"]");
  PluginHost host(box.node_config(box.section("t-order-c") + box.section("t-start-fails") +
                                  box.section("t-order-a")));
  host.load();
  host.create_all();
  CHECK_FALSE(host.start_all());
  const std::vector<PluginStatus> status = host.status();
  CHECK(status_of(status, "t-order-c").state == PluginState::failed);
  CHECK(status_of(status, "t-order-c").last_error ==
        "dependency_failed: t-start-fails is not running");
  CHECK(status_of(status, "t-order-a").state == PluginState::running);
  CHECK(box.journal_lines() ==
        std::vector<std::string>{"start t-start-fails", "stop t-start-fails", "start t-order-a"});
  CHECK(contains(log.text(),
                 "plugin.start_failed id=t-order-c reason=dependency_failed "
                 "dependency=t-start-fails"));
}

TEST_CASE("an exception thrown across the C ABI by start is a failed start") {
  Sandbox box;
  box.add("t-start-throws");
  PluginHost host(box.node_config("[plugins.t-start-throws]\n"));
  host.load();
  host.create_all();
  CHECK_FALSE(host.start_all());
  CHECK(host.status().at(0).state == PluginState::failed);
  CHECK(host.status().at(0).last_error ==
        "threw database handshake failed (no exception may cross the C ABI)");
}

TEST_CASE("a start past its timeout fails, and stop runs only once start has returned") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  box.add("t-start-hangs");
  PluginHost host(box.node_config(box.section("t-start-hangs", "hang = \"600ms\""), "200ms", "3s"));
  host.load();
  host.create_all();
  const auto elapsed = time_of([&] { CHECK_FALSE(host.start_all()); });
  CHECK(elapsed >= 600ms);
  CHECK(host.status().at(0).state == PluginState::failed);
  CHECK(host.status().at(0).last_error == "start did not return within 200ms");
  CHECK(box.journal_lines() == std::vector<std::string>{"start begins", "start returns", "stop"});
  CHECK(contains(log.text(), "plugin.start_failed id=t-start-hangs reason=timeout"));
}

TEST_CASE("a start that outlives the stop deadline too faults the plugin without waiting") {
  Sandbox box;
  box.add("t-start-hangs");
  {
    PluginHost host(
        box.node_config(box.section("t-start-hangs", "hang = \"1500ms\""), "100ms", "300ms"));
    host.load();
    host.create_all();
    const auto elapsed = time_of([&] { CHECK_FALSE(host.start_all()); });
    CHECK_WALL_CLOCK(elapsed < 1000ms);
    CHECK(host.status().at(0).state == PluginState::faulted);
    CHECK(host.status().at(0).last_error ==
          "start had still not returned at the stop deadline of 300ms");
  }
  // The abandoned start finishes on its own, after the host is gone, and never meets a stop.
  CHECK(eventually([&] { return box.journal_lines().size() == 2; }, 5s));
  CHECK(box.journal_lines() == std::vector<std::string>{"start begins", "start returns"});
}

TEST_CASE("a plugin that misses its stop deadline is faulted and does not hold up shutdown") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  box.add("t-never-stops");
  box.add("t-order-a");
  const auto release = box.root() / "release";
  const config::NodeConfig& config =
      box.node_config("[plugins.t-never-stops]\nrelease_file = \"" + release.string() + "\"\n" +
                          box.section("t-order-a"),
                      "2s", "300ms");
  {
    PluginHost host(config);
    host.load();
    host.create_all();
    REQUIRE(host.start_all());
    const auto elapsed = time_of([&] { host.stop_all(); });
    CHECK(elapsed >= 300ms);
    CHECK_WALL_CLOCK(elapsed < 300ms + 500ms);

    const std::vector<PluginStatus> status = host.status();
    CHECK(status_of(status, "t-never-stops").state == PluginState::faulted);
    CHECK(status_of(status, "t-never-stops").last_error ==
          "stop did not return within its deadline of 300ms");
    CHECK(status_of(status, "t-order-a").state == PluginState::stopped);

    // A faulted plugin is never started again; the others are.
    host.start_all();
    CHECK(host.status().at(0).state == PluginState::faulted);
    CHECK(status_of(host.status(), "t-order-a").state == PluginState::running);
    host.destroy_all();
  }
  const std::string text = log.text();
  CHECK(contains(text, "plugin.stop_deadline_missed id=t-never-stops deadline=300ms"));
  CHECK(contains(text, "plugin.faulted id=t-never-stops reason=stop_deadline_missed"));
  CHECK(contains(text, "plugin.destroy_skipped id=t-never-stops reason=faulted"));

  // Released after the host is gone, the abandoned stop still finds its host services.
  std::ofstream(release).put('\n');
  CHECK(eventually([&] { return std::filesystem::exists(release.string() + ".done"); }, 5s));
  CHECK(eventually(
      [&] { return contains(log.text(), "plugin.t-never-stops never_stops.released"); }));
}

TEST_CASE("timers a plugin leaves armed are cancelled and reported when it stops") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt");
  box.add("t-timer-leak");
  PluginHost host(box.node_config("[plugins.t-timer-leak]\n"));
  host.load();
  host.create_all();
  REQUIRE(host.start_all());
  host.stop_all();
  CHECK(host.status().at(0).state == PluginState::stopped);
  CHECK(host.status().at(0).leaked_timers == 1);
  CHECK(contains(log.text(), "plugin.timer_leaked id=t-timer-leak count=1"));
  host.start_all();
  host.stop_all();
  CHECK(host.status().at(0).leaked_timers == 2);
}

TEST_CASE("the host's metrics registry holds core and plugin metrics together") {
  Sandbox box;
  box.add("t-healthy");
  auto registry = std::make_shared<metrics::MetricsRegistry>();
  registry->gauge("emsnode_role_active", "1 while active.").set(1);
  const config::NodeConfig& config = box.node_config(box.section("t-healthy"));
  PluginHost host(config, PluginHost::default_search_dirs(config), registry);
  host.load();
  host.create_all();
  CHECK(&host.metrics() == registry.get());
  const std::string text = registry->render_prometheus();
  CHECK(contains(text, "emsnode_role_active 1\n"));
  CHECK(contains(text,
                 "emsnode_plugin_t_healthy_ticks_total{kind=\"timer\",plugin=\"t-healthy\"} 0\n"));
}

}  // namespace emsnode::host
