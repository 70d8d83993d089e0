#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "store/file_store.hpp"
#include "store_test_support.hpp"
#include "support/sanitizers.hpp"
#include "support/skip.hpp"

using namespace emsnode::store;
using emsnode::store::testing::GeneratedBuffer;
using emsnode::store::testing::HashingBuffer;
using emsnode::store::testing::StoreFixture;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

// The process's peak resident set (VmHWM), in KiB.
std::int64_t peak_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  FAIL("no VmHWM in /proc/self/status");
  return 0;
}

// Resets the peak to the current resident set (Linux 4.0+), so a measurement starts from now and
// not from whatever an earlier test in this process allocated.
bool reset_peak() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

using emsnode::testing::kSanitizer;
using emsnode::testing::skip_test;

std::string sha256_of_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> buffer(kMiB);
  Sha256 sha;
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    sha.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  return sha.hex();
}

}  // namespace

TEST_CASE("a 256 MiB file goes in and comes out with memory flat in its size") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  if (kSanitizer) {
    skip_test("built with a sanitizer, whose own memory the peak resident set would measure");
    return;
  }
  if (!reset_peak()) {
    skip_test("cannot reset the peak resident set (/proc/self/clear_refs)");
    return;
  }
  // The measurement sees growth: touching 64 MiB raises the peak by about as much.
  {
    const std::int64_t base = peak_kib();
    std::vector<char> probe(64 * kMiB, 1);
    REQUIRE(probe.back() == 1);
    REQUIRE(peak_kib() - base >= 60 * 1024);
  }
  REQUIRE(reset_peak());
  const std::int64_t base = peak_kib();

  // Generated, not read from a file: no page cache or buffer of the whole content anywhere.
  GeneratedBuffer source(256 * kMiB);
  std::istream in(&source);
  const FileInfo put = fixture.store().put("big.bin", in, fixture.writer());
  HashingBuffer sink;
  std::ostream out(&sink);
  const FileInfo got = fixture.store().get("big.bin", out);
  const std::int64_t grown_kib = peak_kib() - base;

  // The whole content went through, both ways.
  CHECK(put.size == 256 * kMiB);
  CHECK(put.sha256 == source.sha256());
  CHECK(sink.size() == 256 * kMiB);
  CHECK(sink.sha256() == put.sha256);
  CHECK(got.sha256 == put.sha256);
  INFO(backend << ": the peak grew by " << grown_kib << " KiB");
  CHECK(grown_kib < 16 * 1024);
}

// The paths a put_file() and a get_to_file() take (read(2) and write(2) on descriptors, a local
// file read within the blob backend's transactions) hold no more than those of streams.
TEST_CASE("a 1 GiB file goes from disk into the store and back with memory flat in its size") {
  const std::string backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  if (kSanitizer) {
    skip_test("built with a sanitizer, whose own memory the peak resident set would measure");
    return;
  }
  constexpr std::uint64_t kSize = 1024 * kMiB;
  const fs::path source = fixture.dir() / "source.bin";
  std::string source_sha256;
  {
    GeneratedBuffer generated(kSize, 11);
    std::istream in(&generated);
    std::ofstream out(source, std::ios::binary);
    out << in.rdbuf();
    REQUIRE(out);
    source_sha256 = generated.sha256();
  }
  REQUIRE(fs::file_size(source) == kSize);
  if (!reset_peak()) {
    skip_test("cannot reset the peak resident set (/proc/self/clear_refs)");
    return;
  }
  const std::int64_t base = peak_kib();

  const FileInfo put = fixture.store().put_file("big.bin", source.string(), fixture.writer());
  fs::remove(source);
  const fs::path target = fixture.dir() / "copy.bin";
  const FileInfo got = fixture.store().get_to_file("big.bin", target.string());
  const std::int64_t grown_kib = peak_kib() - base;

  CHECK(put.size == kSize);
  CHECK(put.sha256 == source_sha256);
  CHECK(got.sha256 == source_sha256);
  CHECK(fs::file_size(target) == kSize);
  CHECK(sha256_of_file(target) == source_sha256);
  if (!fixture.is_share()) CHECK(fixture.chunks() == 1024);
  INFO(backend << ": the peak grew by " << grown_kib << " KiB");
  CHECK(grown_kib < 16 * 1024);
}
