// The plugin.hpp wrapper at the ABI boundary: exceptions become error results, stop runs once
// per start attempt, and what a plugin posts or arms is released at the right time.
#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace sdk = emsnode::sdk;
using emsnode::sdk::testing::FakeHost;
using namespace std::chrono_literals;

// What the test plugins did; reset by each test that uses them.
struct Probe {
  int created = 0;
  int starts = 0;
  int stops = 0;
  int destroyed = 0;
  std::chrono::milliseconds last_deadline{0};
  std::weak_ptr<int> posted_token;
};
Probe probe;

// Fails where its config key `fail_in` says: create, start, stop (the first stop only), or
// create-unknown / start-unknown to throw something that is not a std::exception.
class ProbePlugin : public sdk::Plugin {
 public:
  explicit ProbePlugin(sdk::Host& host)
      : Plugin(host), fail_in_(host.config().find<std::string>("fail_in").value_or("")) {
    ++probe.created;
    if (fail_in_ == "create") throw sdk::ConfigError("fail_in", "refused on purpose");
    if (fail_in_ == "create-unknown") throw 42;
  }
  ~ProbePlugin() override { ++probe.destroyed; }

  void start() override {
    ++probe.starts;
    if (fail_in_ == "start") throw std::runtime_error("cannot listen on 127.0.0.1:1: taken");
    if (fail_in_ == "start-unknown") throw 7;
  }

  void stop(std::chrono::milliseconds deadline) override {
    ++probe.stops;
    probe.last_deadline = deadline;
    if (fail_in_ == "stop" && probe.stops == 1) throw std::runtime_error("worker did not join");
  }

 private:
  std::string fail_in_;
};

constexpr emsnode_plugin_api kProbePlugin = sdk::make_plugin_api<ProbePlugin>("probe", "2.3.4");

// Posts work in start that the test never runs.
class PosterPlugin : public sdk::Plugin {
 public:
  using Plugin::Plugin;
  void start() override {
    auto token = std::make_shared<int>(0);
    probe.posted_token = token;
    host().post([token] {});
  }
  void stop(std::chrono::milliseconds) override {}
};

constexpr emsnode_plugin_api kPosterPlugin = sdk::make_plugin_api<PosterPlugin>("poster", "1.0");

// Arms a periodic timer in start; cancels it in stop unless config `leak` is true. Keeps the
// handles of every active period until it is destroyed.
class TickerPlugin : public sdk::Plugin {
 public:
  explicit TickerPlugin(sdk::Host& host)
      : Plugin(host), leak_(host.config().find<bool>("leak").value_or(false)) {}
  void start() override {
    timers_.push_back(host().every(100ms, [] {}));
  }
  void stop(std::chrono::milliseconds) override {
    if (!leak_) timers_.clear();
  }

 private:
  bool leak_;
  std::vector<sdk::Timer> timers_;
};

constexpr emsnode_plugin_api kTickerPlugin = sdk::make_plugin_api<TickerPlugin>("ticker", "1.0");

}  // namespace

TEST_CASE("the plugin table carries the facts the plugin was compiled with") {
  CHECK(kProbePlugin.struct_size == sizeof(emsnode_plugin_api));
  CHECK(kProbePlugin.abi_major == EMSNODE_ABI_MAJOR);
  CHECK(kProbePlugin.abi_minor == EMSNODE_ABI_MINOR);
  CHECK(std::string(kProbePlugin.id.ptr, kProbePlugin.id.len) == "probe");
  CHECK(std::string(kProbePlugin.version.ptr, kProbePlugin.version.len) == "2.3.4");
}

TEST_CASE("the plugin id rule is the one emsnode_add_plugin applies") {
  STATIC_REQUIRE(sdk::detail::valid_plugin_id("echo"));
  STATIC_REQUIRE(sdk::detail::valid_plugin_id("mq-2_b"));
  STATIC_REQUIRE_FALSE(sdk::detail::valid_plugin_id(""));
  STATIC_REQUIRE_FALSE(sdk::detail::valid_plugin_id("Echo"));
  STATIC_REQUIRE_FALSE(sdk::detail::valid_plugin_id("2mq"));
  STATIC_REQUIRE_FALSE(sdk::detail::valid_plugin_id("a.b"));
}

TEST_CASE("an exception thrown while creating a plugin fails create with its message") {
  probe = {};
  FakeHost fake;
  fake.config("fail_in", "create");
  CHECK(fake.create(&kProbePlugin) == EMSNODE_ERROR);
  CHECK(fake.last_error() == "config key 'fail_in': refused on purpose");
  CHECK(probe.created == 1);
}

TEST_CASE("an exception that is not a std::exception fails the call as an unknown exception") {
  probe = {};
  FakeHost fake;
  SECTION("in create") {
    fake.config("fail_in", "create-unknown");
    CHECK(fake.create(&kProbePlugin) == EMSNODE_ERROR);
  }
  SECTION("in start") {
    fake.config("fail_in", "start-unknown");
    REQUIRE(fake.create(&kProbePlugin) == EMSNODE_OK);
    CHECK(fake.start() == EMSNODE_ERROR);
  }
  CHECK(fake.last_error() == "unknown exception");
}

