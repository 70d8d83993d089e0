#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <istream>
#include <sstream>
#include <string>
#include <thread>

#include "db/db_test_support.hpp"
#include "store/file_store.hpp"
#include "store_test_support.hpp"
#include "support/sanitizers.hpp"

using namespace emsnode::store;
using Catch::Matchers::Contains;
using emsnode::db::FencedError;
using emsnode::db::testing::set_lease;
using emsnode::store::testing::files_under;
using emsnode::store::testing::pattern;
using emsnode::store::testing::sha256_of;
using emsnode::store::testing::StoreFixture;

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Flips one bit of the byte at `offset` of a file.
void flip_byte(const fs::path& file, std::streamoff offset) {
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(stream);
  stream.seekg(offset);
  char byte = 0;
  stream.get(byte);
  stream.seekp(offset);
  stream.put(static_cast<char>(byte ^ 0x01));
  REQUIRE(stream);
}

}  // namespace

TEST_CASE("a file put into the store comes back byte for byte with its size and checksum") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  const std::size_t size = GENERATE(std::size_t{0}, std::size_t{1000}, 5 * kMiB + 17);
  INFO(backend << ", " << size << " bytes");
  StoreFixture fixture(backend);
  const std::string content = pattern(size);
  const std::int64_t before = fixture.database().now_ms();

  const FileInfo put = fixture.put("files/data.bin", content);
  CHECK(put.key == "files/data.bin");
  CHECK(put.size == size);
  CHECK(put.sha256 == sha256_of(content));
  CHECK(put.writer_node == "n1");
  CHECK(put.epoch == 1);
  CHECK(put.modified_at_ms >= before);
  CHECK(put.modified_at_ms <= fixture.database().now_ms());

  CHECK(fixture.get("files/data.bin") == content);
  const auto stat = fixture.store().stat("files/data.bin");
  REQUIRE(stat);
  CHECK(stat->size == size);
  CHECK(stat->sha256 == put.sha256);
  CHECK(stat->modified_at_ms == put.modified_at_ms);
  const auto listed = fixture.store().list("files/");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].key == "files/data.bin");
  CHECK(listed[0].sha256 == put.sha256);
  if (fixture.is_share()) {
    CHECK(fixture.objects() == 1);
    CHECK(fixture.temp_files() == 0);
  } else {
    CHECK(fixture.chunks() == static_cast<std::int64_t>((size + kMiB - 1) / kMiB));
  }

  // Another node sees the same file.
  auto [database, other] = fixture.open_another();
  std::ostringstream out;
  CHECK(other->get("files/data.bin", out).sha256 == put.sha256);
  CHECK(out.str() == content);

  fixture.store().remove("files/data.bin", fixture.writer());
  CHECK_FALSE(fixture.store().stat("files/data.bin"));
  CHECK(fixture.store().list("").empty());
  CHECK_THROWS_AS(fixture.get("files/data.bin"), NotFound);
  CHECK_THROWS_AS(fixture.store().remove("files/data.bin", fixture.writer()), NotFound);
  if (fixture.is_share()) CHECK(fixture.objects() == 0);
}

TEST_CASE("a replaced file serves the new content and its old content becomes garbage") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  fixture.put("policy.xml", pattern(3 * kMiB, 1));
  const FileInfo second = fixture.put("policy.xml", pattern(2 * kMiB, 2));
  CHECK(fixture.get("policy.xml") == pattern(2 * kMiB, 2));
  CHECK(fixture.store().stat("policy.xml")->sha256 == second.sha256);
  CHECK(fixture.store().list("").size() == 1);
  if (fixture.is_share()) {
    // The old object is unlinked right after the commit; readers that opened it keep reading.
    CHECK(fixture.objects() == 1);
  } else {
    // The old blob stays for readers that were streaming it, until collected.
    CHECK(fixture.blobs() == 2);
    CHECK(fixture.store().collect_garbage(std::chrono::hours(1)) == 0);
    CHECK(fixture.store().collect_garbage(std::chrono::milliseconds(0)) == 1);
    CHECK(fixture.blobs() == 1);
    CHECK(fixture.chunks() == 2);
  }
  CHECK(fixture.get("policy.xml") == pattern(2 * kMiB, 2));
}

