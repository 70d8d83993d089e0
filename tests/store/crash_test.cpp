#include <catch2/catch.hpp>
#include <csignal>
#include <string>

#include "store/file_store.hpp"
#include "store_test_support.hpp"
#include "support/process.hpp"

using namespace emsnode::store;
using emsnode::store::testing::StoreFixture;
using emsnode::testing::eventually;
using emsnode::testing::Process;

namespace fs = std::filesystem;

TEST_CASE("a put killed in the middle leaves nothing visible and only garbage that is collected") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  const fs::path progress = fixture.dir() / "progress";
  Process child({STORE_PUT_CHILD, "--db", fixture.db_dir().file(), "--backend", backend, "--share",
                 fixture.share().string(), "--key", "big.iso", "--bytes", std::to_string(64 << 20),
                 "--node", "n1", "--epoch", "1", "--pause-after", std::to_string(6 << 20),
                 "--progress", progress.string()},
                fixture.dir().path());
  // The child has handed 6 MiB to its put and waits for more.
  REQUIRE(eventually([&] { return fs::exists(progress); }, std::chrono::seconds(30)));
  child.signal(SIGKILL);
  REQUIRE(child.wait(std::chrono::seconds(10)) == 128 + SIGKILL);

  CHECK_FALSE(fixture.store().stat("big.iso"));
  CHECK(fixture.store().list("").empty());
  CHECK_THROWS_AS(fixture.get("big.iso"), NotFound);
  // What the put had written so far is there, unreferenced.
  if (fixture.is_share()) {
    CHECK(fixture.temp_files() == 1);
    CHECK(fixture.objects() == 0);
  } else {
    CHECK(fixture.blobs() == 1);
    CHECK(fixture.count("SELECT complete FROM store_blobs") == 0);
    CHECK(fixture.chunks() == 4);
  }

  // The next active collects it, once it is older than the age a running put could have.
  CHECK(fixture.store().collect_garbage(std::chrono::hours(1)) == 0);
  CHECK(fixture.store().collect_garbage(std::chrono::milliseconds(0)) == 1);
  CHECK(fixture.temp_files() == 0);
  CHECK(fixture.blobs() == 0);
  CHECK(fixture.chunks() == 0);

  fixture.put("big.iso", "retried");
  CHECK(fixture.get("big.iso") == "retried");
}
