// The file store services of the host table (store_put, store_get, store_stat, store_list,
// store_remove), called as a plugin calls them, through host_api() with a plugin's context,
// against a real share store whose catalog is in a real SQLite database with the lease set by the
// test (node-a, epoch 7).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "db/db_test_support.hpp"
#include "host/executor.hpp"
#include "host/host_services.hpp"
#include "store/file_store.hpp"

namespace emsnode::host {
namespace {

using db::testing::DbDir;
using db::testing::set_lease;

const emsnode_host_api& api = host_api();

emsnode_str str(std::string_view text) {
  return emsnode_str{text.data(), text.size()};
}

std::string text(emsnode_str view) {
  return view.len == 0 ? std::string() : std::string(view.ptr, view.len);
}

// Content handed to store_put `piece` bytes at a time at most, or a failure after `fail_after`.
struct Source {
  explicit Source(std::string bytes, std::size_t piece_size = 1000,
                  std::optional<std::size_t> fail = std::nullopt)
      : content(std::move(bytes)), piece(piece_size), fail_after(fail) {}

  std::string content;
  std::size_t piece;
  std::optional<std::size_t> fail_after;
  std::size_t at = 0;
  std::size_t calls = 0;
};

int64_t read_source(void* user_data, char* buffer, size_t capacity) {
  auto& source = *static_cast<Source*>(user_data);
  ++source.calls;
  if (source.fail_after && source.at >= *source.fail_after) return -1;
  const std::size_t n = std::min({capacity, source.piece, source.content.size() - source.at});
  std::memcpy(buffer, source.content.data() + source.at, n);
  source.at += n;
  return static_cast<int64_t>(n);
}

// What store_get passed, or a refusal after `stop_after` bytes.
struct Sink {
  std::string received;
  std::optional<std::size_t> stop_after;
};

int write_sink(void* user_data, const char* data, size_t size) {
  auto& sink = *static_cast<Sink*>(user_data);
  if (sink.stop_after && sink.received.size() >= *sink.stop_after) return 7;
  sink.received.append(data, size);
  return 0;
}

struct Entry {
  std::string key;
  emsnode_store_info info;
};

int collect_entry(void* user_data, emsnode_str key, const emsnode_store_info* info) {
  static_cast<std::vector<Entry>*>(user_data)->push_back({text(key), *info});
  return 0;
}

// Plugin "t-files" of node-a, started, as the host sets it up, over a real store; and beside it
// plugin "t-other" of the same node.
class Plugin {
 public:
  Plugin() {
    set_lease(*database_, "node-a", 7, 60000);
    std::filesystem::create_directories(dir_.path() / "share");
    store_ = store::open_share_store(*database_, (dir_.path() / "share").string());
    shared_->node_id = "node-a";
    shared_->epoch = 7;
    shared_->metrics = std::make_shared<metrics::MetricsRegistry>();
    shared_->database = database_.get();
    shared_->store = store_.get();
    context_.set_writable(true);
    other_.set_writable(true);
  }

  emsnode_host_ctx* ctx() { return context_.handle(); }
  emsnode_host_ctx* other() { return other_.handle(); }
  PluginContext& context() { return context_; }
  HostShared& shared() { return *shared_; }
  db::Database& database() { return *database_; }
  store::FileStore& store() { return *store_; }
  std::string last_error() { return text(api.last_error(ctx())); }

  emsnode_status put(std::string_view key, Source& source) {
    return api.store_put(ctx(), str(key), &read_source, &source);
  }
  emsnode_status put(std::string_view key, const std::string& content) {
    Source source(content);
    return put(key, source);
  }
  emsnode_status get(std::string_view key, Sink& sink) {
    return api.store_get(ctx(), str(key), &write_sink, &sink);
  }
  emsnode_status list(std::string_view prefix, std::vector<Entry>& entries) {
    return api.store_list(ctx(), str(prefix), &collect_entry, &entries);
  }