TEST_CASE("list returns the files under a prefix ordered by key") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  for (const char* key : {"b/2", "a/1", "ab", "a/0", "a_x", "caf\xc3\xa9/1", "a%/1"}) {
    fixture.put(key, key);
  }
  const auto keys = [&](const std::string& prefix) {
    std::vector<std::string> found;
    for (const auto& file : fixture.store().list(prefix)) found.push_back(file.key);
    return found;
  };
  CHECK(keys("") ==
        std::vector<std::string>{"a%/1", "a/0", "a/1", "a_x", "ab", "b/2", "caf\xc3\xa9/1"});
  CHECK(keys("a/") == std::vector<std::string>{"a/0", "a/1"});
  CHECK(keys("a") == std::vector<std::string>{"a%/1", "a/0", "a/1", "a_x", "ab"});
  // No pattern characters: '_' and '%' are plain bytes.
  CHECK(keys("a_") == std::vector<std::string>{"a_x"});
  CHECK(keys("a%") == std::vector<std::string>{"a%/1"});
  CHECK(keys("caf\xc3\xa9") == std::vector<std::string>{"caf\xc3\xa9/1"});
  CHECK(keys("zzz").empty());
}

TEST_CASE("a put by a node that lost the lease fails and leaves nothing visible") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  const std::string old_content = pattern(1500 * 1024, 1);
  fixture.put("license.dat", old_content);

  SECTION("another node holds the lease at a newer epoch") {
    set_lease(fixture.database(), "n2", 2, 600'000);
  }
  SECTION("the lease expired") {
    set_lease(fixture.database(), "n1", 1, -1000);
  }
  SECTION("the same node holds it at a newer epoch") {
    set_lease(fixture.database(), "n1", 2, 600'000);
  }

  CHECK_THROWS_AS(fixture.put("license.dat", pattern(2 * kMiB, 2)), FencedError);
  CHECK_THROWS_WITH(fixture.put("new.dat", "fresh"), Contains("no longer holds the lease"));
  CHECK_THROWS_AS(fixture.store().remove("license.dat", fixture.writer()), FencedError);

  CHECK_FALSE(fixture.store().stat("new.dat"));
  CHECK(fixture.store().list("").size() == 1);
  CHECK(fixture.get("license.dat") == old_content);
  // The refused puts cleaned up after themselves, before any garbage collection.
  if (fixture.is_share()) {
    CHECK(fixture.objects() == 1);
    CHECK(fixture.temp_files() == 0);
  } else {
    CHECK(fixture.blobs() == 1);
    CHECK(fixture.chunks() == 2);
  }
}

TEST_CASE("a reader sees the whole old or the whole new content while a writer replaces the key") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  const std::size_t size = 3 * kMiB + 5;
  const std::string a(size, 'a');
  const std::string b(size, 'b');
  fixture.put("installer.bin", a);

  std::atomic<bool> writing{true};
  std::thread writer([&] {
    auto [database, store] = fixture.open_another();
    for (int i = 0; i < 12; ++i) {
      std::istringstream in(i % 2 == 0 ? b : a);
      store->put("installer.bin", in, fixture.writer());
    }
    writing = false;
  });
  auto [database, reader] = fixture.open_another();
  int reads = 0;
  int mixed = 0;
  do {
    std::ostringstream out;
    const FileInfo info = reader->get("installer.bin", out);
    const std::string got = out.str();
    if (got != a && got != b) ++mixed;
    CHECK(info.sha256 == sha256_of(got));
    ++reads;
  } while (writing);
  writer.join();
  CHECK(mixed == 0);
  CHECK(reads > 1);
}

