#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "store/file_store.hpp"
#include "store_test_support.hpp"

using Catch::Matchers::Contains;
using emsnode::store::check_key;
using emsnode::store::InvalidKey;
using emsnode::store::testing::StoreFixture;

TEST_CASE("keys that are relative paths of plain segments are accepted") {
  for (const std::string& key : std::vector<std::string>{
           "a", "policy.xml", "plugins/mq/retained/topic-1", "a/b/c.d", "..hidden/x", "x..y",
           "dir/.profile", "caf\xc3\xa9/\xe2\x82\xac", std::string(1024, 'k')}) {
    INFO(key);
    CHECK_NOTHROW(check_key(key));
  }
}

TEST_CASE("keys that escape or confuse a path are refused") {
  struct Case {
    std::string key;
    std::string why;
  };
  const Case cases[] = {
      {"", "empty"},
      {"../x", "\"..\" segment"},
      {"a/../b", "\"..\" segment"},
      {"a/..", "\"..\" segment"},
      {"/abs", "absolute"},
      {"a//b", "empty segment"},
      {"a/", "empty segment"},
      {"a/./b", "\".\" segment"},
      {".", "\".\" segment"},
      {"a\\b", "backslash"},
      {std::string("a\0b", 3), "NUL"},
      {"a\nb", "control character"},
      {"a\x7f", "control character"},
      {"a\xc2\x85", "control character"},  // U+0085, a C1 control
      {"bad\xff", "not valid UTF-8"},
      {"over\xc0\xaflong", "not valid UTF-8"},  // an overlong '/'
      {std::string(1025, 'k'), "1025 bytes"},
  };
  for (const Case& c : cases) {
    INFO("key of " << c.key.size() << " bytes, expected: " << c.why);
    CHECK_THROWS_AS(check_key(c.key), InvalidKey);
    CHECK_THROWS_WITH(check_key(c.key), Contains(c.why));
  }
}

TEST_CASE("a put with an invalid key is refused before anything is written") {
  auto backend = GENERATE(as<std::string>{}, "share", "blob");
  StoreFixture fixture(backend);
  CHECK_THROWS_AS(fixture.put("../escape", "x"), InvalidKey);
  CHECK_THROWS_AS(fixture.get("/etc/passwd"), InvalidKey);
  CHECK_THROWS_AS(fixture.store().remove("a//b", fixture.writer()), InvalidKey);
  CHECK(fixture.store().list("").empty());
  CHECK(fixture.temp_files() == 0);
  CHECK(fixture.objects() == 0);
  CHECK(fixture.blobs() == 0);
}
