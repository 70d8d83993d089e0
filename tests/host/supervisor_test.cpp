// Supervision: holding the lease means serving. Real plugin libraries (t-flaky, steered by files
// in its control folder), a real PluginHost and Supervisor; the cluster is two callbacks.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <mutex>
#include <random>

#include "host/plugin_host.hpp"
#include "host/supervisor.hpp"
#include "host_test_support.hpp"

namespace emsnode::host {
namespace {

using namespace std::chrono_literals;
using emsnode::testing::eventually;
using testing::LogCapture;
using testing::Sandbox;

std::size_t count(const std::vector<std::string>& lines, const std::string& line) {
  return static_cast<std::size_t>(std::count(lines.begin(), lines.end(), line));
}

// Fast enough for a test, slow enough to tell the steps apart.
SupervisionPolicy quick_policy() {
  SupervisionPolicy policy;
  policy.restart_backoff = 100ms;
  policy.restart_backoff_max = 400ms;
  policy.failure_grace = 1s;
  policy.handover_holdoff = 3s;
  return policy;
}

// The rest of the cluster as the supervisor sees it: a peer that may or may not be ready, and
// the handovers asked for.
struct FakeCluster {
  std::mutex mutex;
  std::optional<std::string> peer;
  std::optional<std::string> held_off_peer;  // counts only when asked `or_held_off`
  std::vector<std::pair<std::string, std::string>> handovers;  // (to, reason)

  Cluster cluster() {
    Cluster c;
    c.ready_peer = [this](bool or_held_off) {
      std::lock_guard lock(mutex);
      return peer ? peer : (or_held_off ? held_off_peer : std::nullopt);
    };
    c.hand_over = [this](const std::string& to, const std::string& reason) {
      std::lock_guard lock(mutex);
      handovers.emplace_back(to, reason);
    };
    return c;
  }
  std::size_t handover_count() {
    std::lock_guard lock(mutex);
    return handovers.size();
  }
};

// A sandbox with t-flaky (steered through control()) and a well-behaved t-order-a beside it.
struct Fixture {
  Sandbox box;
  std::filesystem::path control = box.root() / "control";
  std::unique_ptr<PluginHost> host;

  explicit Fixture(const std::string& flaky_extra = "", const std::string& stop_deadline = "2s") {
    std::filesystem::create_directories(control);
    box.add("t-flaky");
    box.add("t-order-a");
    const config::NodeConfig& config = box.node_config(
        box.section("t-flaky", "control = \"" + control.string() + "\"\n" + flaky_extra) +
            "[plugins.t-order-a]\n",
        "2s", stop_deadline);
    host = std::make_unique<PluginHost>(config);
    host->load();
    host->create_all();
    host->set_epoch(1);  // as the node does before start_all
  }
  ~Fixture() {
    tell("release");
    host->destroy_all();
  }

