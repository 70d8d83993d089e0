// One suite, two hosts: the SDK's FakeHost and the node's own host services (host_api() with a
// plugin's context) must answer a plugin alike, or a plugin tested on the fake breaks on a node.
// Each case runs against both, through the C table exactly as a plugin calls it: key rules (a
// migration's table names, a store key), transactions (commit, rollback, a statement that fails,
// fencing), when writes are allowed, and the config a plugin.toml's schema makes of a section
// (defaults, bounds, choices, required and optional keys).
//
// Both stand on the same real parts: a real SQLite database with the core schema. The node's
// host uses it through its services; the fake through hooks that stand for the node's database,
// as a plugin author's test would set them.
#include <catch2/catch.hpp>

#include <emsnode/testing/fake_host.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/schema.hpp"
#include "db/db_test_support.hpp"
#include "host/executor.hpp"
#include "host/host_services.hpp"
#include "host/manifest.hpp"
#include "store/file_store.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::host {
namespace {

using db::testing::DbDir;
using db::testing::set_lease;

constexpr const char* kPluginId = "t-conform";

emsnode_str str(std::string_view text) {
  return emsnode_str{text.data(), text.size()};
}

// The node's host: its services table with the context of plugin t-conform of node-a, which
// holds the lease at epoch 7.
class NodeHost {
 public:
  NodeHost() {
    set_lease(*database_, "node-a", 7, 60000);
    shared_->node_id = "node-a";
    shared_->epoch = 7;
    shared_->metrics = std::make_shared<metrics::MetricsRegistry>();
    shared_->database = database_.get();
    shared_->store = store_.get();
  }

  const emsnode_host_api* api() const { return &host_api(); }
  emsnode_host_ctx* ctx() { return context_.handle(); }
  db::Database& database() { return *database_; }
  // What the host does around the plugin's start and the return of its stop.
  void start() { context_.set_writable(true); }
  void stop() { context_.set_writable(false); }
  // Another node took over at a newer epoch.
  void lose_lease() { set_lease(*database_, "node-b", 8, 60000); }

 private:
  std::unique_ptr<store::FileStore> open_store() {
    const std::filesystem::path share = dir_.path() / "share";
    std::filesystem::create_directories(share);
    return store::open_share_store(*database_, share.string());
  }

  DbDir dir_;
  std::unique_ptr<db::Database> database_ = dir_.open_migrated();
  std::unique_ptr<store::FileStore> store_ = open_store();
  std::shared_ptr<HostShared> shared_ = std::make_shared<HostShared>();
  Executor executor_{std::chrono::seconds(1)};
  std::shared_ptr<TaskGroup> tasks_ = std::make_shared<TaskGroup>(executor_, kPluginId);
  PluginContext context_{kPluginId, config::Values{}, shared_, tasks_};
};

// The SDK's FakeHost, its hooks standing for the same kind of database (and a map for the file
// store), with a plugin t-conform created on it that does nothing itself: the suite makes the
// plugin's calls.
class FakeNodeHost {
 public:
  FakeNodeHost() {
    set_lease(*database_, "fake-node", 1, 60000);
    fake_
        .set_db_query([this](std::string_view sql, const sdk::Params& params) {
          return to_sdk(database_->query(sql, to_db(params)));
        })
        .set_db_write([this](const std::function<bool()>& run_body) {
          if (lost_) throw sdk::FencedError("fenced: another node holds the lease");
          struct RollBack {};
          try {
            database_->transaction([&](db::Transaction& tx) {
              tx_ = &tx;
              const bool commit = run_body();
              tx_ = nullptr;
              if (!commit) throw RollBack{};
            });
          } catch (const RollBack&) {
            // Rolled back, as the plugin asked.
          }
        })
        .set_db_exec([this](std::string_view sql, const sdk::Params& params) {
          FakeHost::DbExecResult result;
          if (sql.substr(0, 6) == "SELECT") {
            result.rows = to_sdk(tx_->query(sql, to_db(params)));
          } else {
            result.changes = static_cast<std::uint64_t>(tx_->exec(sql, to_db(params)));
          }
          return result;
        })
        .set_db_migrate([this](const std::vector<std::string>& steps) {
          if (lost_) throw sdk::FencedError("fenced: another node holds the lease");
          for (const std::string& step : steps) {
            database_->transaction([&](db::Transaction& tx) { tx.exec(step); });
          }
        })
        .set_store_put([this](std::string_view key, std::istream& content) {
          files_[std::string(key)].assign(std::istreambuf_iterator<char>(content), {});
        });
    plugin_.struct_size = sizeof plugin_;
    plugin_.abi_major = EMSNODE_ABI_MAJOR;
    plugin_.abi_minor = EMSNODE_ABI_MINOR;
    plugin_.id = str(kPluginId);
    plugin_.version = str("1.0.0");
    plugin_.create = [](const emsnode_host_api*, emsnode_host_ctx*, void** instance) {
      static int kInstance = 0;
      *instance = &kInstance;
      return EMSNODE_OK;
    };
    plugin_.start = [](void*) { return EMSNODE_OK; };
    plugin_.stop = [](void*, std::uint64_t) { return EMSNODE_OK; };
    plugin_.destroy = [](void*) {};
    REQUIRE(fake_.create(&plugin_) == EMSNODE_OK);
  }

