// The fake host's own rules: the checks it makes on a plugin table, its clock and executor, and
// the node behaviours it mirrors.
#include <emsnode/plugin.hpp>
#include <emsnode/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace sdk = emsnode::sdk;
using emsnode::sdk::testing::FakeHost;
using namespace std::chrono_literals;

int silent_stops = 0;

// Does nothing but count its stops.
class SilentPlugin : public sdk::Plugin {
 public:
  using Plugin::Plugin;
  void start() override {}
  void stop(std::chrono::milliseconds) override { ++silent_stops; }
};

constexpr emsnode_plugin_api kSilentPlugin = sdk::make_plugin_api<SilentPlugin>("silent", "1.0");

emsnode_status fail_silently(void*) {
  return EMSNODE_ERROR;
}

}  // namespace

TEST_CASE("the fake host refuses a NULL table, as from an entry point that declined") {
  FakeHost fake;
  CHECK(fake.create(nullptr) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::Contains("returned NULL"));
}

TEST_CASE("the fake host refuses a plugin built for another major or a newer minor") {
  emsnode_plugin_api table = kSilentPlugin;
  SECTION("another major") {
    table.abi_major = EMSNODE_ABI_MAJOR + 1;
  }
  SECTION("a newer minor") {
    table.abi_minor = EMSNODE_ABI_MINOR + 1;
  }
  FakeHost fake;
  CHECK(fake.create(&table) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::Contains("the plugin was built for ABI"));
}

TEST_CASE("the fake host refuses a plugin table too short for its entry points") {
  emsnode_plugin_api table = kSilentPlugin;
  table.struct_size = offsetof(emsnode_plugin_api, destroy);
  FakeHost fake;
  CHECK(fake.create(&table) == EMSNODE_ERROR);
  CHECK_THAT(fake.last_error(), Catch::Contains("lacks an entry point"));
}

TEST_CASE("the fake host flags a failure the plugin did not explain") {
  emsnode_plugin_api table = kSilentPlugin;
  table.start = &fail_silently;
  FakeHost fake;
  REQUIRE(fake.create(&table) == EMSNODE_OK);
  CHECK(fake.start() == EMSNODE_ERROR);
  CHECK(fake.last_error() == "start failed without calling set_error");
}

TEST_CASE("the fake host resets health to OK at each start") {
  FakeHost fake;
  REQUIRE(fake.create(&kSilentPlugin) == EMSNODE_OK);
  sdk::Host(fake.api(), fake.ctx()).health(EMSNODE_HEALTH_FAILED, "down");
  REQUIRE(fake.start() == EMSNODE_OK);
  CHECK(fake.health() == EMSNODE_HEALTH_OK);
  CHECK(fake.health_detail().empty());
}

TEST_CASE("the fake host stops and destroys a plugin still started when it goes away") {
  silent_stops = 0;
  {
    FakeHost fake;
    REQUIRE(fake.create(&kSilentPlugin) == EMSNODE_OK);
    REQUIRE(fake.start() == EMSNODE_OK);
  }
  CHECK(silent_stops == 1);
}

TEST_CASE("the fake clock runs due timers earliest first and never goes back") {
  FakeHost fake;
  fake.set_started(true);
  sdk::Host host(fake.api(), fake.ctx());
  std::vector<std::string> order;
  std::vector<std::chrono::milliseconds> seen_at;
  const sdk::Timer late = host.after(30ms, [&] {
    order.push_back("late");
    seen_at.push_back(fake.now());
  });
  const sdk::Timer early = host.after(10ms, [&] {
    order.push_back("early");
    seen_at.push_back(fake.now());
  });

  CHECK(fake.run_due(100ms) == 2);
  CHECK(order == std::vector<std::string>{"early", "late"});
  CHECK(seen_at == std::vector<std::chrono::milliseconds>{10ms, 30ms});
  CHECK(fake.now() == 100ms);
  CHECK(fake.run_due(50ms) == 0);
  CHECK(fake.now() == 100ms);
}

TEST_CASE("tasks posted by posted tasks wait for the next run") {
  FakeHost fake;
  fake.set_started(true);
  sdk::Host host(fake.api(), fake.ctx());
  int runs = 0;
  host.post([&] {
    ++runs;
    host.post([&] { ++runs; });
  });
  CHECK(fake.run_posted() == 1);
  CHECK(runs == 1);
  CHECK(fake.run_posted() == 1);
  CHECK(runs == 2);
}

TEST_CASE("the fake host's lifecycle calls refuse to run without a created plugin") {
  FakeHost fake;
  CHECK_THROWS_AS(fake.start(), std::logic_error);
  CHECK_THROWS_AS(fake.stop(), std::logic_error);
  CHECK_THROWS_AS(fake.destroy(), std::logic_error);
}

TEST_CASE("the fake host refuses a manifest it cannot read or whose schema is malformed") {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("emsnode-fake-manifest-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& text) {
    std::ofstream(dir + "/plugin.toml", std::ios::trunc) << text;
    return dir + "/plugin.toml";
  };
  FakeHost fake;
  CHECK_THROWS_WITH(fake.manifest(dir + "/missing.toml"),
                    dir + "/missing.toml: cannot read the plugin's manifest");
  CHECK_THROWS_WITH(fake.manifest(write("id = \"x\"\n[config.n]\ndefault = 3\n")),
                    dir + "/plugin.toml: [config.n] has no type");
  CHECK_THROWS_WITH(fake.manifest(write("[config.n]\ntype = \"integer\"\ndefault = \"3\n")),
                    dir + "/plugin.toml:3: a string without its closing quote");
  CHECK_THROWS_WITH(fake.manifest(write("[config.n]\ntype = \"integer\"\ndefault = 3x\n")),
                    dir + "/plugin.toml:3: \"3x\" is not a value a config schema uses");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the fake host refuses a default that does not fit its key's type, at create") {
  const std::string file = std::filesystem::temp_directory_path() /
                           ("emsnode-fake-default-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(file) << "[config.wait]\ntype = \"duration\"\ndefault = \"soon\"\n";
  FakeHost fake;
  fake.manifest(file);
  CHECK(fake.create(&kSilentPlugin) == EMSNODE_ERROR);
  CHECK(fake.last_error() == "config key 'wait': the manifest's default is not a duration");
  std::filesystem::remove(file);
}
