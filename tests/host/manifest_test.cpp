#include <catch2/catch.hpp>

#include <string>

#include "host/manifest.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::host {
namespace {

const std::string kValid =
    "id = \"mq\"\n"
    "name = \"Message queue\"\n"
    "version = \"1.2.0-rc.1\"\n"
    "abi = \"1.0\"\n"
    "description = \"MQTT broker\"\n"
    "requires = [\"license\", \"store\"]\n"
    "\n"
    "[config.listen]\n"
    "type = \"address\"\n"
    "default = \"0.0.0.0:8013\"\n";

// The error read_manifest throws for `text`, or "" when it accepts it.
std::string refusal(const emsnode::testing::TempDir& dir, const std::string& text) {
  const auto file = dir.write("mq/plugin.toml", text);
  try {
    read_manifest(file);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  return text.replace(text.find(from), from.size(), to);
}

}  // namespace

TEST_CASE("a manifest gives the plugin's facts, requirements, schema and library path") {
  emsnode::testing::TempDir dir;
  const Manifest manifest = read_manifest(dir.write("mq/plugin.toml", kValid));
  CHECK(manifest.id == "mq");
  CHECK(manifest.name == "Message queue");
  CHECK(manifest.version == "1.2.0-rc.1");
  CHECK(manifest.abi_major == 1);
  CHECK(manifest.abi_minor == 0);
  CHECK(manifest.description == "MQTT broker");
  CHECK(manifest.required_plugins == std::vector<std::string>{"license", "store"});
  REQUIRE(manifest.config_schema.fields.size() == 1);
  CHECK(manifest.config_schema.fields[0].name == "listen");
  CHECK(manifest.library == dir / "mq" / "mq.so");
}

TEST_CASE("requires and config are optional in a manifest") {
  emsnode::testing::TempDir dir;
  const std::string text = kValid.substr(0, kValid.find("requires"));
  const Manifest manifest = read_manifest(dir.write("mq/plugin.toml", text));
  CHECK(manifest.required_plugins.empty());
  CHECK(manifest.config_schema.fields.empty());
}

TEST_CASE("a manifest's unknown key is refused at its position") {
  emsnode::testing::TempDir dir;
  const std::string error = refusal(dir, "author = \"me\"\n" + kValid);
  CHECK(error.rfind((dir / "mq/plugin.toml").string() + ":1:1: unknown key \"author\"", 0) == 0);
}

TEST_CASE("a manifest without a required key is refused naming the key") {
  emsnode::testing::TempDir dir;
  const std::string error = refusal(dir, replace(kValid, "description = \"MQTT broker\"\n", ""));
  CHECK(error.rfind((dir / "mq/plugin.toml").string() + ":", 0) == 0);
  CHECK(error.find("description") != std::string::npos);
}

TEST_CASE("malformed manifest values are refused at their line") {
  emsnode::testing::TempDir dir;
  const std::string file = (dir / "mq/plugin.toml").string();
  CHECK(refusal(dir, replace(kValid, "\"mq\"", "\"MQ\"")) ==
        file + ":1:6: id \"MQ\" is not a plugin id ([a-z][a-z0-9_-]{0,63})");
  CHECK(refusal(dir, replace(kValid, "\"1.2.0-rc.1\"", "\"latest\"")) ==
        file + ":3:11: version \"latest\" is not a version such as 1.2.0 or 1.2.0-rc.1");
  CHECK(refusal(dir, replace(kValid, "\"1.0\"", "\"1\""))
            .rfind(file + ":4:7: abi \"1\" is not "
                          "MAJOR.MINOR",
                   0) == 0);
  CHECK(refusal(dir, replace(kValid, "\"store\"", "\"mq\"")) ==
        file + ":6:12: a plugin cannot require itself");
  CHECK(refusal(dir, replace(kValid, "\"store\"", "\"license\"")) ==
        file + ":6:12: requires \"license\" twice");
}

TEST_CASE("a malformed config schema in a manifest is refused at its position") {
  emsnode::testing::TempDir dir;
  const std::string error = refusal(dir, replace(kValid, "\"address\"", "\"colour\""));
  CHECK(error.rfind((dir / "mq/plugin.toml").string() + ":9:", 0) == 0);
}

TEST_CASE("plugin ids are lowercase letters, digits, '_' and '-', up to 64 characters") {
  CHECK(is_valid_plugin_id("mq"));
  CHECK(is_valid_plugin_id("license-sync_2"));
  CHECK(is_valid_plugin_id("a" + std::string(63, 'b')));
  CHECK_FALSE(is_valid_plugin_id("a" + std::string(64, 'b')));
  CHECK_FALSE(is_valid_plugin_id("2mq"));
  CHECK_FALSE(is_valid_plugin_id("-mq"));
  CHECK_FALSE(is_valid_plugin_id("mq.so"));
  CHECK_FALSE(is_valid_plugin_id(""));
}

}  // namespace emsnode::host