  const emsnode_host_api* api() const { return fake_.api(); }
  emsnode_host_ctx* ctx() { return fake_.ctx(); }
  db::Database& database() { return *database_; }
  void start() { REQUIRE(fake_.start() == EMSNODE_OK); }
  void stop() { REQUIRE(fake_.stop() == EMSNODE_OK); }
  void lose_lease() { lost_ = true; }

 private:
  using FakeHost = sdk::testing::FakeHost;

  static db::Params to_db(const sdk::Params& params) {
    db::Params out;
    for (const sdk::Value& value : params) {
      switch (value.type()) {
        case EMSNODE_DB_INTEGER:
          out.emplace_back(value.integer());
          break;
        case EMSNODE_DB_TEXT:
          out.emplace_back(value.text());
          break;
        default:
          FAIL("the conformance suite binds integers and text only");
      }
    }
    return out;
  }
  static std::vector<sdk::Row> to_sdk(const db::Rows& rows) {
    std::vector<sdk::Row> out;
    for (const db::Row& row : rows) {
      std::vector<sdk::Value> columns;
      for (std::size_t i = 0; i < row.size(); ++i) columns.emplace_back(row.integer(i));
      out.emplace_back(std::move(columns));
    }
    return out;
  }

  DbDir dir_;
  std::unique_ptr<db::Database> database_ = dir_.open_migrated();
  db::Transaction* tx_ = nullptr;
  bool lost_ = false;
  std::map<std::string, std::string> files_;
  emsnode_plugin_api plugin_{};
  FakeHost fake_;
};

using Body = std::function<emsnode_status(emsnode_db_txn*)>;

emsnode_status run_body(void* user_data, emsnode_db_txn* txn) {
  return (*static_cast<Body*>(user_data))(txn);
}

// The plugin's side of the calls, the same whichever host answers.
template <typename Host>
class Plugin {
 public:
  Host& host() { return host_; }
  const emsnode_host_api& api() { return *host_.api(); }