 private:
  DbDir dir_;
  std::unique_ptr<db::Database> database_ = dir_.open_migrated();
  std::unique_ptr<store::FileStore> store_;
  std::shared_ptr<HostShared> shared_ = std::make_shared<HostShared>();
  Executor executor_{std::chrono::seconds(1)};
  PluginContext context_{"t-files", config::Values{}, shared_,
                         std::make_shared<TaskGroup>(executor_, "t-files")};
  PluginContext other_{"t-other", config::Values{}, shared_,
                       std::make_shared<TaskGroup>(executor_, "t-other")};
};

}  // namespace

TEST_CASE("a plugin's file goes into its own folder of the store and comes back verified") {
  Plugin plugin;
  Source source(std::string(300'000, 'p'), 4096);
  REQUIRE(plugin.put("reports/nov.csv", source) == EMSNODE_OK);
  CHECK(plugin.last_error().empty());
  CHECK(source.calls > 70);  // streamed, a piece at a time

  const auto stored = plugin.store().stat("plugins/t-files/reports/nov.csv");
  REQUIRE(stored);
  CHECK(stored->size == 300'000);
  CHECK(stored->writer_node == "node-a");
  CHECK(stored->epoch == 7);
  CHECK_FALSE(plugin.store().stat("reports/nov.csv"));

  Sink sink;
  REQUIRE(plugin.get("reports/nov.csv", sink) == EMSNODE_OK);
  CHECK(sink.received == source.content);
}

TEST_CASE("stat fills what the plugin's struct has room for, and nothing past it") {
  Plugin plugin;
  REQUIRE(plugin.put("k", "12345") == EMSNODE_OK);
  const auto stored = plugin.store().stat("plugins/t-files/k");

  emsnode_store_info info{};
  info.struct_size = sizeof info;
  REQUIRE(api.store_stat(plugin.ctx(), str("k"), &info) == EMSNODE_OK);
  CHECK(info.struct_size == sizeof info);
  CHECK(info.size == 5);
  CHECK(info.epoch == 7);
  CHECK(info.modified_at_ms == stored->modified_at_ms);
  CHECK(std::string(info.sha256) == stored->sha256);

  emsnode_store_info shorter{};
  shorter.struct_size = offsetof(emsnode_store_info, epoch);  // a plugin of a smaller struct
  shorter.epoch = 99;
  REQUIRE(api.store_stat(plugin.ctx(), str("k"), &shorter) == EMSNODE_OK);
  CHECK(shorter.size == 5);
  CHECK(shorter.epoch == 99);
  CHECK(shorter.sha256[0] == '\0');

  CHECK(api.store_stat(plugin.ctx(), str("missing"), &info) == EMSNODE_NOT_FOUND);
  CHECK(plugin.last_error() == "store_stat: no such file: plugins/t-files/missing");
}

TEST_CASE("list shows only the plugin's folder, with keys relative to it") {
  Plugin plugin;
  REQUIRE(plugin.put("a/one", "1") == EMSNODE_OK);
  REQUIRE(plugin.put("a/two", "22") == EMSNODE_OK);
  REQUIRE(plugin.put("b/three", "333") == EMSNODE_OK);
  Source theirs("x");
  REQUIRE(api.store_put(plugin.other(), str("a/theirs"), &read_source, &theirs) == EMSNODE_OK);

  std::vector<Entry> entries;
  REQUIRE(plugin.list("a/", entries) == EMSNODE_OK);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].key == "a/one");
  CHECK(entries[1].key == "a/two");
  CHECK(entries[1].info.size == 2);
  CHECK(entries[1].info.struct_size == sizeof(emsnode_store_info));
  entries.clear();
  REQUIRE(plugin.list("", entries) == EMSNODE_OK);
  CHECK(entries.size() == 3);
  entries.clear();
  REQUIRE(api.store_list(plugin.other(), str(""), &collect_entry, &entries) == EMSNODE_OK);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].key == "a/theirs");
}

TEST_CASE("a key or prefix that would leave the plugin's folder is refused") {
  Plugin plugin;
  for (const char* key :
       {"", "/etc/passwd", "../t-other/x", "a/../../x", "a//b", "a/./b", "a\\b", "a/"}) {
    CAPTURE(key);
    CHECK(plugin.put(key, "x") == EMSNODE_ERROR);
    CHECK_THAT(plugin.last_error(),
               Catch::Contains("(keys are relative to plugins/t-files/ and stay in it)"));
  }
  Sink sink;
  CHECK(plugin.get("../t-other/x", sink) == EMSNODE_ERROR);
  CHECK(api.store_remove(plugin.ctx(), str("..")) == EMSNODE_ERROR);
  std::vector<Entry> entries;
  CHECK(plugin.list("../", entries) == EMSNODE_ERROR);
  CHECK(plugin.list("/", entries) == EMSNODE_ERROR);
  CHECK(plugin.store().list("").empty());
}

