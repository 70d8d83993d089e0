#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "db/sqlite_database.hpp"
#include "db_test_support.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"
#include "support/skip.hpp"
#include "support/unwritable.hpp"

using namespace emsnode::db;
using Catch::Matchers::Contains;
using namespace std::string_literals;
using emsnode::db::testing::DbDir;
using emsnode::testing::eventually;

namespace {

std::int64_t count_rows(Database& database, const std::string& table) {
  return database.query("SELECT COUNT(*) FROM " + table).front().integer(0);
}

void create_items(Database& database) {
  database.transaction([](Transaction& tx) {
    tx.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
  });
}

}  // namespace

TEST_CASE("every value type round-trips through a parameter and a column", "[sqlite]") {
  DbDir dir;
  auto db = dir.open();
  const std::vector<Value> values = {
      nullptr,
      std::int64_t{0},
      std::numeric_limits<std::int64_t>::max(),
      std::numeric_limits<std::int64_t>::min(),
      -2.5,
      std::string(),
      "na\xc3\xafve text with a \0 inside"s,
      Blob{},
      Blob{"\x00\xff\x01 binary"s},
  };
  db->transaction([&](Transaction& tx) {
    tx.exec("CREATE TABLE v (i INTEGER PRIMARY KEY, x)");
    for (std::size_t i = 0; i < values.size(); ++i) {
      REQUIRE(tx.exec("INSERT INTO v (i, x) VALUES (?, ?)",
                      {static_cast<std::int64_t>(i), values[i]}) == 1);
    }
  });
  const Rows rows = db->query("SELECT x FROM v ORDER BY i");
  REQUIRE(rows.size() == values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("value " << i);
    CHECK(rows[i][0] == values[i]);
  }
  CHECK(rows[0].is_null(0));
  CHECK(rows[2].integer(0) == std::numeric_limits<std::int64_t>::max());
  CHECK(rows[4].floating(0) == -2.5);
  CHECK(rows[1].floating(0) == 0.0);
  CHECK(rows[6].text(0).size() == 27);
  CHECK(rows[8].blob(0) == "\x00\xff\x01 binary"s);
  CHECK_THROWS_AS(rows[6].integer(0), DbError);
  CHECK_THROWS_WITH(rows[4].text(0), "column 0 is a real, not text");
}

TEST_CASE("a transaction whose body throws writes nothing and rethrows") {
  DbDir dir;
  auto db = dir.open();
  create_items(*db);
  CHECK_THROWS_WITH(db->transaction([](Transaction& tx) {
    tx.exec("INSERT INTO items (id, name) VALUES (1, 'a')");
    throw std::runtime_error("the body gave up");
  }),
                    "the body gave up");
  CHECK(count_rows(*db, "items") == 0);

  // A failing statement rolls back the statements before it too.
  CHECK_THROWS_AS(db->transaction([](Transaction& tx) {
    tx.exec("INSERT INTO items (id, name) VALUES (1, 'a')");
    tx.exec("INSERT INTO items (id, name) VALUES (1, 'duplicate')");
  }),
                  DbError);
  CHECK(count_rows(*db, "items") == 0);

  // And the connection is usable afterwards.
  db->transaction([](Transaction& tx) { tx.exec("INSERT INTO items (id, name) VALUES (2, 'b')"); });
  CHECK(count_rows(*db, "items") == 1);
}

TEST_CASE("a write by one node is seen by another node that opened the same file") {
  DbDir dir;
  auto first = dir.open();
  auto second = dir.open();
  create_items(*first);
  first->transaction(
      [](Transaction& tx) { tx.exec("INSERT INTO items (id, name) VALUES (1, 'x')"); });
  const Rows rows = second->query("SELECT name FROM items");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].text(0) == "x");
  second->transaction([](Transaction& tx) { tx.exec("UPDATE items SET name = 'y'"); });
  CHECK(first->query("SELECT name FROM items").front().text(0) == "y");
}