TEST_CASE("corrupted content is reported as corrupt and never lands at the destination") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  fixture.put("policy.bin", pattern(2 * kMiB + 3));
  const std::string location = fixture.location("policy.bin");

  SECTION("one flipped byte") {
    if (fixture.is_share()) {
      flip_byte(fixture.share() / location, kMiB + 10);
    } else {
      std::string chunk =
          fixture.database()
              .query("SELECT data FROM store_blob_chunks WHERE blob_id = ? AND seq = 1", {location})
              .front()
              .blob(0);
      chunk[10] = static_cast<char>(chunk[10] ^ 0x01);
      fixture.database().transaction([&](emsnode::db::Transaction& tx) {
        tx.exec("UPDATE store_blob_chunks SET data = ? WHERE blob_id = ? AND seq = 1",
                {emsnode::db::Blob{chunk}, location});
      });
    }
    CHECK_THROWS_WITH(fixture.get("policy.bin"), Contains("is corrupt: the SHA-256"));
  }
  SECTION("missing bytes") {
    if (fixture.is_share()) {
      fs::resize_file(fixture.share() / location, 2 * kMiB);
    } else {
      fixture.database().transaction([&](emsnode::db::Transaction& tx) {
        tx.exec("DELETE FROM store_blob_chunks WHERE blob_id = ? AND seq = 2", {location});
      });
    }
    CHECK_THROWS_WITH(fixture.get("policy.bin"), Contains("is corrupt"));
  }
  SECTION("extra bytes") {
    if (fixture.is_share()) {
      std::ofstream(fixture.share() / location, std::ios::binary | std::ios::app) << "tail";
    } else {
      const std::string last =
          fixture.database()
              .query("SELECT data FROM store_blob_chunks WHERE blob_id = ? AND seq = 2", {location})
              .front()
              .blob(0);
      fixture.database().transaction([&](emsnode::db::Transaction& tx) {
        tx.exec("UPDATE store_blob_chunks SET data = ? WHERE blob_id = ? AND seq = 2",
                {emsnode::db::Blob{last + "tail"}, location});
      });
    }
    CHECK_THROWS_WITH(fixture.get("policy.bin"), Contains("is corrupt") && Contains("more than"));
  }

  CHECK_THROWS_AS(fixture.get("policy.bin"), Corrupt);
  const fs::path destination_dir = fixture.dir() / "downloads";
  fs::create_directory(destination_dir);
  const fs::path destination = destination_dir / "policy.bin";
  CHECK_THROWS_AS(fixture.store().get_to_file("policy.bin", destination.string()), Corrupt);
  CHECK_FALSE(fs::exists(destination));
  CHECK(files_under(destination_dir).empty());
}

TEST_CASE("files on disk go into the store and come out only once verified") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  const std::string content = pattern(kMiB + 99);
  const fs::path source = fixture.dir().write("upload.bin", content);
  const FileInfo put =
      fixture.store().put_file("uploads/upload.bin", source.string(), fixture.writer());
  CHECK(put.sha256 == sha256_of(content));

  const fs::path target = fixture.dir() / "out" / "copy.bin";
  fs::create_directory(target.parent_path());
  const FileInfo got = fixture.store().get_to_file("uploads/upload.bin", target.string());
  CHECK(got.sha256 == put.sha256);
  CHECK(emsnode::testing::read_file(target) == content);
  CHECK(files_under(target.parent_path()) == std::vector<std::string>{"copy.bin"});

  CHECK_THROWS_AS(
      fixture.store().get_to_file("uploads/missing", (fixture.dir() / "out" / "m").string()),
      NotFound);
  CHECK(files_under(target.parent_path()) == std::vector<std::string>{"copy.bin"});
  CHECK_THROWS_WITH(
      fixture.store().put_file("x", (fixture.dir() / "absent").string(), fixture.writer()),
      Contains("absent: cannot open: No such file or directory"));
}

