#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/file_store.hpp"
#include "store_test_support.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"

using namespace emsnode::store;
using namespace std::chrono_literals;
using emsnode::store::testing::sha256_of;
using emsnode::store::testing::StoreFixture;
using emsnode::testing::eventually;

namespace {

// What a watch reported, read from the test's thread.
class Seen {
 public:
  std::function<void(const Change&)> callback() {
    return [this](const Change& change) {
      std::lock_guard lock(mutex_);
      changes_.push_back(change);
    };
  }
  std::vector<Change> changes() const {
    std::lock_guard lock(mutex_);
    return changes_;
  }
  std::size_t size() const { return changes().size(); }

 private:
  mutable std::mutex mutex_;
  std::vector<Change> changes_;
};

void put(FileStore& store, const std::string& key, const std::string& bytes) {
  std::istringstream in(bytes);
  store.put(key, in, {"n1", 1});
}

}  // namespace

TEST_CASE("a watch reports puts and removes under its prefix only") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  fixture.put("plugins/a/before", "made before the watch started");
  Seen seen;
  auto handle = watch(fixture.store(), fixture.database(), "plugins/a/", 50ms, seen.callback());

  // Changes made by another node.
  auto [database, other] = fixture.open_another();
  put(*other, "plugins/a/x", "1");
  REQUIRE(eventually([&] { return seen.size() >= 1; }, 10s));
  put(*other, "plugins/b/y", "2");
  put(*other, "plugins/ab", "3");
  other->remove("plugins/a/x", {"n1", 1});
  REQUIRE(eventually([&] { return seen.size() >= 2; }, 10s));
  std::this_thread::sleep_for(300ms);  // room for anything reported by mistake

  const auto changes = seen.changes();
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].kind == Change::Kind::put);
  CHECK(changes[0].file.key == "plugins/a/x");
  CHECK(changes[0].file.sha256 == sha256_of("1"));
  CHECK(changes[0].file.size == 1);
  CHECK(changes[0].file.writer_node == "n1");
  CHECK(changes[1].kind == Change::Kind::removed);
  CHECK(changes[1].file.key == "plugins/a/x");

  // Destroying the handle stops the reports.
  handle.reset();
  put(*other, "plugins/a/z", "4");
  std::this_thread::sleep_for(300ms);
  CHECK(seen.size() == 2);
}

TEST_CASE("a share watch wakes up on the share's changes file, before its slower catalog poll") {
  StoreFixture fixture("share");
  Seen seen;
  // The catalog is polled every 10 intervals (5 s); the changes file every interval.
  const auto started = std::chrono::steady_clock::now();
  auto handle = watch(fixture.store(), fixture.database(), "", 500ms, seen.callback());
  std::this_thread::sleep_for(1s);  // past the poll's first look at the file
  auto [database, other] = fixture.open_another();
  put(*other, "policy.xml", "p");
  REQUIRE(eventually([&] { return seen.size() == 1; }, 10s));
  CHECK_WALL_CLOCK(std::chrono::steady_clock::now() - started < 4500ms);
}

TEST_CASE("a share watch still reports a change whose announcement on the share was lost") {
  StoreFixture fixture("share");
  Seen seen;
  auto handle = watch(fixture.store(), fixture.database(), "", 50ms, seen.callback());
  // A blob store on the same catalog publishes without touching the share's changes file.
  auto blob = open_blob_store(fixture.database());
  put(*blob, "moved.bin", "b");
  REQUIRE(eventually([&] { return seen.size() == 1; }, 10s));
  CHECK(seen.changes()[0].file.key == "moved.bin");
}