  emsnode_status migrate(const std::vector<std::string>& steps) {
    std::vector<emsnode_str> texts;
    for (const std::string& step : steps) texts.push_back(str(step));
    return api().db_migrate(host_.ctx(), texts.data(), texts.size());
  }
  emsnode_status write(Body body) { return api().db_write(host_.ctx(), &run_body, &body); }
  emsnode_status insert(emsnode_db_txn* txn, std::int64_t id) {
    emsnode_db_value value{};
    value.type = EMSNODE_DB_INTEGER;
    value.integer = id;
    return api().db_exec(txn, str("INSERT INTO t_conform_items (id) VALUES (?)"), &value, 1,
                         nullptr, nullptr, nullptr);
  }
  emsnode_status put(std::string_view key) {
    const auto empty = [](void*, char*, size_t) -> int64_t { return 0; };
    return api().store_put(host_.ctx(), str(key), empty, nullptr);
  }
  std::string last_error() {
    const emsnode_str error = api().last_error(host_.ctx());
    return error.len == 0 ? std::string() : std::string(error.ptr, error.len);
  }
  std::int64_t items() {
    return host_.database().query("SELECT COUNT(*) FROM t_conform_items").front().integer(0);
  }
  // Starts the plugin's active period and creates its table.
  void start_with_table() {
    host_.start();
    REQUIRE(migrate({"CREATE TABLE t_conform_items (id BIGINT PRIMARY KEY)"}) == EMSNODE_OK);
  }

 private:
  Host host_;
};

// ---- config from plugin.toml ----

using ConfigValue = sdk::testing::FakeHost::ConfigValue;
struct Setting {
  std::string key;
  ConfigValue value;
};

// The manifest whose schema both hosts apply: one key of each kind of rule.
constexpr const char* kManifest = R"(id = "t-conform"
name = "Conformance"
version = "1.0.0"
abi = "1.3"
description = "the plugin the conformance suite calls the hosts as"

[config.count]
type = "integer"
description = "bounded, with a default"
default = 3
min = 1
max = 10

[config.interval]
type = "duration"
default = "250ms"
min = "100ms"              # bounds of a duration are written as durations
max = "1m"

[config.ratio]
type = "float"
default = 0.5

[config.mode]
type = "string"
default = "safe"
choices = ["fast", "safe"]

[config.token]
type = "string"
required = true

[config.note]
type = "string"
description = "neither default nor required: optional"

[config.peers]
type = "strings"
default = [
  "a",   # one per line, as an array may be written
  "b",
]
)";

// The section of node.toml that holds `settings`, as an operator writes it.
std::string toml_of(const std::vector<Setting>& settings) {
  std::string text;
  for (const Setting& setting : settings) {
    text += setting.key + " = ";
    if (const auto* s = std::get_if<std::string>(&setting.value)) {
      text += "\"" + *s + "\"";
    } else if (const auto* i = std::get_if<std::int64_t>(&setting.value)) {
      text += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&setting.value)) {
      text += std::to_string(*d);
    } else if (const auto* b = std::get_if<bool>(&setting.value)) {
      text += *b ? "true" : "false";
    } else if (const auto* ms = std::get_if<std::chrono::milliseconds>(&setting.value)) {
      text += "\"" + std::to_string(ms->count()) + "ms\"";
    } else {
      text += "[";
      for (const std::string& item : std::get<std::vector<std::string>>(setting.value)) {
        text += "\"" + item + "\", ";
      }
      text += "]";
    }
    text += "\n";
  }
  return text;
}

