// emsnode::sdk::Host over the fake host: config, log, executor and timers, metrics, health, and
// a host whose service table predates this header.
#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace sdk = emsnode::sdk;
using emsnode::sdk::testing::FakeHost;
using emsnode::sdk::testing::Fields;
using namespace std::chrono_literals;

// A started fake host and the wrapper over it, as a plugin sees them between start and stop.
struct Started {
  Started() { fake.set_started(true); }
  FakeHost fake;
  sdk::Host host{fake.api(), fake.ctx()};
};

}  // namespace

TEST_CASE("config values are read with their types") {
  FakeHost fake;
  fake.config("listen", "127.0.0.1:8013")
      .config("port", 8013)
      .config("ratio", 0.25)
      .config("tls", true)
      .config("timeout", std::chrono::milliseconds(1500))
      .config("peers", {"a", "b"});
  const sdk::Config config = sdk::Host(fake.api(), fake.ctx()).config();

  CHECK(config.string("listen") == "127.0.0.1:8013");
  CHECK(config.integer("port") == 8013);
  CHECK(config.floating("ratio") == 0.25);
  CHECK(config.boolean("tls"));
  CHECK(config.duration("timeout") == 1500ms);
  CHECK(config.strings("peers") == std::vector<std::string>{"a", "b"});
  CHECK(config.find<std::int64_t>("port") == 8013);
  CHECK_FALSE(config.find<std::string>("absent"));
}

TEST_CASE("a missing config key or one of another type throws a ConfigError naming the key") {
  FakeHost fake;
  fake.config("port", "8013");
  const sdk::Config config = sdk::Host(fake.api(), fake.ctx()).config();

  try {
    config.integer("port");
    FAIL("no exception");
  } catch (const sdk::ConfigError& e) {
    CHECK(e.key() == "port");
    CHECK_THAT(e.what(), Catch::StartsWith("config key 'port': missing or not an integer"));
  }
  CHECK_THROWS_WITH(config.duration("timeout"), Catch::Contains("'timeout'"));
  CHECK_THROWS_AS(config.strings("port"), sdk::ConfigError);
  CHECK_FALSE(config.find<double>("port"));
}

TEST_CASE("log records reach the host with their level, event and fields as text") {
  FakeHost fake;
  const sdk::Host host(fake.api(), fake.ctx());
  host.log().warning("cache.evicted", {{"key", "a"},
                                       {"count", 3},
                                       {"size", std::uint64_t{1} << 40},
                                       {"full", true},
                                       {"ratio", 0.5},
                                       {"after", std::chrono::milliseconds(250)},
                                       {"owner", std::string("node2")}});
  const auto record = fake.last_log("cache.evicted");
  REQUIRE(record);
  CHECK(record->level == EMSNODE_LOG_WARNING);
  CHECK(record->fields == Fields{{"key", "a"},
                                 {"count", "3"},
                                 {"size", "1099511627776"},
                                 {"full", "true"},
                                 {"ratio", "0.5"},
                                 {"after", "250ms"},
                                 {"owner", "node2"}});
}

TEST_CASE("a record with more fields than fit on the stack keeps them all") {
  FakeHost fake;
  const sdk::Host host(fake.api(), fake.ctx());
  host.log().info("many", {{"a", 1},
                           {"b", 2},
                           {"c", 3},
                           {"d", 4},
                           {"e", 5},
                           {"f", 6},
                           {"g", 7},
                           {"h", 8},
                           {"i", 9},
                           {"j", 10},
                           {"k", 11},
                           {"l", 12},
                           {"m", 13},
                           {"n", 14},
                           {"o", 15},
                           {"p", 16},
                           {"q", 17}});
  const auto record = fake.last_log("many");
  REQUIRE(record);
  REQUIRE(record->fields.size() == 17);
  CHECK(record->field("q") == "17");
}

TEST_CASE("the logger says which levels the host would write") {
  FakeHost fake;
  fake.set_log_level(EMSNODE_LOG_INFO);
  const sdk::Logger log = sdk::Host(fake.api(), fake.ctx()).log();
  CHECK_FALSE(log.enabled(sdk::LogLevel::debug));
  CHECK(log.enabled(sdk::LogLevel::info));
  CHECK(log.enabled(sdk::LogLevel::error));
  log.debug("dropped");
  log.error("kept");
  CHECK(fake.logs().size() == 1);
  CHECK(fake.logs().front().event == "kept");
}

TEST_CASE("identity comes from the host") {
  FakeHost fake;
  fake.set_node_id("node2").set_epoch(42);
  const sdk::Host host(fake.api(), fake.ctx());
  CHECK(host.node_id() == "node2");
  CHECK(host.epoch() == 42);
}