TEST_CASE("an exception thrown by start fails start with its message, and stop still runs") {
  probe = {};
  FakeHost fake;
  fake.config("fail_in", "start");
  REQUIRE(fake.create(&kProbePlugin) == EMSNODE_OK);
  CHECK(fake.start() == EMSNODE_ERROR);
  CHECK(fake.last_error() == "cannot listen on 127.0.0.1:1: taken");
  CHECK(fake.stop(1500ms) == EMSNODE_OK);
  CHECK(probe.stops == 1);
  CHECK(probe.last_deadline == 1500ms);
}

TEST_CASE("a stop that threw is called again by the next stop") {
  probe = {};
  FakeHost fake;
  fake.config("fail_in", "stop");
  REQUIRE(fake.create(&kProbePlugin) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_ERROR);
  CHECK(fake.last_error() == "worker did not join");
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(probe.stops == 2);
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(probe.stops == 2);
}

TEST_CASE("the plugin's stop runs once per start, never without one") {
  probe = {};
  FakeHost fake;
  REQUIRE(fake.create(&kProbePlugin) == EMSNODE_OK);

  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(probe.stops == 0);

  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(probe.stops == 1);

  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.stop() == EMSNODE_OK);
  CHECK(probe.starts == 2);
  CHECK(probe.stops == 2);

  fake.destroy();
  CHECK(probe.destroyed == 1);
}

TEST_CASE("a huge stop deadline reaches the plugin without overflowing") {
  probe = {};
  FakeHost fake;
  void* instance = nullptr;
  // FakeHost::stop takes milliseconds; call the table directly with the largest uint64_t.
  REQUIRE(kProbePlugin.create(fake.api(), fake.ctx(), &instance) == EMSNODE_OK);
  REQUIRE(kProbePlugin.start(instance) == EMSNODE_OK);
  CHECK(kProbePlugin.stop(instance, UINT64_MAX) == EMSNODE_OK);
  CHECK(probe.last_deadline == std::chrono::milliseconds::max());
  kProbePlugin.destroy(instance);
}

TEST_CASE("a host of another ABI major is refused at create with both versions named") {
  FakeHost fake;
  emsnode_host_api other = *fake.api();
  other.abi_major = EMSNODE_ABI_MAJOR + 1;
  void* instance = nullptr;
  CHECK(kProbePlugin.create(&other, fake.ctx(), &instance) == EMSNODE_ERROR);
  CHECK(instance == nullptr);
  CHECK_THAT(fake.last_error(), Catch::Contains("the host speaks plugin ABI " +
                                                std::to_string(EMSNODE_ABI_MAJOR + 1)));
}

TEST_CASE("work posted but never run is released when the plugin starts again") {
  probe = {};
  FakeHost fake;
  REQUIRE(fake.create(&kPosterPlugin) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.posted() == 1);
  REQUIRE(fake.stop() == EMSNODE_OK);
  CHECK(fake.posted() == 0);  // the host dropped it: it will never run
  const std::weak_ptr<int> first = probe.posted_token;
  CHECK_FALSE(first.expired());

  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(first.expired());
  REQUIRE(fake.stop() == EMSNODE_OK);

  const std::weak_ptr<int> second = probe.posted_token;
  fake.destroy();
  CHECK(second.expired());
}

TEST_CASE("a plugin that cancels its timers in stop leaks none") {
  FakeHost fake;
  REQUIRE(fake.create(&kTickerPlugin) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.armed_timers() == 1);
  REQUIRE(fake.stop() == EMSNODE_OK);
  CHECK(fake.armed_timers() == 0);
  CHECK(fake.leaked_timers() == 0);
}

namespace {

std::vector<emsnode_timer_id> cancelled;
void (*fake_cancel)(emsnode_host_ctx*, emsnode_timer_id) = nullptr;

void record_cancel(emsnode_host_ctx* ctx, emsnode_timer_id timer) {
  cancelled.push_back(timer);
  fake_cancel(ctx, timer);
}

}  // namespace

TEST_CASE("a timer handle kept past stop does not cancel by its old id in a later period") {
  // The host cancels every timer when stop returns and may hand the id out again: a handle from
  // an earlier active period must leave it alone.
  FakeHost fake;
  emsnode_host_api recording = *fake.api();
  fake_cancel = recording.timer_cancel;
  recording.timer_cancel = &record_cancel;
  cancelled.clear();
  fake.config("leak", true);

  void* instance = nullptr;
  REQUIRE(kTickerPlugin.create(&recording, fake.ctx(), &instance) == EMSNODE_OK);
  fake.set_started(true);
  REQUIRE(kTickerPlugin.start(instance) == EMSNODE_OK);  // timer 1
  REQUIRE(kTickerPlugin.stop(instance, 1000) == EMSNODE_OK);
  REQUIRE(kTickerPlugin.start(instance) == EMSNODE_OK);  // timer 2
  REQUIRE(kTickerPlugin.stop(instance, 1000) == EMSNODE_OK);
  kTickerPlugin.destroy(instance);  // drops both handles

  CHECK(cancelled == std::vector<emsnode_timer_id>{2});
}

TEST_CASE("a timer left armed when stop returns is reported as leaked by the fake host") {
  FakeHost fake;
  fake.config("leak", true);
  REQUIRE(fake.create(&kTickerPlugin) == EMSNODE_OK);
  REQUIRE(fake.start() == EMSNODE_OK);
  REQUIRE(fake.stop() == EMSNODE_OK);
  CHECK(fake.leaked_timers() == 1);
  CHECK(fake.armed_timers() == 0);
}
