// Failures an operator must be told about clearly, with nothing half-written left visible:
// an unmounted share, permission denied, a full disk, a database that cannot be written.
#include <sys/mount.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <istream>
#include <string>

#include "db/db_test_support.hpp"
#include "store/file_store.hpp"
#include "store_test_support.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"
#include "support/unwritable.hpp"

using namespace emsnode::store;
using Catch::Matchers::Contains;
using emsnode::store::testing::files_under;
using emsnode::store::testing::GeneratedBuffer;
using emsnode::store::testing::pattern;
using emsnode::store::testing::StoreFixture;

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// A tmpfs mounted for one test and detached when it ends.
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& path, const std::string& size) : path_(path) {
    fs::create_directory(path_);
    const std::string options = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (error_.empty()) ::umount2(path_.c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  // Empty when mounted, else why not.
  const std::string& error() const { return error_; }

 private:
  fs::path path_;
  std::string error_;
};

}  // namespace

TEST_CASE("a share without its marker is reported unavailable and nothing is written into it") {
  StoreFixture fixture("share");
  fixture.put("a.txt", "content");
  const fs::path marker = fixture.share() / ".emsnode-store";
  const fs::path away = fixture.dir() / "marker-elsewhere";
  // What an unmounted share looks like: the mount point without the share's files.
  fs::rename(marker, away);
  const auto before = files_under(fixture.share());
  const std::string hint = fixture.share().string() +
                           ": not the emsnode share (marker missing): is the network share "
                           "mounted?";

  CHECK_THROWS_AS(fixture.put("b.txt", "new"), Unavailable);
  CHECK_THROWS_WITH(fixture.put("b.txt", "new"), hint);
  CHECK_THROWS_WITH(fixture.get("a.txt"), hint);
  CHECK_THROWS_WITH(fixture.store().stat("a.txt"), hint);
  CHECK_THROWS_WITH(fixture.store().list(""), hint);
  CHECK_THROWS_WITH(fixture.store().remove("a.txt", fixture.writer()), hint);
  CHECK_THROWS_WITH(fixture.store().collect_garbage(std::chrono::milliseconds(0)), hint);
  CHECK(files_under(fixture.share()) == before);

  // A node that opens the store on an empty mount point is refused, and creates nothing there.
  const fs::path empty = fixture.dir() / "empty-mount-point";
  fs::create_directory(empty);
  CHECK_THROWS_AS(open_share_store(fixture.database(), empty.string()), Unavailable);
  CHECK_THROWS_WITH(
      open_share_store(fixture.database(), empty.string()),
      empty.string() + ": not the emsnode share (marker missing): is the network share mounted?");
  CHECK(fs::is_empty(empty));
  // Nor is a mount point that is not even there.
  CHECK_THROWS_AS(open_share_store(fixture.database(), (fixture.dir() / "gone").string()),
                  Unavailable);

  // Mounted again: everything is back, and the refused put left nothing.
  fs::rename(away, marker);
  CHECK(fixture.get("a.txt") == "content");
  CHECK_FALSE(fixture.store().stat("b.txt"));
  CHECK(fixture.temp_files() == 0);
}

TEST_CASE("the share of another store is refused as the wrong share") {
  StoreFixture fixture("share");
  const fs::path marker = fixture.share() / ".emsnode-store";
  fixture.dir().write("share/.emsnode-store", "0123456789abcdef0123456789abcdef\n");
  CHECK_THROWS_AS(fixture.put("k", "v"), Unavailable);
  CHECK_THROWS_WITH(fixture.put("k", "v"),
                    Contains("not the emsnode share of this cluster") &&
                        Contains("names store 0123456789abcdef0123456789abcdef") &&
                        Contains("is the right network share mounted?"));
  CHECK(fixture.objects() == 0);
}