// The node: reads plugin.toml as the host does and validates the plugin's section against its
// schema, as at boot; the plugin's context then holds what the plugin reads.
class NodeConfigHost {
 public:
  // Why the node refuses the section, or "" when the plugin is created with it.
  std::string configure(const std::filesystem::path& manifest,
                        const std::vector<Setting>& settings) {
    try {
      const Manifest read = read_manifest(manifest);
      config::Context context;
      context.file = "node.toml";
      context.table = "plugins.t-conform";
      config::Values values = config::validate(config::parse_text(toml_of(settings), "node.toml"),
                                               read.config_schema, context);
      context_ = std::make_unique<PluginContext>(kPluginId, std::move(values), shared_, tasks_);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "";
  }
  const emsnode_host_api* api() const { return &host_api(); }
  emsnode_host_ctx* ctx() { return context_->handle(); }

 private:
  std::shared_ptr<HostShared> shared_ = std::make_shared<HostShared>();
  Executor executor_{std::chrono::seconds(1)};
  std::shared_ptr<TaskGroup> tasks_ = std::make_shared<TaskGroup>(executor_, kPluginId);
  std::unique_ptr<PluginContext> context_;
};

// The fake, given the manifest and the settings; create() applies the schema.
class FakeConfigHost {
 public:
  FakeConfigHost() {
    plugin_.struct_size = sizeof plugin_;
    plugin_.abi_major = EMSNODE_ABI_MAJOR;
    plugin_.abi_minor = EMSNODE_ABI_MINOR;
    plugin_.id = str(kPluginId);
    plugin_.version = str("1.0.0");
    plugin_.create = [](const emsnode_host_api*, emsnode_host_ctx*, void** instance) {
      static int kInstance = 0;
      *instance = &kInstance;
      return EMSNODE_OK;
    };
    plugin_.start = [](void*) { return EMSNODE_OK; };
    plugin_.stop = [](void*, std::uint64_t) { return EMSNODE_OK; };
    plugin_.destroy = [](void*) {};
  }
  std::string configure(const std::filesystem::path& manifest,
                        const std::vector<Setting>& settings) {
    fake_.manifest(manifest.string());
    for (const Setting& setting : settings) {
      std::visit([&](const auto& value) { fake_.config(setting.key, value); }, setting.value);
    }
    if (fake_.create(&plugin_) != EMSNODE_OK) {
      const std::string why = fake_.last_error();
      return why.empty() ? "refused without a reason" : why;
    }
    return "";
  }
  const emsnode_host_api* api() const { return fake_.api(); }
  emsnode_host_ctx* ctx() { return fake_.ctx(); }

 private:
  emsnode_plugin_api plugin_{};
  sdk::testing::FakeHost fake_;
};

// What the plugin reads, through the C getters.
template <typename Host>
class ConfiguredPlugin {
 public:
  ConfiguredPlugin() { manifest_ = dir_.write("plugin.toml", kManifest); }
  std::string configure(const std::vector<Setting>& settings) {
    return host_.configure(manifest_, settings);
  }
  std::optional<std::int64_t> integer(std::string_view key) {
    std::int64_t out = 0;
    if (host_.api()->config_int(host_.ctx(), str(key), &out) != EMSNODE_OK) return std::nullopt;
    return out;
  }
  std::optional<double> floating(std::string_view key) {
    double out = 0;
    if (host_.api()->config_float(host_.ctx(), str(key), &out) != EMSNODE_OK) return std::nullopt;
    return out;
  }
  std::optional<std::uint64_t> duration_ms(std::string_view key) {
    std::uint64_t out = 0;
    if (host_.api()->config_duration_ms(host_.ctx(), str(key), &out) != EMSNODE_OK) {
      return std::nullopt;
    }
    return out;
  }
  std::optional<std::string> text(std::string_view key) {
    emsnode_str out{};
    if (host_.api()->config_string(host_.ctx(), str(key), &out) != EMSNODE_OK) {
      return std::nullopt;
    }
    return std::string(out.ptr, out.len);
  }
  std::optional<std::size_t> array_size(std::string_view key) {
    size_t out = 0;
    if (host_.api()->config_array_size(host_.ctx(), str(key), &out) != EMSNODE_OK) {
      return std::nullopt;
    }
    return out;
  }

 private:
  emsnode::testing::TempDir dir_;
  std::filesystem::path manifest_;
  Host host_;
};

}  // namespace

TEMPLATE_TEST_CASE("keys left out of the section take plugin.toml's defaults", "[conformance]",
                   NodeConfigHost, FakeConfigHost) {
  ConfiguredPlugin<TestType> plugin;
  REQUIRE(plugin.configure({{"token", std::string("t0ken")}}) == "");
  CHECK(plugin.integer("count") == 3);
  CHECK(plugin.duration_ms("interval") == 250u);
  CHECK(plugin.floating("ratio") == 0.5);
  CHECK(plugin.text("mode") == "safe");
  CHECK(plugin.array_size("peers") == 2u);
  CHECK(plugin.text("token") == "t0ken");
  // Read as another type, a key is not there.
  CHECK(plugin.integer("mode") == std::nullopt);
}

