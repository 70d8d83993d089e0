#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "db/db_test_support.hpp"
#include "store/file_store.hpp"
#include "store_test_support.hpp"

using namespace emsnode::store;
using emsnode::db::FencedError;
using emsnode::store::testing::pattern;
using emsnode::store::testing::sha256_of;
using emsnode::store::testing::StoreFixture;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

const std::map<std::string, std::string>& files() {
  static const std::map<std::string, std::string> files = {
      {"empty", ""},
      {"policies/a.xml", "<policy/>"},
      {"installers/agent.msi", pattern(5 * kMiB + 17, 3)},
  };
  return files;
}

std::string get(FileStore& store, const std::string& key) {
  std::ostringstream out;
  store.get(key, out);
  return out.str();
}

// Every file is in `store` with its content and checksum.
void check_all_in(FileStore& store) {
  const auto listed = store.list("");
  REQUIRE(listed.size() == files().size());
  for (const auto& file : listed) {
    INFO(store.backend() << ": " << file.key);
    const std::string& content = files().at(file.key);
    CHECK(file.sha256 == sha256_of(content));
    CHECK(file.size == content.size());
    CHECK(get(store, file.key) == content);
  }
}

}  // namespace

TEST_CASE("migrating share to blob and back preserves every file and its checksum") {
  StoreFixture fixture("share");
  auto blob = open_blob_store(fixture.database());
  std::uint64_t total = 0;
  for (const auto& [key, content] : files()) {
    fixture.put(key, content);
    total += content.size();
  }

  std::vector<std::string> reported;
  const MigrationReport to_blob =
      migrate(fixture.store(), *blob, fixture.writer(),
              [&](const FileInfo& file) { reported.push_back(file.key); });
  CHECK(to_blob.copied == files().size());
  CHECK(to_blob.skipped == 0);
  CHECK(to_blob.bytes == total);
  CHECK(reported == std::vector<std::string>{"empty", "installers/agent.msi", "policies/a.xml"});
  check_all_in(*blob);
  // One database, one catalog: the rows moved to the blob backend, the objects became garbage.
  CHECK(fixture.store().list("").empty());
  CHECK(fixture.store().collect_garbage(std::chrono::milliseconds(0)) == files().size());
  CHECK(fixture.objects() == 0);

  const MigrationReport to_share = migrate(*blob, fixture.store(), fixture.writer());
  CHECK(to_share.copied == files().size());
  check_all_in(fixture.store());
  CHECK(blob->list("").empty());
  CHECK(blob->collect_garbage(std::chrono::milliseconds(0)) == files().size());
  CHECK(fixture.blobs() == 0);
}

TEST_CASE("migrating into a store on another database copies once and then skips what is there") {
  StoreFixture source("share");
  StoreFixture target("blob");
  for (const auto& [key, content] : files()) source.put(key, content);
  const MigrationReport first = migrate(source.store(), target.store(), target.writer());
  CHECK(first.copied == files().size());
  check_all_in(target.store());
  check_all_in(source.store());

  const MigrationReport second = migrate(source.store(), target.store(), target.writer());
  CHECK(second.copied == 0);
  CHECK(second.skipped == files().size());
  CHECK(second.bytes == 0);
}

TEST_CASE("a corrupt source file stops the migration before its copy is published") {
  StoreFixture source("share");
  StoreFixture target("blob");
  source.put("agent.msi", pattern(3 * kMiB));
  const auto object = source.share() / source.location("agent.msi");
  {
    std::fstream stream(object, std::ios::in | std::ios::out | std::ios::binary);
    stream.seekp(2 * kMiB + 1);
    stream.put('\x5a');
  }
  CHECK_THROWS_AS(migrate(source.store(), target.store(), target.writer()), Corrupt);
  CHECK(target.store().list("").empty());
  CHECK(target.blobs() == 0);
}

TEST_CASE("a migration by a node that lost the lease reports the fencing, not its echo") {
  StoreFixture source("share");
  StoreFixture target("blob");
  source.put("agent.msi", pattern(9 * kMiB));
  emsnode::db::testing::set_lease(target.database(), "n2", 2, 600'000);
  CHECK_THROWS_AS(migrate(source.store(), target.store(), target.writer()), FencedError);
  CHECK(target.store().list("").empty());
  CHECK(target.blobs() == 0);
}