TEST_CASE("a large put from a file leaves the database to other writers between short commits") {
  // The blob backend writes a local file in transactions of up to 64 MiB or 100 ms: another
  // node's lease renewal (a small write) must not wait anywhere near renew_deadline (1200 ms by
  // default) behind it. (One transaction for the whole file held it for about 700 ms here.)
  StoreFixture fixture("blob");
  const fs::path source = fixture.dir() / "large.bin";
  {
    emsnode::store::testing::GeneratedBuffer generated(192 * kMiB, 3);
    std::istream in(&generated);
    std::ofstream out(source, std::ios::binary);
    out << in.rdbuf();
    REQUIRE(out);
  }
  // As the lease's connection is opened: its writes go first in this process.
  auto other = fixture.db_dir().open(2000, /*writes_first=*/true);
  std::atomic<bool> done{false};
  std::chrono::steady_clock::duration longest{};
  int writes = 0;
  std::string failure;
  std::thread renewals([&] {
    try {
      while (!done) {
        const auto start = std::chrono::steady_clock::now();
        other->transaction([](emsnode::db::Transaction& tx) {
          tx.exec("UPDATE store_state SET change_seq = change_seq WHERE id = 1");
        });
        longest = std::max(longest, std::chrono::steady_clock::now() - start);
        ++writes;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    } catch (const std::exception& error) {
      failure = error.what();
    }
  });
  FileInfo put;
  std::string put_failure;
  try {
    put = fixture.store().put_file("large.bin", source.string(), fixture.writer());
  } catch (const std::exception& error) {
    put_failure = error.what();  // reported once the other writer has stopped
  }
  done = true;
  renewals.join();

  REQUIRE(put_failure.empty());
  CHECK(put.size == 192 * kMiB);
  CHECK(failure.empty());
  CHECK(writes > 0);
  INFO("the longest small write took "
       << std::chrono::duration_cast<std::chrono::milliseconds>(longest).count() << " ms");
  CHECK_WALL_CLOCK(longest < std::chrono::milliseconds(500));
}

TEST_CASE("garbage collection removes only unreferenced leftovers older than the minimum age") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  fixture.put("kept", pattern(kMiB + 1));
  // Leftovers of a put that never finished.
  if (fixture.is_share()) {
    fixture.dir().write("share/tmp/0123.part", "half");
    fixture.dir().write("share/objects/ff/ffff", "renamed but never published");
  } else {
    const std::int64_t now = fixture.database().now_ms();
    fixture.database().transaction([&](emsnode::db::Transaction& tx) {
      tx.exec("INSERT INTO store_blobs (blob_id, created_at_ms, complete) VALUES ('b1', ?, 0)",
              {now});
      tx.exec("INSERT INTO store_blob_chunks (blob_id, seq, data) VALUES ('b1', 0, ?)",
              {emsnode::db::Blob{std::string(1, '\0')}});
      // Chunks without a blob row are garbage whatever their age: only a deletion makes them.
      tx.exec("INSERT INTO store_blob_chunks (blob_id, seq, data) VALUES ('orphan', 0, ?)",
              {emsnode::db::Blob{std::string(1, '\0')}});
    });
  }
  CHECK(fixture.store().collect_garbage(std::chrono::hours(1)) == (fixture.is_share() ? 0 : 1));
  CHECK(fixture.store().collect_garbage(std::chrono::milliseconds(0)) ==
        (fixture.is_share() ? 2 : 1));
  CHECK(fixture.store().collect_garbage(std::chrono::milliseconds(0)) == 0);
  if (fixture.is_share()) {
    CHECK(fixture.temp_files() == 0);
    CHECK(fixture.objects() == 1);
  } else {
    CHECK(fixture.blobs() == 1);
    CHECK(fixture.chunks() == 2);
  }
  CHECK(fixture.get("kept") == pattern(kMiB + 1));
}