TEST_CASE("the database runs in WAL mode with full sync and foreign keys on", "[sqlite]") {
  DbDir dir;
  auto db = dir.open();
  db->transaction([](Transaction& tx) {
    CHECK(tx.query("PRAGMA journal_mode").front().text(0) == "wal");
    CHECK(tx.query("PRAGMA synchronous").front().integer(0) == 2);  // FULL
    CHECK(tx.query("PRAGMA foreign_keys").front().integer(0) == 1);
  });
  // Another process (here: connection) opening the file finds it in WAL mode.
  CHECK(std::filesystem::exists(dir.file() + "-wal"));
}

TEST_CASE("a write waits for another node's transaction", "[sqlite]") {
  DbDir dir;
  auto first = dir.open();
  auto second = dir.open(/*busy_timeout_ms=*/100);
  create_items(*first);

  std::mutex mutex;
  std::condition_variable changed;
  bool holding = false;
  bool release = false;
  std::thread holder([&] {
    first->transaction([&](Transaction& tx) {
      tx.exec("INSERT INTO items (name) VALUES ('held')");
      std::unique_lock lock(mutex);
      holding = true;
      changed.notify_all();
      changed.wait(lock, [&] { return release; });
    });
  });
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return holding; });
  }

  SECTION("and fails as busy when it is held past busy_timeout") {
    const auto start = std::chrono::steady_clock::now();
    try {
      second->transaction(
          [](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('b')"); });
      FAIL("the second write did not wait for the first");
    } catch (const UnreachableError& e) {
      FAIL("busy reported as unreachable: " << e.what());
    } catch (const DbError& e) {
      CHECK_THAT(e.what(), Contains("busy") && Contains("100 ms"));
    }
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(90));
  }
  SECTION("and goes through when that transaction ends within busy_timeout") {
    auto patient = dir.open(/*busy_timeout_ms=*/5000);
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      std::lock_guard lock(mutex);
      release = true;
      changed.notify_all();
    });
    patient->transaction([](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('b')"); });
    releaser.join();
    CHECK(count_rows(*patient, "items") == 2);
  }
  {
    std::lock_guard lock(mutex);
    release = true;
    changed.notify_all();
  }
  holder.join();
}

TEST_CASE("query() refuses a statement that writes") {
  DbDir dir;
  auto db = dir.open();
  create_items(*db);
  CHECK_THROWS_WITH(db->query("INSERT INTO items (name) VALUES ('x')"),
                    Contains("INSERT INTO items (name) ...") && Contains("only reads"));
  CHECK(count_rows(*db, "items") == 0);
}

TEST_CASE("a statement with the wrong number of parameters fails naming the statement") {
  DbDir dir;
  auto db = dir.open();
  create_items(*db);
  CHECK_THROWS_WITH(db->query("SELECT name FROM items WHERE id = ?"),
                    Contains("SELECT name FROM items ...") && Contains("takes 1 parameters"));
  const std::string missing =
      dir.postgres() ? "relation \"missing_table\" does not exist" : "no such table: missing_table";
  CHECK_THROWS_WITH(db->query("SELECT name FROM missing_table"),
                    Contains(db->describe()) && Contains(missing));
}

TEST_CASE("reads and the clock inside a transaction body run within that transaction") {
  DbDir dir;
  auto db = dir.open();
  create_items(*db);
  db->transaction([&](Transaction& tx) {
    tx.exec("INSERT INTO items (id, name) VALUES (1, 'uncommitted')");
    CHECK(count_rows(*db, "items") == 1);
    CHECK(db->now_ms() > 0);
    CHECK_THROWS_WITH(db->transaction([](Transaction&) {}),
                      Contains("transaction() called inside a transaction body"));
  });
  CHECK(count_rows(*db, "items") == 1);
}