TEST_CASE("posted work runs on the host's executor, in order") {
  Started s;
  std::vector<int> order;
  CHECK(s.host.post([&] { order.push_back(1); }));
  CHECK(s.host.post([&] { order.push_back(2); }));
  CHECK(order.empty());
  CHECK(s.fake.run_posted() == 2);
  CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("post is refused while the plugin is not started, and the work is released") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  auto token = std::make_shared<int>(0);
  const std::weak_ptr<int> watch = token;
  CHECK_FALSE(host.post([token] {}));
  token.reset();
  CHECK(watch.expired());
  CHECK(fake.posted() == 0);
}

TEST_CASE("an exception from posted work or a timer is logged and goes no further") {
  Started s;
  REQUIRE(s.host.post([] { throw std::runtime_error("bad input"); }));
  CHECK_NOTHROW(s.fake.run_posted());
  auto record = s.fake.last_log("sdk.callback_failed");
  REQUIRE(record);
  CHECK(record->level == EMSNODE_LOG_ERROR);
  CHECK(record->field("kind") == "post");
  CHECK(record->field("error") == "bad input");

  const sdk::Timer timer = s.host.after(10ms, [] { throw 5; });
  CHECK_NOTHROW(s.fake.advance(10ms));
  record = s.fake.last_log("sdk.callback_failed");
  REQUIRE(record);
  CHECK(record->field("kind") == "timer");
  CHECK(record->field("error") == "unknown exception");
}

TEST_CASE("a periodic timer fires once per period until its handle is destroyed") {
  Started s;
  int ticks = 0;
  {
    const sdk::Timer timer = s.host.every(100ms, [&] { ++ticks; });
    s.fake.advance(99ms);
    CHECK(ticks == 0);
    s.fake.advance(251ms);
    CHECK(ticks == 3);
    CHECK(s.fake.armed_timers() == 1);
  }
  CHECK(s.fake.armed_timers() == 0);
  s.fake.advance(1s);
  CHECK(ticks == 3);
}

TEST_CASE("a one-shot timer fires once after its delay") {
  Started s;
  int fired = 0;
  const sdk::Timer timer = s.host.after(50ms, [&] { ++fired; });
  s.fake.advance(49ms);
  CHECK(fired == 0);
  s.fake.advance(1ms);
  s.fake.advance(1s);
  CHECK(fired == 1);
}

TEST_CASE("moving a timer handle moves the timer; assigning over one cancels the old timer") {
  Started s;
  int first = 0;
  int second = 0;
  sdk::Timer timer = s.host.every(10ms, [&] { ++first; });
  sdk::Timer moved = std::move(timer);
  CHECK(timer.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  CHECK_FALSE(moved.empty());
  s.fake.advance(10ms);
  CHECK(first == 1);

  moved = s.host.every(10ms, [&] { ++second; });
  s.fake.advance(10ms);
  CHECK(first == 1);
  CHECK(second == 1);
  moved.cancel();
  CHECK(moved.empty());
  CHECK(s.fake.armed_timers() == 0);
}

TEST_CASE("a timer handle destroyed inside its own callback lets the callback finish") {
  Started s;
  sdk::Timer timer;
  auto token = std::make_shared<int>(0);
  const std::weak_ptr<int> watch = token;
  bool callable_alive_after_reset = false;
  int runs = 0;
  timer = s.host.every(10ms, [&, token] {
    ++runs;
    timer = sdk::Timer();
    // The closure (and its copy of token) must still exist while it runs.
    callable_alive_after_reset = !watch.expired();
  });
  token.reset();

  s.fake.advance(10ms);
  CHECK(runs == 1);
  CHECK(callable_alive_after_reset);
  CHECK(watch.expired());  // released once the callback returned
  s.fake.advance(100ms);
  CHECK(runs == 1);
}

TEST_CASE("cancelling a timer from another thread waits for its running callback") {
  Started s;
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  sdk::Timer timer = s.host.after(1ms, [&] {
    in_callback = true;
    while (!release) std::this_thread::yield();
    finished = true;
  });
  std::thread executor([&] { s.fake.advance(1ms); });
  while (!in_callback) std::this_thread::yield();

  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    timer.cancel();
    cancelled = true;
  });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(cancelled);  // still blocked on the running callback
  release = true;
  canceller.join();
  executor.join();
  CHECK(finished);
  CHECK(cancelled);
}

TEST_CASE("timers are refused while the plugin is not started") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  CHECK_THROWS_WITH(host.after(1ms, [] {}), Catch::Contains("not started"));
}