TEST_CASE("a share the node's user may not write to is reported as permission denied") {
  StoreFixture fixture("share");
  // Root owns the share and everything in it, mode 0755: readable, not writable, by others.
  fs::permissions(fixture.dir().path(), fs::perms::owner_all | fs::perms::group_read |
                                            fs::perms::group_exec | fs::perms::others_read |
                                            fs::perms::others_exec);
  emsnode::testing::Process child(
      {STORE_PUT_CHILD, "--db", fixture.db_dir().file(), "--backend", "share", "--share",
       fixture.share().string(), "--key", "denied.bin", "--bytes", "1000", "--node", "n1",
       "--epoch", "1", "--user", "nobody"},
      fixture.db_dir().path());
  const auto status = child.wait(std::chrono::seconds(30));
  REQUIRE(status);
  if (*status == 3) {
    emsnode::testing::skip_test("cannot run a process as user nobody here (" + child.err() + ")");
    return;
  }
  INFO(child.out() << child.err());
  CHECK(*status == 2);
  CHECK_THAT(child.out(), Contains("StoreError: ") && Contains("permission denied") &&
                              Contains((fixture.share() / "tmp").string()));
  CHECK_FALSE(fixture.store().stat("denied.bin"));
  CHECK(fixture.temp_files() == 0);
  CHECK(fixture.objects() == 0);
}

TEST_CASE("a full share is reported as no space and the partial file is removed") {
  emsnode::db::testing::DbDir db_dir;
  emsnode::testing::TempDir dir;
  const TmpfsMount mount(dir / "share", "2m");
  if (!mount.error().empty()) {
    emsnode::testing::skip_test("cannot mount a 2 MiB tmpfs here (" + mount.error() + ")");
    return;
  }
  auto database = db_dir.open_migrated();
  emsnode::db::testing::set_lease(*database, "n1", 1, 600'000);
  auto store = open_share_store(*database, (dir / "share").string());
  const Writer writer{"n1", 1};

  GeneratedBuffer source(3 * kMiB);
  std::istream in(&source);
  CHECK_THROWS_AS(store->put("big.iso", in, writer), NoSpace);
  GeneratedBuffer again(3 * kMiB);
  std::istream in_again(&again);
  CHECK_THROWS_WITH(store->put("big.iso", in_again, writer),
                    Contains((dir / "share" / "tmp").string()) && Contains("no space left"));
  CHECK_FALSE(store->stat("big.iso"));
  CHECK(files_under(dir / "share" / "tmp").empty());
  CHECK(files_under(dir / "share" / "objects").empty());

  // The space was given back: a file that fits goes through.
  std::istringstream small(pattern(kMiB));
  CHECK(store->put("small.bin", small, writer).size == kMiB);
}

TEST_CASE("a put while the database cannot be written is reported unavailable and leaves nothing") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  const std::string why_not = emsnode::testing::unwritable_unsupported(fixture.db_dir().path());
  if (!why_not.empty()) {
    emsnode::testing::skip_test(why_not);
    return;
  }
  fixture.put("before", "old");
  {
    emsnode::testing::Unwritable unwritable(fixture.db_dir().file());
    CHECK_THROWS_AS(fixture.put("during", pattern(2 * kMiB)), Unavailable);
    CHECK_THROWS_WITH(fixture.put("during", "x"),
                      Contains("store: ") && Contains("the shared database is unavailable"));
    CHECK_THROWS_AS(fixture.store().remove("before", fixture.writer()), Unavailable);
    // Reads still work, and show nothing of the failed puts.
    CHECK_FALSE(fixture.store().stat("during"));
    CHECK(fixture.get("before") == "old");
    unwritable.restore();
  }
  CHECK(fixture.store().list("").size() == 1);
  fixture.store().collect_garbage(std::chrono::milliseconds(0));
  if (fixture.is_share()) {
    CHECK(fixture.objects() == 1);
    CHECK(fixture.temp_files() == 0);
  } else {
    CHECK(fixture.blobs() == 1);
    CHECK(fixture.chunks() == 1);
  }
  fixture.put("after", "new");
  CHECK(fixture.get("after") == "new");
}