TEMPLATE_TEST_CASE("values the section sets within their bounds reach the plugin", "[conformance]",
                   NodeConfigHost, FakeConfigHost) {
  ConfiguredPlugin<TestType> plugin;
  REQUIRE(plugin.configure({{"token", std::string("t")},
                            {"count", std::int64_t{10}},
                            {"interval", std::chrono::milliseconds(100)},
                            {"ratio", std::int64_t{2}},
                            {"mode", std::string("fast")},
                            {"peers", std::vector<std::string>{"x"}}}) == "");
  CHECK(plugin.integer("count") == 10);
  CHECK(plugin.duration_ms("interval") == 100u);
  CHECK(plugin.floating("ratio") == 2.0);  // an integer written for a float key
  CHECK(plugin.text("mode") == "fast");
  CHECK(plugin.array_size("peers") == 1u);
}

TEMPLATE_TEST_CASE("a key with neither default nor required is absent unless the section sets it",
                   "[conformance]", NodeConfigHost, FakeConfigHost) {
  SECTION("left out") {
    ConfiguredPlugin<TestType> plugin;
    REQUIRE(plugin.configure({{"token", std::string("t")}}) == "");
    CHECK(plugin.text("note") == std::nullopt);
  }
  SECTION("set") {
    ConfiguredPlugin<TestType> plugin;
    REQUIRE(plugin.configure({{"token", std::string("t")}, {"note", std::string("hi")}}) == "");
    CHECK(plugin.text("note") == "hi");
  }
}

TEMPLATE_TEST_CASE("a section that breaks plugin.toml's schema is refused before create",
                   "[conformance]", NodeConfigHost, FakeConfigHost) {
  const Setting token{"token", std::string("t")};
  const auto [case_name, settings] = GENERATE_REF(
      std::make_pair(std::string("a required key left out"), std::vector<Setting>{}),
      std::make_pair(std::string("an integer under min"),
                     std::vector<Setting>{token, {"count", std::int64_t{0}}}),
      std::make_pair(std::string("an integer over max"),
                     std::vector<Setting>{token, {"count", std::int64_t{11}}}),
      std::make_pair(std::string("a duration under min"),
                     std::vector<Setting>{token, {"interval", std::chrono::milliseconds(99)}}),
      std::make_pair(std::string("a duration over max"),
                     std::vector<Setting>{token, {"interval", std::chrono::milliseconds(60001)}}),
      std::make_pair(std::string("a string not among the choices"),
                     std::vector<Setting>{token, {"mode", std::string("turbo")}}),
      std::make_pair(std::string("a value of the wrong type"),
                     std::vector<Setting>{token, {"count", std::string("three")}}),
      std::make_pair(std::string("a key plugin.toml does not declare"),
                     std::vector<Setting>{token, {"bogus", std::int64_t{1}}}));
  INFO(case_name);
  ConfiguredPlugin<TestType> plugin;
  CHECK(plugin.configure(settings) != "");
}

TEMPLATE_TEST_CASE("a write commits and the database holds it after", "[conformance]", NodeHost,
                   FakeNodeHost) {
  Plugin<TestType> plugin;
  plugin.start_with_table();
  CHECK(plugin.write([&](emsnode_db_txn* txn) { return plugin.insert(txn, 1); }) == EMSNODE_OK);
  CHECK(plugin.items() == 1);
}

TEMPLATE_TEST_CASE("a body that does not return OK rolls back what it wrote", "[conformance]",
                   NodeHost, FakeNodeHost) {
  Plugin<TestType> plugin;
  plugin.start_with_table();
  CHECK(plugin.write([&](emsnode_db_txn* txn) {
    REQUIRE(plugin.insert(txn, 1) == EMSNODE_OK);
    return EMSNODE_NOT_FOUND;
  }) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(), Catch::EndsWith("the transaction body returned 2: rolled back"));
  CHECK(plugin.items() == 0);
}