TEST_CASE("metrics record through their handles") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  const sdk::Counter requests = host.counter("requests_total", "Requests", {{"kind", "get"}});
  const sdk::Gauge open = host.gauge("open", "Open now");
  const sdk::Histogram latency = host.histogram("latency_seconds", "Latency", {0.1, 1.0});

  requests.add();
  requests.add(2);
  open.set(5);
  open.add(-2);
  latency.observe(0.05);
  latency.observe(3);

  CHECK(fake.metric("requests_total", {{"kind", "get"}})->value == 3);
  CHECK_FALSE(fake.metric("requests_total"));  // another label set is another series
  CHECK(fake.metric("open")->value == 3);
  const auto histogram = fake.metric("latency_seconds");
  REQUIRE(histogram);
  CHECK(histogram->kind == EMSNODE_METRIC_HISTOGRAM);
  CHECK(histogram->buckets == std::vector<double>{0.1, 1.0});
  CHECK(histogram->observations == std::vector<double>{0.05, 3});
}

TEST_CASE("registering a metric again returns the same one") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  host.counter("hits_total", "Hits").add(1);
  host.counter("hits_total", "Hits").add(1);
  CHECK(fake.metrics().size() == 1);
  CHECK(fake.metric("hits_total")->value == 2);
}

TEST_CASE("a metric the host refuses throws an error naming it") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  CHECK_THROWS_WITH(host.counter("Bad-Name", "x"), Catch::Contains("metric 'Bad-Name'"));
  host.counter("things", "x");
  CHECK_THROWS_AS(host.gauge("things", "x"), sdk::Error);
  CHECK(fake.logs("host.metric_refused").size() == 2);
}

TEST_CASE("health reports reach the host") {
  FakeHost fake;
  sdk::Host host(fake.api(), fake.ctx());
  host.health(EMSNODE_HEALTH_DEGRADED, "upstream slow");
  CHECK(fake.health() == EMSNODE_HEALTH_DEGRADED);
  CHECK(fake.health_detail() == "upstream slow");
}

TEST_CASE("fits tells whether a table written with a smaller struct_size has a member") {
  emsnode_host_api table{};
  table.struct_size = offsetof(emsnode_host_api, post);
  table.current_epoch = [](emsnode_host_ctx*) -> std::uint64_t { return 0; };
  table.post = [](emsnode_host_ctx*, emsnode_task_fn, void*) { return EMSNODE_OK; };
  CHECK(sdk::fits(table, &emsnode_host_api::current_epoch));
  CHECK_FALSE(sdk::fits(table, &emsnode_host_api::post));     // beyond struct_size
  CHECK_FALSE(sdk::fits(table, &emsnode_host_api::node_id));  // inside, but not set
  CHECK(sdk::fits(table, &emsnode_host_api::abi_minor));
}

TEST_CASE("a host whose table ends early offers what it has and refuses the rest clearly") {
  FakeHost fake;
  fake.config("listen", "127.0.0.1:1");
  fake.set_started(true);
  emsnode_host_api old = *fake.api();
  old.struct_size = offsetof(emsnode_host_api, post);  // as if built before post existed
  sdk::Host host(&old, fake.ctx());

  CHECK(host.supports(&emsnode_host_api::current_epoch));
  CHECK_FALSE(host.supports(&emsnode_host_api::post));
  CHECK(host.config().string("listen") == "127.0.0.1:1");
  host.log().info("still.logged");
  CHECK(fake.last_log("still.logged"));

  CHECK_THROWS_AS(host.post([] {}), sdk::UnsupportedError);
  CHECK_THROWS_WITH(host.post([] {}),
                    Catch::Contains("'post'") && Catch::Contains(std::to_string(old.struct_size)));
  CHECK_THROWS_WITH(host.after(1ms, [] {}), Catch::Contains("'timer_start'"));
  CHECK_THROWS_WITH(host.counter("c", "c"), Catch::Contains("'metric_add'"));
  CHECK_THROWS_WITH(host.histogram("h", "h"), Catch::Contains("'metric_observe'"));
  CHECK_THROWS_WITH(host.health(EMSNODE_HEALTH_OK), Catch::Contains("'health_report'"));
  CHECK(fake.posted() == 0);
}

TEST_CASE("a host whose table predates logging drops records instead of failing") {
  FakeHost fake;
  emsnode_host_api old = *fake.api();
  old.struct_size = offsetof(emsnode_host_api, log);
  const sdk::Host host(&old, fake.ctx());
  CHECK_FALSE(host.log().enabled(sdk::LogLevel::error));
  CHECK_NOTHROW(host.log().error("lost"));
  CHECK(fake.logs().empty());
}