TEST_CASE("a put whose read callback fails publishes nothing and says why") {
  Plugin plugin;
  Source source(std::string(100'000, 'f'), 1000, 50'000);
  CHECK(plugin.put("k", source) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(),
             Catch::Contains("the plugin's read callback returned -1: nothing was published"));
  CHECK_FALSE(plugin.store().stat("plugins/t-files/k"));
}

TEST_CASE("a get whose write callback refuses stops there and says why") {
  Plugin plugin;
  REQUIRE(plugin.put("k", std::string(3 << 20, 'g')) == EMSNODE_OK);
  Sink sink;
  sink.stop_after = 1;
  CHECK(plugin.get("k", sink) == EMSNODE_ERROR);
  CHECK_THAT(plugin.last_error(),
             Catch::Contains("the plugin's write callback returned 7: the get was aborted"));
  CHECK(sink.received.size() < (3u << 20));
}

TEST_CASE("a missing file is EMSNODE_NOT_FOUND for get, stat and remove") {
  Plugin plugin;
  Sink sink;
  CHECK(plugin.get("missing", sink) == EMSNODE_NOT_FOUND);
  CHECK_THAT(plugin.last_error(), Catch::Contains("plugins/t-files/missing"));
  CHECK(api.store_remove(plugin.ctx(), str("missing")) == EMSNODE_NOT_FOUND);
  REQUIRE(plugin.put("k", "v") == EMSNODE_OK);
  CHECK(api.store_remove(plugin.ctx(), str("k")) == EMSNODE_OK);
  CHECK_FALSE(plugin.store().stat("plugins/t-files/k"));
}

TEST_CASE("a put or remove after the lease moved is fenced and changes nothing") {
  Plugin plugin;
  REQUIRE(plugin.put("k", "v1") == EMSNODE_OK);
  set_lease(plugin.database(), "node-b", 8, 60000);
  CHECK(plugin.put("k", "v2") == EMSNODE_FENCED);
  CHECK_THAT(plugin.last_error(), Catch::Contains("holder node-b at epoch 8"));
  CHECK(api.store_remove(plugin.ctx(), str("k")) == EMSNODE_FENCED);
  Sink sink;
  CHECK(plugin.get("k", sink) == EMSNODE_OK);  // reads go on
  CHECK(sink.received == "v1");
}

TEST_CASE("a plugin that is not started may read the store but not write it") {
  Plugin plugin;
  REQUIRE(plugin.put("k", "v") == EMSNODE_OK);
  plugin.context().set_writable(false);
  CHECK(plugin.put("k", "new") == EMSNODE_ERROR);
  CHECK(plugin.last_error() ==
        "store_put refused: the plugin is not started (writes are allowed from start until stop "
        "returns)");
  CHECK(api.store_remove(plugin.ctx(), str("k")) == EMSNODE_ERROR);
  Sink sink;
  CHECK(plugin.get("k", sink) == EMSNODE_OK);
  CHECK(sink.received == "v");
}

TEST_CASE("inside a db_write body the store is refused") {
  Plugin plugin;
  std::function<emsnode_status()> inside = [&] {
    Sink sink;
    CHECK(plugin.get("k", sink) == EMSNODE_ERROR);
    CHECK_THAT(plugin.last_error(), Catch::StartsWith("store_get refused inside a db_write body"));
    return EMSNODE_OK;
  };
  CHECK(api.db_write(
            plugin.ctx(),
            [](void* user_data, emsnode_db_txn*) {
              return (*static_cast<std::function<emsnode_status()>*>(user_data))();
            },
            &inside) == EMSNODE_OK);
}

TEST_CASE("without a file store every store call fails and says so") {
  Plugin plugin;
  plugin.shared().store = nullptr;
  CHECK(plugin.put("k", "v") == EMSNODE_ERROR);
  CHECK(plugin.last_error() == "store_put: no shared file store");
  emsnode_store_info info{};
  info.struct_size = sizeof info;
  CHECK(api.store_stat(plugin.ctx(), str("k"), &info) == EMSNODE_ERROR);
  CHECK(plugin.last_error() == "store_stat: no shared file store");
}

}  // namespace emsnode::host
