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

TEST_CASE("a manifest gives the shared APIs it exports and uses") {
  emsnode::testing::TempDir dir;
  const std::string text = replace(kValid, "abi = \"1.0\"", "abi = \"1.3\"") + "";
  const Manifest manifest = read_manifest(
      dir.write("mq/plugin.toml",
                replace(text, "requires =",
                        "exports = [\"queue.v2.1\", \"mq_admin-x.v1.0\"]\nuses = [\"license.v1\", "
                        "\"store.v3.4\"]\nrequires =")));
  REQUIRE(manifest.exports.size() == 2);
  CHECK(manifest.exports[0].text() == "queue.v2.1");
  CHECK(manifest.exports[0].api() == "queue.v2");
  CHECK(manifest.exports[1].name == "mq_admin-x");
  CHECK(manifest.exports[1].minor == 0);
  REQUIRE(manifest.uses.size() == 2);
  CHECK(manifest.uses[0].text() == "license.v1");
  CHECK(manifest.uses[0].minor == 0);
  CHECK_FALSE(manifest.uses[0].minor_given);
  CHECK(manifest.uses[1].text() == "store.v3.4");
  CHECK(manifest.uses[1].api() == "store.v3");
  CHECK(manifest.uses[1].minor == 4);
}

TEST_CASE("malformed exports and uses are refused at their entry") {
  emsnode::testing::TempDir dir;
  const std::string file = (dir / "mq/plugin.toml").string();
  const std::string text = replace(kValid, "abi = \"1.0\"", "abi = \"1.3\"");
  const auto with = [&](const std::string& lines) {
    return refusal(dir, replace(text, "requires =", lines + "\nrequires ="));
  };
  CHECK(with("exports = [\"queue.v1.0\", \"queue.v1\"]") ==
        file +
            ":6:26: exports \"queue.v1\", which is not <name>.v<major>.<minor> (e.g. "
            "\"license.v1.0\"; name: [a-z][a-z0-9_-]*)");
  CHECK(
      with("exports = [\"Queue.v1.0\"]").rfind(file + ":6:12: exports \"Queue.v1.0\", which", 0) ==
      0);
  CHECK(with("exports = [\"queue.v1.0\", \"queue.v1.2\"]") ==
        file + ":6:26: exports queue.v1 twice");
  CHECK(with("uses = [\"license\"]") ==
        file +
            ":6:9: uses \"license\", which is not <name>.v<major> or "
            "<name>.v<major>.<minor> (e.g. \"license.v1\"; name: [a-z][a-z0-9_-]*)");
  CHECK(with("uses = [\"license.v1.2.3\"]").rfind(file + ":6:9: uses \"license.v1.2.3\"", 0) == 0);
  CHECK(with("uses = [\"license.1\"]").rfind(file + ":6:9: uses \"license.1\"", 0) == 0);
  CHECK(with("uses = [\"license.v1\", \"license.v1.2\"]") == file + ":6:23: uses license.v1 twice");
  CHECK(with("exports = [\"queue.v1.0\"]\nuses = [\"queue.v1\"]") ==
        file + ":7:9: uses queue.v1, which it exports itself");
  CHECK(with("exports = \"queue.v1.0\"").rfind(file + ":6:", 0) == 0);
}

TEST_CASE("a manifest of an ABI before 1.3 may not export or use shared APIs") {
  emsnode::testing::TempDir dir;
  const std::string file = (dir / "mq/plugin.toml").string();
  CHECK(refusal(dir, replace(kValid, "requires =", "uses = [\"license.v1\"]\nrequires =")) ==
        file +
            ":6:8: uses needs abi \"1.3\" or later (shared APIs came with ABI 1.3); this "
            "manifest declares abi \"1.0\"");
}

}  // namespace emsnode::host
