#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "db/settings.hpp"
#include "db_test_support.hpp"

using namespace emsnode::db;
using Catch::Matchers::Contains;
using emsnode::db::testing::DbDir;
using emsnode::db::testing::set_lease;

TEST_CASE("a setting written by the lease holder is read by another node") {
  DbDir dir;
  auto active = dir.open_migrated();
  set_lease(*active, "n1", 7, 10'000);
  const std::int64_t before = active->now_ms();
  Settings(*active).set("public.fqdn", "ems.example.com", "n1", 7);

  auto passive_db = dir.open();
  Settings passive(*passive_db);
  CHECK(passive.get("public.fqdn") == "ems.example.com");
  CHECK_FALSE(passive.get("remote_access"));
  const auto all = passive.list();
  REQUIRE(all.size() == 1);
  CHECK(all[0].key == "public.fqdn");
  CHECK(all[0].value == "ems.example.com");
  CHECK(all[0].updated_by == "n1");
  CHECK(all[0].epoch == 7);
  CHECK(all[0].updated_at_ms >= before);
}

TEST_CASE("setting a key again replaces its value") {
  DbDir dir;
  auto db = dir.open_migrated();
  set_lease(*db, "n1", 7, 10'000);
  Settings settings(*db);
  settings.set("remote_access", "on", "n1", 7);
  settings.set("remote_access", "off", "n1", 7);
  settings.set("a.first", "1", "n1", 7);
  CHECK(settings.get("remote_access") == "off");
  const auto all = settings.list();
  REQUIRE(all.size() == 2);
  CHECK(all[0].key == "a.first");
  CHECK(all[1].key == "remote_access");
}

TEST_CASE("a setting written by a node that does not hold the lease fails and changes nothing") {
  DbDir dir;
  auto db = dir.open_migrated();
  set_lease(*db, "n1", 7, 10'000);
  Settings settings(*db);
  settings.set("public.fqdn", "ems.example.com", "n1", 7);
  CHECK_THROWS_AS(settings.set("public.fqdn", "evil.example.com", "n2", 7), FencedError);
  CHECK_THROWS_AS(settings.set("public.fqdn", "stale.example.com", "n1", 6), FencedError);
  CHECK(settings.get("public.fqdn") == "ems.example.com");
}

TEST_CASE("a malformed setting key is refused with the rule") {
  DbDir dir;
  auto db = dir.open_migrated();
  set_lease(*db, "n1", 1, 10'000);
  Settings settings(*db);
  for (const std::string& key :
       std::vector<std::string>{"", "Upper", "1st", "_x", "with space", "slash/no",
                                "\xc3\xa9t\xc3\xa9", std::string(129, 'a')}) {
    INFO("key \"" << key << "\"");
    CHECK_THROWS_AS(settings.set(key, "v", "n1", 1), std::invalid_argument);
    CHECK_THAT(check_setting_key(key), Contains("a setting key is a lowercase letter followed by "
                                                "up to 127 of a-z, 0-9, '_', '.', '-'"));
  }
  for (const std::string& key :
       std::vector<std::string>{"a", "remote_access.enabled-2", std::string(128, 'z')}) {
    INFO("key \"" << key << "\"");
    CHECK(check_setting_key(key).empty());
    settings.set(key, "v", "n1", 1);
  }
  CHECK(settings.list().size() == 3);
}

TEST_CASE("a setting value larger than 64 KiB is refused") {
  DbDir dir;
  auto db = dir.open_migrated();
  set_lease(*db, "n1", 1, 10'000);
  Settings settings(*db);
  settings.set("big", std::string(Settings::kMaxValueBytes, 'v'), "n1", 1);
  CHECK(settings.get("big")->size() == Settings::kMaxValueBytes);
  CHECK_THROWS_WITH(settings.set("big", std::string(Settings::kMaxValueBytes + 1, 'v'), "n1", 1),
                    Contains("65537 bytes; at most 65536 (64 KiB)"));
  CHECK(settings.get("big")->size() == Settings::kMaxValueBytes);
}

TEST_CASE("settings are listed in byte order of their keys on every backend") {
  // Natural-language collations ignore punctuation and fold case at first; the list must not
  // depend on the database's locale.
  DbDir dir;
  auto db = dir.open_migrated();
  set_lease(*db, "n1", 7, 10'000);
  Settings settings(*db);
  for (const char* key : {"a_b", "ab", "a-c", "a.d", "a0"}) settings.set(key, "v", "n1", 7);
  std::vector<std::string> keys;
  for (const auto& setting : settings.list()) keys.push_back(setting.key);
  CHECK(keys == std::vector<std::string>{"a-c", "a.d", "a0", "a_b", "ab"});
}
