// Status facts (ABI 1.3) through the host's table, as a plugin calls them: order, replacement,
// removal, every bound of plugin_abi.h, and the facts a real plugin set reaching status(). Also
// the shared-API calls a plugin can get wrong outside of its manifest.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "host/host_services.hpp"
#include "host/plugin_host.hpp"
#include "host_test_support.hpp"

namespace emsnode::host {
namespace {

using namespace std::chrono_literals;

emsnode_str str(std::string_view text) {
  return {text.data(), text.size()};
}

// One plugin's context, as the host builds it, without a library behind it.
struct Context {
  Executor executor{1s};
  PluginContext context;

  explicit Context(std::vector<ApiExport> exports = {}, std::vector<ApiUse> uses = {})
      : context("t-facts", config::Values{}, std::make_shared<HostShared>(),
                std::make_shared<TaskGroup>(executor, "t-facts"), std::vector<CommandSpec>{},
                std::move(exports), std::move(uses)) {}

  emsnode_status fact(std::string_view name, std::string_view value,
                      emsnode_severity severity = EMSNODE_SEVERITY_INFO) {
    return host_api().status_fact(context.handle(), str(name), str(value), severity);
  }
  std::string error() {
    const emsnode_str text = host_api().last_error(context.handle());
    return std::string(text.ptr, text.len);
  }
  std::vector<std::string> shown() const {
    std::vector<std::string> lines;
    for (const StatusFact& f : context.facts()) {
      lines.push_back(f.name + "=" + f.value + " " + std::string(severity_name(f.severity)));
    }
    return lines;
  }
};

}  // namespace

TEST_CASE("the host's table serves every ABI 1.3 member it has built, and its size says so") {
  CHECK(host_api().struct_size == sizeof(emsnode_host_api));
  CHECK(host_api().api_export != nullptr);
  CHECK(host_api().api_use != nullptr);
  CHECK(host_api().status_fact != nullptr);
}

TEST_CASE("facts are shown in the order first set, replaced in place, removed by an empty value") {
  Context c;
  REQUIRE(c.fact("seats", "120 of 500") == EMSNODE_OK);
  REQUIRE(c.fact("license", "expires in 5 days", EMSNODE_SEVERITY_WARNING) == EMSNODE_OK);
  REQUIRE(c.fact("backup", "failing", EMSNODE_SEVERITY_CRITICAL) == EMSNODE_OK);
  CHECK(c.shown() == std::vector<std::string>{"seats=120 of 500 info",
                                              "license=expires in 5 days warning",
                                              "backup=failing critical"});
  REQUIRE(c.fact("seats", "499 of 500", EMSNODE_SEVERITY_WARNING) == EMSNODE_OK);
  REQUIRE(c.fact("license", "") == EMSNODE_OK);
  REQUIRE(c.fact("never-set", "") == EMSNODE_OK);
  CHECK(c.shown() ==
        std::vector<std::string>{"seats=499 of 500 warning", "backup=failing critical"});
  CHECK(c.error().empty());
}

TEST_CASE("a fact beyond the header's bounds is refused with the reason and changes nothing") {
  Context c;
  REQUIRE(c.fact("seats", "120 of 500") == EMSNODE_OK);
  const auto refused = [&](std::string_view name, std::string_view value,
                           emsnode_severity severity = EMSNODE_SEVERITY_INFO) {
    CHECK(c.fact(name, value, severity) == EMSNODE_ERROR);
    CHECK(c.shown() == std::vector<std::string>{"seats=120 of 500 info"});
    return c.error();
  };
  CHECK(refused("", "x") == "status_fact: a fact's name is 1 to 64 bytes, not 0");
  CHECK(refused(std::string(65, 'n'), "x") ==
        "status_fact: a fact's name is 1 to 64 bytes, not 65");
  CHECK(c.fact(std::string(64, 'n'), std::string(256, 'v')) == EMSNODE_OK);
  CHECK(c.fact(std::string(64, 'n'), "") == EMSNODE_OK);
  CHECK(refused("seats", std::string(257, 'v')) ==
        "status_fact: the value of fact \"seats\" is 257 bytes, over the 256 allowed");
  CHECK(refused("seats", "120\nforged: line") ==
        "status_fact: the value of fact \"seats\" holds a control character at byte 3");
  CHECK(refused("se\x1b[2Jats", "1") ==
        "status_fact: the name holds a control character at byte 2");
  CHECK(refused("seats", "\xc2\x85") ==
        "status_fact: the value of fact \"seats\" holds a control character at byte 0");
  CHECK(refused("seats", "\xff") == "status_fact: the value of fact \"seats\" is not UTF-8");
  CHECK(refused("seats", "x", static_cast<emsnode_severity>(7)) ==
        "status_fact: severity 7 is none of EMSNODE_SEVERITY_INFO, _WARNING, _CRITICAL");
  // Non-ASCII text is welcome.
  CHECK(c.fact("état", "sauvegardé ✓") == EMSNODE_OK);
  CHECK(c.fact("état", "") == EMSNODE_OK);
}

TEST_CASE("a plugin has at most 32 facts, and may replace or remove one at the limit") {
  Context c;
  for (int i = 0; i < 32; ++i) REQUIRE(c.fact("fact " + std::to_string(i), "v") == EMSNODE_OK);
  CHECK(c.fact("one more", "v") == EMSNODE_ERROR);
  CHECK(c.error() ==
        "status_fact: a plugin has at most 32 facts; remove one (set it to \"\") before adding "
        "\"one more\"");
  CHECK(c.fact("fact 0", "replaced") == EMSNODE_OK);
  CHECK(c.fact("fact 1", "") == EMSNODE_OK);
  CHECK(c.fact("one more", "v") == EMSNODE_OK);
  CHECK(c.context.facts().size() == 32);
  CHECK(c.context.facts().back().name == "one more");
}

TEST_CASE("facts may be set from any thread at once") {
  Context c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 200; ++i) {
        c.fact("thread " + std::to_string(t), std::to_string(i));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  REQUIRE(c.context.facts().size() == 4);
  for (const StatusFact& fact : c.context.facts()) CHECK(fact.value == "199");
}

TEST_CASE("api_export is refused outside create, for an undeclared name, a NULL table or twice") {
  Context c({ApiExport{"seats", 1, 2}});
  static const int kTable = 0;
  const auto export_api = [&](std::string_view name, std::uint32_t minor, const void* table) {
    const emsnode_status status =
        host_api().api_export(c.context.handle(), str(name), minor, table);
    return status == EMSNODE_OK ? std::string("ok") : c.error();
  };
  CHECK(export_api("seats.v1", 2, &kTable) ==
        "api_export: called outside create (export every API in create)");
  c.context.set_creating(true);
  CHECK(export_api("seats.v2", 2, &kTable) ==
        "api_export: \"seats.v2\" is not declared under exports in plugin.toml");
  CHECK(export_api("seats.v1", 2, nullptr) == "api_export: seats.v1: the table is NULL");
  CHECK(c.context.missing_exports() == "seats.v1");
  CHECK(export_api("seats.v1", 2, &kTable) == "ok");
  CHECK(export_api("seats.v1", 2, &kTable) == "api_export: seats.v1 is already exported");
  CHECK(c.context.missing_exports().empty());
}

TEST_CASE("api_use gives the exporter's table and minor, and only for a declared use") {
  Context exporter({ApiExport{"seats", 1, 2}});
  Context user({}, {ApiUse{"seats", 1, 1, true}});
  static const int kTable = 0;
  const void* table = nullptr;
  std::uint32_t minor = 0;
  CHECK(host_api().api_use(user.context.handle(), str("seats.v1"), &table, &minor) ==
        EMSNODE_ERROR);
  CHECK(user.error() == "api_use: seats.v1: no plugin that exports it is loaded beside this one");
  // Not owned: the exporter's Context outlives the user's here.
  user.context.bind_use("seats.v1",
                        std::shared_ptr<PluginContext>(std::shared_ptr<void>(), &exporter.context));
  CHECK(host_api().api_use(user.context.handle(), str("seats.v1"), &table, &minor) ==
        EMSNODE_ERROR);
  CHECK(user.error() ==
        "api_use: seats.v1: plugin t-facts, which exports it, has not been created");
  exporter.context.set_creating(true);
  REQUIRE(exporter.context.export_api("seats.v1", 2, &kTable).empty());
  exporter.context.set_creating(false);
  REQUIRE(host_api().api_use(user.context.handle(), str("seats.v1"), &table, &minor) == EMSNODE_OK);
  CHECK(table == &kTable);
  CHECK(minor == 2);
  CHECK(host_api().api_use(user.context.handle(), str("other.v1"), &table, &minor) ==
        EMSNODE_ERROR);
  CHECK(user.error() == "api_use: \"other.v1\" is not declared under uses in plugin.toml");
}

TEST_CASE("the facts a plugin sets reach the host's status, kept across stop") {
  testing::Sandbox box;
  box.add("t-api-user");
  box.add("t-api-exporter");
  PluginHost host(box.node_config(box.section("t-api-exporter") + box.section("t-api-user")));
  host.load();
  host.create_all();
  const auto facts = [&] {
    std::vector<std::string> lines;
    const std::vector<PluginStatus> all = host.status();
    for (const StatusFact& f : status_of(all, "t-api-user").facts) {
      lines.push_back(f.name + "=" + f.value + " " + std::string(severity_name(f.severity)));
    }
    return lines;
  };
  CHECK(facts() ==
        std::vector<std::string>{"seats=500 seats info", "exporter=not started warning"});
  CHECK(status_of(host.status(), "t-api-exporter").facts.empty());
  host.set_epoch(1);
  REQUIRE(host.start_all());
  CHECK(facts() == std::vector<std::string>{"seats=500 seats info", "exporter=started info"});
  host.stop_all();
  CHECK(facts() == std::vector<std::string>{"seats=500 seats info", "exporter=started info"});
}

}  // namespace emsnode::host
