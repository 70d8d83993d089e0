#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "store/streaming.hpp"
#include "store_test_support.hpp"

using namespace emsnode::store;
using emsnode::store::testing::pattern;
using emsnode::store::testing::sha256_of;

TEST_CASE("content hashed beside the I/O has the SHA-256 of the whole, whatever its chunking") {
  const std::string content = pattern(3 * 65536 + 77, 5);
  const std::size_t chunk = GENERATE(std::size_t{1}, std::size_t{4096}, std::size_t{65536},
                                     std::size_t{3 * 65536 + 77}, std::size_t{1} << 20);
  const std::size_t depth = GENERATE(std::size_t{1}, std::size_t{4});
  HashedChunks chunks(chunk, depth);
  for (std::size_t done = 0; done < content.size();) {
    std::string& buffer = chunks.next();
    REQUIRE(buffer.size() == chunk);
    const std::size_t n = std::min(chunk, content.size() - done);
    std::memcpy(buffer.data(), content.data() + done, n);
    chunks.hash(n);
    done += n;
  }
  CHECK(chunks.hex() == sha256_of(content));
}

TEST_CASE("a buffer comes round again only once the hasher is done with it") {
  // Each chunk is overwritten as soon as next() hands its buffer back: had the hasher not been
  // done with it, the digest would include the overwriting bytes.
  const std::string content = pattern(64 * 4096, 9);
  HashedChunks chunks(4096, 2);
  for (std::size_t done = 0; done < content.size(); done += 4096) {
    std::string& buffer = chunks.next();
    std::memcpy(buffer.data(), content.data() + done, 4096);
    chunks.hash(4096);
  }
  std::string& reused = chunks.next();
  std::memset(reused.data(), 0, reused.size());
  CHECK(chunks.hex() == sha256_of(content));
}

TEST_CASE("views of the caller's bytes are hashed in the order they were queued") {
  const std::string first = pattern(100'000, 1);
  const std::string second = pattern(50'000, 2);
  BackgroundSha256 sha;
  const std::uint64_t one = sha.update(first.data(), first.size());
  const std::uint64_t two = sha.update(second.data(), second.size());
  CHECK(two == one + 1);
  sha.wait(two);
  CHECK(sha.hex() == sha256_of(first + second));
}

TEST_CASE("nothing queued hashes to the SHA-256 of no bytes") {
  BackgroundSha256 sha;
  CHECK(sha.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
