// A real plugin library using the file store through the C ABI (plugins/storeuser.c), driven by
// the plugin host over a real share store whose catalog is in a real SQLite database with the
// lease set by the test.
#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "db/db_test_support.hpp"
#include "host/plugin_host.hpp"
#include "host_test_support.hpp"
#include "store/file_store.hpp"

namespace emsnode::host {
namespace {

using db::testing::DbDir;
using db::testing::set_lease;
using testing::Sandbox;

// A shared database and store in which node-a (the sandbox's node id) holds the lease at epoch 7.
struct SharedStore {
  SharedStore() {
    set_lease(*database, "node-a", 7, 60000);
    std::filesystem::create_directories(dir.path() / "share");
    store = store::open_share_store(*database, (dir.path() / "share").string());
  }

  DbDir dir;
  std::unique_ptr<db::Database> database = dir.open_migrated();
  std::unique_ptr<store::FileStore> store;
};

std::unique_ptr<PluginHost> make_host(Sandbox& box, SharedStore& shared,
                                      const std::string& sections) {
  auto host = std::make_unique<PluginHost>(box.node_config(sections));
  host->set_database(shared.database.get());
  host->set_store(shared.store.get());
  host->load();
  host->create_all();
  return host;
}

const std::string kNotStarted =
    "create put=1 error=store_put refused: the plugin is not started (writes are allowed from "
    "start until stop returns)";

}  // namespace

TEST_CASE("a plugin stores, reads and lists files of its own folder through the C ABI") {
  Sandbox box;
  SharedStore shared;
  box.add("t-storeuser");
  const auto host = make_host(box, shared, box.section("t-storeuser"));
  host->set_epoch(7);
  REQUIRE(host->start_all());
  host->stop_all();

  const std::vector<std::string> journal = box.journal_lines();
  REQUIRE(journal.size() == 10);
  CHECK(journal[0] ==
        "create stat=2 error=store_stat: no such file: plugins/t-storeuser/"
        "greeting.txt");
  CHECK(journal[1] == kNotStarted);
  CHECK(journal[2] == "start put=0 error=");
  CHECK(journal[3] == "stat=0 size=100000 epoch=7 sha256_digits=64");
  CHECK(journal[4] == "get=0 bytes=100000 mismatch=0");
  CHECK(journal[5] == "list key=greeting.txt size=100000 epoch=7");
  CHECK(journal[6] == "list=0 error=");
  CHECK_THAT(journal[7], Catch::StartsWith("escape put=1 error=store_put: key "
                                           "\"../t-dbuser/planted.txt\" refused"));
  CHECK_THAT(journal[8], Catch::StartsWith("absolute put=1 error=store_put: key "
                                           "\"/etc/planted.txt\" refused"));
  CHECK_THAT(journal[9], Catch::StartsWith("remove missing=2 error="));

  // What the plugin stored is in its folder for every node to see, and nothing is outside it.
  const std::vector<store::FileInfo> files = shared.store->list("");
  REQUIRE(files.size() == 1);
  CHECK(files[0].key == "plugins/t-storeuser/greeting.txt");
  CHECK(files[0].size == 100000);
  CHECK(files[0].writer_node == "node-a");
}

TEST_CASE("after the lease moved a plugin's put is fenced and its start fails with the reason") {
  Sandbox box;
  SharedStore shared;
  box.add("t-storeuser");
  const auto host = make_host(box, shared, box.section("t-storeuser"));
  // node-b took the lease; this node has not learnt it yet and still believes in epoch 7.
  set_lease(*shared.database, "node-b", 8, 60000);
  host->set_epoch(7);
  CHECK_FALSE(host->start_all());

  const std::string fenced =
      "fenced: this node (node-a, epoch 7) no longer holds the lease; holder node-b at epoch 8";
  CHECK(host->status().at(0).state == PluginState::failed);
  CHECK(host->status().at(0).last_error == fenced);
  CHECK(box.journal_lines().back() == "start put=3 error=" + fenced);
  CHECK(shared.store->list("").empty());
}

TEST_CASE("a plugin on a node without a file store is told so at each call") {
  Sandbox box;
  SharedStore shared;
  box.add("t-storeuser");
  auto host = std::make_unique<PluginHost>(box.node_config(box.section("t-storeuser")));
  host->set_database(shared.database.get());
  host->load();
  host->create_all();
  CHECK(box.journal_lines().front() == "create stat=1 error=store_stat: no shared file store");
}

}  // namespace emsnode::host