  void tell(const std::string& what) const { std::ofstream(control / what).put('\n'); }
  void forget(const std::string& what) const { std::filesystem::remove(control / what); }
  PluginStatus flaky() const { return status_of(host->status(), "t-flaky"); }
};

TEST_CASE("the restart backoff doubles up to its cap, each wait within a quarter of it") {
  SupervisionPolicy policy;
  policy.restart_backoff = 400ms;
  policy.restart_backoff_max = 3s;
  std::mt19937 random(7);
  for (int i = 0; i < 200; ++i) {
    const auto first = policy.backoff(0, random);
    CHECK(first >= 300ms);
    CHECK(first <= 500ms);  // the first retry comes within a second
    const auto third = policy.backoff(2, random);
    CHECK(third >= 1200ms);
    CHECK(third <= 2000ms);
    const auto late = policy.backoff(30, random);
    CHECK(late >= 2250ms);
    CHECK(late <= 3750ms);
  }
}

TEST_CASE("a plugin whose start failed is restarted once the cause is gone") {
  Fixture f;
  LogCapture log(f.box.root() / "log.txt");
  f.tell("fail_start");
  CHECK_FALSE(f.host->start_all());
  REQUIRE(f.flaky().state == PluginState::failed);
  FakeCluster cluster;
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  // Retried with backoff while the cause stays...
  CHECK(eventually([&] { return count(f.box.journal_lines(), "start_failed") >= 3; }, 5s));
  CHECK(f.flaky().state != PluginState::running);  // failed, or starting again
  // ...and running again once it is gone, the plugin beside it untouched.
  f.forget("fail_start");
  REQUIRE(eventually([&] { return f.flaky().state == PluginState::running; }, 5s));
  CHECK(f.flaky().restarts == 1);
  CHECK(status_of(f.host->status(), "t-order-a").restarts == 0);
  CHECK(eventually([&] { return contains(log.text(), "plugin.recovered id=t-flaky"); }, 2s));
  const std::string text = log.text();
  CHECK(contains(text, "plugin.down id=t-flaky state=failed"));
  CHECK(contains(text, "plugin.restart_failed id=t-flaky attempt=1"));
  CHECK(contains(text, "plugin.restarted id=t-flaky restarts=1"));
}

TEST_CASE("a running plugin that reports FAILED is stopped and started again") {
  Fixture f;
  REQUIRE(f.host->start_all());
  FakeCluster cluster;
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  REQUIRE(eventually([&] { return f.flaky().health == Health::ok; }, 2s));
  CHECK(f.host->not_serving().empty());

  f.tell("report_failed");
  REQUIRE(eventually([&] { return f.flaky().health == Health::failed; }, 2s));
  // Until the supervisor's restart (a tenth of a second later) takes it down to restart it.
  const std::string missing = f.host->not_serving();
  CHECK((missing == "t-flaky reports failed: told to report failed" ||
         missing.rfind("t-flaky stopping", 0) == 0 || missing.rfind("t-flaky starting", 0) == 0));
  // Restarted again and again while it keeps failing...
  CHECK(eventually([&] { return f.flaky().restarts >= 2; }, 5s));
  f.forget("report_failed");
  // ...and healthy once it no longer does.
  CHECK(eventually(
      [&] { return f.flaky().state == PluginState::running && f.flaky().health == Health::ok; },
      5s));
  CHECK(eventually([&] { return f.host->not_serving().empty(); }, 2s));
  const auto lines = f.box.journal_lines();
  CHECK(count(lines, "stop") >= 2);
  CHECK(count(lines, "start") == count(lines, "stop") + 1);
}

TEST_CASE("a required plugin down past the grace hands over to a ready peer, which holds it off") {
  Fixture f;
  LogCapture log(f.box.root() / "log.txt");
  REQUIRE(f.host->start_all());
  FakeCluster cluster;
  cluster.peer = "node-b";
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  CHECK(supervisor.promotion_blocker().empty());

  f.tell("fail_start");
  f.tell("report_failed");
  const auto began = std::chrono::steady_clock::now();
  REQUIRE(eventually([&] { return cluster.handover_count() == 1; }, 5s));
  // Not before the grace.
  CHECK(std::chrono::steady_clock::now() - began >= quick_policy().failure_grace);
  {
    std::lock_guard lock(cluster.mutex);
    CHECK(cluster.handovers.at(0) ==
          std::make_pair(std::string("node-b"), std::string("plugin_failed:t-flaky")));
  }
  CHECK(contains(log.text(),
                 "supervisor.handover id=t-flaky to=node-b reason=plugin_failed:t-flaky"));
  // Once: the handover is under way.
  std::this_thread::sleep_for(300ms);
  CHECK(cluster.handover_count() == 1);

  // Demoted: the node stays out while the peer could serve, and only then.
  f.host->stop_all();
  CHECK(supervisor.standing_aside() == "plugin_failed:t-flaky");
  CHECK(supervisor.promotion_blocker() == "plugin_failed:t-flaky");
  {
    std::lock_guard lock(cluster.mutex);
    cluster.peer.reset();
    cluster.held_off_peer = "node-c";  // held off too: no better than this node
  }
  CHECK(supervisor.promotion_blocker().empty());
  {
    std::lock_guard lock(cluster.mutex);
    cluster.held_off_peer.reset();
    cluster.peer = "node-b";
  }
  CHECK(supervisor.promotion_blocker() == "plugin_failed:t-flaky");
  {
    std::lock_guard lock(cluster.mutex);
    cluster.peer.reset();
  }
  CHECK(supervisor.promotion_blocker().empty());
  {
    std::lock_guard lock(cluster.mutex);
    cluster.peer = "node-b";
  }
  // The hold-off ends.
  CHECK(eventually([&] { return supervisor.promotion_blocker().empty(); }, 5s));
}

TEST_CASE("a lone node keeps serving what it can and says so") {
  Fixture f;
  LogCapture log(f.box.root() / "log.txt");
  REQUIRE(f.host->start_all());
  FakeCluster cluster;  // no peer
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  f.tell("fail_start");
  f.tell("report_failed");
  REQUIRE(eventually([&] { return contains(log.text(), "supervisor.no_peer id=t-flaky"); }, 5s));
  CHECK(cluster.handover_count() == 0);
  CHECK(status_of(f.host->status(), "t-order-a").state == PluginState::running);
  CHECK(f.host->serving());

  // A peer shows up: the node hands over then.
  {
    std::lock_guard lock(cluster.mutex);
    cluster.peer = "node-b";
  }
  CHECK(eventually([&] { return cluster.handover_count() == 1; }, 5s));
}

TEST_CASE("a plugin that is not required is restarted but never makes the node hand over") {
  Fixture f("required = false");
  REQUIRE(f.host->start_all());
  FakeCluster cluster;
  cluster.peer = "node-b";
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  f.tell("fail_start");
  f.tell("report_failed");
  REQUIRE(eventually([&] { return f.flaky().state == PluginState::failed; }, 3s));
  std::this_thread::sleep_for(quick_policy().failure_grace + 500ms);
  CHECK(cluster.handover_count() == 0);
  CHECK_FALSE(status_of(f.host->status(), "t-flaky").required);
}

TEST_CASE("a faulted plugin is not restarted and keeps the node out while a peer could serve") {
  Fixture f("", "200ms");
  REQUIRE(f.host->start_all());
  FakeCluster cluster;
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  f.tell("hang_stop");
  f.host->stop_all();
  REQUIRE(f.flaky().state == PluginState::faulted);
  CHECK(supervisor.promotion_blocker().empty());  // alone: it may serve what it can
  CHECK(supervisor.standing_aside() == "plugin_faulted");
  // A node held off after its own handover is still the better choice.
  {
    std::lock_guard lock(cluster.mutex);
    cluster.held_off_peer = "node-c";
  }
  CHECK(supervisor.promotion_blocker() == "plugin_faulted");
  {
    std::lock_guard lock(cluster.mutex);
    cluster.held_off_peer.reset();
    cluster.peer = "node-b";
  }
  CHECK(supervisor.promotion_blocker() == "plugin_faulted");

  // Promoted anyway (say the peer died): the faulted plugin stays down, the rest serve.
  CHECK_FALSE(f.host->start_all());
  CHECK_FALSE(f.host->restart("t-flaky"));
  CHECK(status_of(f.host->status(), "t-order-a").state == PluginState::running);
  CHECK(contains(f.host->not_serving(), "t-flaky faulted"));
}

TEST_CASE("nothing is restarted once the host stopped serving") {
  Fixture f;
  f.tell("fail_start");
  CHECK_FALSE(f.host->start_all());
  f.host->stop_all();
  CHECK_FALSE(f.host->serving());
  f.forget("fail_start");
  CHECK_FALSE(f.host->restart("t-flaky"));
  FakeCluster cluster;
  Supervisor supervisor(*f.host, quick_policy(), cluster.cluster());
  std::this_thread::sleep_for(500ms);
  CHECK(f.flaky().state == PluginState::failed);
  CHECK(count(f.box.journal_lines(), "start") == 0);
}

TEST_CASE("nothing is restarted once a fencing node dropped its epoch, before its stop") {
  Fixture f;
  REQUIRE(f.host->start_all());
  f.tell("report_failed");
  REQUIRE(eventually([&] { return f.flaky().health == Health::failed; }, 2s));
  f.host->set_epoch(0);
  CHECK_FALSE(f.host->restart("t-flaky"));
  CHECK(count(f.box.journal_lines(), "stop") == 0);
}

}  // namespace
}  // namespace emsnode::host