TEST_CASE("the database clock is the host's wall clock in milliseconds") {
  DbDir dir;
  auto db = dir.open();
  const auto wall_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const std::int64_t before = wall_ms();
  const std::int64_t now = db->now_ms();
  const std::int64_t after = wall_ms();
  CHECK(now >= before - 1);
  CHECK(now <= after + 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(db->now_ms() - now >= 19);
}

TEST_CASE("a database in a folder that does not exist is unreachable", "[sqlite]") {
  DbDir dir;
  CHECK_THROWS_AS(open_sqlite((dir.path() / "missing" / "emsnode.db").string()), UnreachableError);
  CHECK_THROWS_WITH(
      open_sqlite((dir.path() / "missing" / "emsnode.db").string()),
      Contains("missing/emsnode.db: cannot open") && Contains("No such file or directory"));
}

TEST_CASE("a database path that is a directory is unreachable", "[sqlite]") {
  DbDir dir;
  std::filesystem::create_directory(dir.path() / "emsnode.db");
  CHECK_THROWS_AS(dir.open(), UnreachableError);
}

TEST_CASE("a file that is not a database is unreachable", "[sqlite]") {
  DbDir dir;
  std::ofstream(dir.file()) << std::string(4096, 'x');
  CHECK_THROWS_WITH(dir.open(), Contains("file is not a database"));
  CHECK_THROWS_AS(dir.open(), UnreachableError);
}

TEST_CASE("a database made unwritable under a running node fails writes as unreachable",
          "[sqlite]") {
  DbDir dir;
  if (const std::string why_not = emsnode::testing::unwritable_unsupported(dir.path());
      !why_not.empty()) {
    emsnode::testing::skip_test(why_not);
    return;
  }
  auto db = dir.open();
  create_items(*db);
  emsnode::testing::Unwritable unwritable(dir.file());
  CHECK_THROWS_AS(
      db->transaction([](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('lost')"); }),
      UnreachableError);
  CHECK_THROWS_WITH(
      db->transaction([](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('lost')"); }),
      Contains("COMMIT: disk I/O error (SQLite error 778"));  // SQLITE_IOERR_WRITE
  // Reads still work: a passive can still see the lease.
  CHECK(count_rows(*db, "items") == 0);
  // A node starting now cannot open it for writing.
  CHECK_THROWS_WITH(dir.open(), Contains("read-only"));
  CHECK_THROWS_AS(dir.open(), UnreachableError);

  unwritable.restore();
  db->transaction([](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('back')"); });
  CHECK(count_rows(*db, "items") == 1);
}

TEST_CASE("network filesystems are recognised by their statfs type", "[sqlite]") {
  CHECK(network_filesystem_name(0x6969) == "nfs");
  CHECK(network_filesystem_name(0x517B) == "smb");
  CHECK(network_filesystem_name(0xFF534D42) == "cifs");
  // f_type is a signed word: CIFS's magic as a 32-bit value is negative.
  CHECK(network_filesystem_name(static_cast<std::int32_t>(0xFF534D42u)) == "cifs");
  CHECK(network_filesystem_name(0xFE534D42) == "smb2");
  CHECK(network_filesystem_name(0x65735546) == "fuse");
  CHECK(network_filesystem_name(0x73757245) == "coda");
  CHECK(network_filesystem_name(0x5346414F) == "afs");
  CHECK(network_filesystem_name(0x6B414653) == "afs");
  CHECK(network_filesystem_name(0x01021997) == "9p");
  CHECK(network_filesystem_name(0x00C36400) == "ceph");
  // Local filesystems: ext4, xfs, btrfs, tmpfs, overlayfs.
  for (const std::int64_t local :
       {0xEF53LL, 0x58465342LL, 0x9123683ELL, 0x01021994LL, 0x794C7630LL}) {
    INFO("f_type " << std::hex << local);
    CHECK_FALSE(network_filesystem_name(local));
    CHECK_FALSE(network_filesystem_refusal("/var/lib/emsnode/emsnode.db", local));
  }
  CHECK(network_filesystem_refusal("/mnt/share/emsnode.db", 0x6969) ==
        "/mnt/share/emsnode.db is on a network filesystem (nfs): SQLite cannot keep nodes on "
        "different hosts apart there; use [database] backend = \"postgresql\" for a cluster that "
        "spans hosts");
}

TEST_CASE("a commit acknowledged before the process is killed survives it", "[sqlite]") {
  DbDir dir;
  create_items(*dir.open());
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child is a node that commits, reports the commit, and is killed without closing.
    ::close(ready[0]);
    int status = 0;
    try {
      auto db = dir.open();
      db->transaction([](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('kept')"); });
      const char ok = 'k';
      if (::write(ready[1], &ok, 1) != 1) status = 3;
      for (;;) ::pause();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      status = 2;
    }
    ::_exit(status);
  }
  ::close(ready[1]);
  char answer = 0;
  const bool committed = ::read(ready[0], &answer, 1) == 1;
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(committed);
  CHECK(WIFSIGNALED(status));
  auto db = dir.open();
  CHECK(db->query("SELECT name FROM items").front().text(0) == "kept");
}

TEST_CASE("nodes that open a new database file at the same moment all succeed", "[sqlite]") {
  DbDir dir;
  constexpr int kNodes = 4;
  std::vector<std::thread> nodes;
  nodes.reserve(kNodes);
  std::atomic<int> ready{0};
  std::vector<std::string> errors(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    nodes.emplace_back([&, i] {
      ++ready;
      while (ready < kNodes) std::this_thread::yield();
      try {
        auto db = dir.open();
        db->transaction([](Transaction& tx) {
          tx.exec("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)");
          tx.exec("INSERT INTO items (name) VALUES ('n')");
        });
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& node : nodes) node.join();
  for (const auto& error : errors) CHECK(error == "");
  CHECK(count_rows(*dir.open(), "items") == kNodes);
}

TEST_CASE("the lease's connection writes before a connection that writes back to back",
          "[sqlite]") {
  DbDir dir;
  auto busy = open_sqlite(dir.file(), SqliteOptions{2000});
  auto lease = open_sqlite(dir.file(), SqliteOptions{2000, /*writes_first=*/true});
  create_items(*busy);

  // A plugin under load: one write transaction after another, each holding the lock for 2 ms.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) {
      busy->transaction([](Transaction& tx) {
        tx.exec("INSERT INTO items (name) VALUES ('load')");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      });
    }
  });
  std::chrono::milliseconds longest{0};
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    lease->transaction(
        [](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES ('renew')"); });
    longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  writer.join();
  // It waits for the one transaction in progress, not for SQLite's busy handler to find a gap
  // (up to the busy timeout, which is when a node fences itself).
  CAPTURE(longest.count());
  CHECK_WALL_CLOCK(longest < std::chrono::milliseconds(500));
}

TEST_CASE("the WAL is copied into the database file while connections stay open", "[sqlite]") {
  DbDir dir;
  auto database = open_sqlite(dir.file());
  create_items(*database);
  // About 3 000 pages in 200 commits: the WAL crosses the checkpoint threshold several times.
  const std::string name(64 * 1024, 'x');
  for (int i = 0; i < 200; ++i) {
    database->transaction(
        [&](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES (?)", {name}); });
  }
  // Without checkpoints the rows would all stay in the -wal file and the database file would
  // keep its first pages only.
  const auto database_file_size = [&] { return std::filesystem::file_size(dir.file()); };
  const bool copied =
      eventually([&] { return database_file_size() >= 8u << 20; }, std::chrono::seconds(10));
  CAPTURE(database_file_size(), std::filesystem::file_size(dir.file() + "-wal"));
  CHECK(copied);
  CHECK(count_rows(*database, "items") == 200);
}

TEST_CASE("the WAL starts over under back-to-back commits instead of growing", "[sqlite]") {
  DbDir dir;
  auto database = open_sqlite(dir.file());
  create_items(*database);
  // About 12 000 pages, one commit right after the other: a checkpoint that runs beside the
  // writer alone would never catch up with it.
  const std::string name(32 * 1024, 'x');
  const int commits = 1500;
  for (int i = 0; i < commits; ++i) {
    database->transaction(
        [&](Transaction& tx) { tx.exec("INSERT INTO items (name) VALUES (?)", {name}); });
  }
  const auto wal = std::filesystem::file_size(dir.file() + "-wal");
  CAPTURE(wal, std::filesystem::file_size(dir.file()));
  CHECK(wal < (24u << 20));  // all of it would be 48 MiB
  CHECK(count_rows(*database, "items") == commits);
}