TEMPLATE_TEST_CASE("a failed statement spoils its transaction, whatever the body returns",
                   "[conformance]", NodeHost, FakeNodeHost) {
  Plugin<TestType> plugin;
  plugin.start_with_table();
  emsnode_status second = EMSNODE_OK;
  CHECK(plugin.write([&](emsnode_db_txn* txn) {
    REQUIRE(plugin.insert(txn, 1) == EMSNODE_OK);
    CHECK(plugin.insert(txn, 1) == EMSNODE_ERROR);  // the same key again
    second = plugin.insert(txn, 2);
    return EMSNODE_OK;
  }) == EMSNODE_ERROR);
  CHECK(second == EMSNODE_ERROR);
  CHECK(plugin.items() == 0);
}

TEMPLATE_TEST_CASE("a node that lost the lease writes nothing and is told it is fenced",
                   "[conformance]", NodeHost, FakeNodeHost) {
  Plugin<TestType> plugin;
  plugin.start_with_table();
  plugin.host().lose_lease();
  bool body_ran = false;
  CHECK(plugin.write([&](emsnode_db_txn* txn) {
    body_ran = true;
    return plugin.insert(txn, 1);
  }) == EMSNODE_FENCED);
  CHECK_FALSE(body_ran);
  CHECK(plugin.items() == 0);
  CHECK(plugin.migrate({"CREATE TABLE t_conform_more (id BIGINT)"}) != EMSNODE_OK);
}

TEMPLATE_TEST_CASE("writes, migrations and puts are refused outside start..stop", "[conformance]",
                   NodeHost, FakeNodeHost) {
  Plugin<TestType> plugin;
  const auto refused = [&] {
    CHECK(plugin.migrate({"CREATE TABLE t_conform_late (id BIGINT)"}) == EMSNODE_ERROR);
    CHECK(plugin.write([](emsnode_db_txn*) { return EMSNODE_OK; }) == EMSNODE_ERROR);
    CHECK(plugin.put("late.txt") == EMSNODE_ERROR);
  };
  SECTION("before start") {
    refused();
  }
  SECTION("after stop") {
    plugin.start_with_table();
    CHECK(plugin.put("on-time.txt") == EMSNODE_OK);
    plugin.host().stop();
    refused();
  }
}

TEMPLATE_TEST_CASE("a migration may name only the plugin's own tables, indexes and views",
                   "[conformance]", NodeHost, FakeNodeHost) {
  Plugin<TestType> plugin;
  plugin.start_with_table();
  const std::string step = GENERATE(
      as<std::string>{}, "CREATE TABLE items (id BIGINT)",
      "CREATE TABLE IF NOT EXISTS main.other_items (id BIGINT)",
      "CREATE INDEX t_conform_i ON lease (epoch)", "CREATE VIEW \"t-conform_v\" AS SELECT 1",
      "ALTER TABLE t_conform_items RENAME TO stolen", "DROP TABLE nodes");
  INFO(step);
  CHECK(plugin.migrate({"CREATE INDEX t_conform_items_id ON t_conform_items (id)", step}) ==
        EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(),
             Catch::StartsWith("db_migrate: step 2 ") &&
                 Catch::EndsWith("which is not this plugin's: its tables, indexes, views and "
                                 "triggers are named t_conform_..."));
}

TEMPLATE_TEST_CASE("a store key that would leave the plugin's folder is refused", "[conformance]",
                   NodeHost, FakeNodeHost) {
  Plugin<TestType> plugin;
  plugin.start_with_table();
  CHECK(plugin.put("reports/2026-11.csv") == EMSNODE_OK);
  const std::string key = GENERATE(as<std::string>{}, "", "../x", "/etc/passwd", "a//b", "a/./b",
                                   "a\\b", std::string("a\0b", 3));
  INFO(key);
  CHECK(plugin.put(key) == EMSNODE_ERROR);
}

}  // namespace emsnode::host
