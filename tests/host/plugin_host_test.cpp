// The host's refusals: each one line naming the file and the reason; the node does not start.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "host/plugin_host.hpp"
#include "host_test_support.hpp"
#include "support/skip.hpp"

namespace emsnode::host {
namespace {

namespace fs = std::filesystem;
using testing::LogCapture;
using testing::Sandbox;

// What load() refuses with, or "" when it loads.
std::string load_refusal(const config::NodeConfig& config) {
  PluginHost host(config);
  try {
    host.load();
  } catch (const HostError& e) {
    return e.what();
  }
  return "";
}

// Loads `id` alone (no config section keys) and returns the refusal.
std::string refusal_of(Sandbox& box, const std::string& id) {
  box.add(id);
  return load_refusal(box.node_config("[plugins." + id + "]\n"));
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

// This host's ABI, and the minor after it, which no plugin may be built for yet.
const std::string kHostAbi =
    std::to_string(EMSNODE_ABI_MAJOR) + "." + std::to_string(EMSNODE_ABI_MINOR);
const std::string kNewerAbi =
    std::to_string(EMSNODE_ABI_MAJOR) + "." + std::to_string(EMSNODE_ABI_MINOR + 1);

}  // namespace

TEST_CASE("a library without emsnode_plugin_entry is refused by name") {
  Sandbox box;
  CHECK(refusal_of(box, "t-no-entry") ==
        box.library("t-no-entry").string() +
            ": no entry point emsnode_plugin_entry (not an emsnode plugin, or the symbol is not "
            "exported: declare it with EMSNODE_PLUGIN_EXPORT)");
}

TEST_CASE("a library that cannot be loaded is refused with the loader's reason") {
  Sandbox box;
  box.add("t-healthy");
  std::ofstream(box.library("t-healthy"), std::ios::trunc)
      << "this is not a shared library, whatever its name says, and it is long enough\n";
  const std::string error = load_refusal(box.node_config("[plugins.t-healthy]\n"));
  CHECK(starts_with(error, box.library("t-healthy").string() + ": cannot load library: "));
  CHECK(contains(error, "invalid ELF header"));
}

TEST_CASE("an entry point that returns NULL is refused") {
  Sandbox box;
  CHECK(refusal_of(box, "t-entry-null") ==
        box.library("t-entry-null").string() +
            ": emsnode_plugin_entry returned NULL: the plugin declined to run on host ABI " +
            kHostAbi);
}

TEST_CASE("a library built for another ABI major is refused") {
  Sandbox box;
  CHECK(refusal_of(box, "t-abi-major") ==
        box.library("t-abi-major").string() + ": built for ABI 2.0, this host speaks ABI " +
            kHostAbi + ": a different major cannot work (rebuild the plugin with this host's SDK)");
}

TEST_CASE("a manifest declaring another ABI major is refused before the library is loaded") {
  Sandbox box;
  box.add("t-abi-major");
  box.edit_manifest("t-abi-major", "abi = \"1.0\"", "abi = \"2.0\"");
  // The library is garbage: only a refusal that never loads it names the manifest.
  std::ofstream(box.library("t-abi-major"), std::ios::trunc) << "not loaded\n";
  CHECK(load_refusal(box.node_config("[plugins.t-abi-major]\n")) ==
        box.manifest("t-abi-major").string() + ": built for ABI 2.0, this host speaks ABI " +
            kHostAbi + ": a different major cannot work (rebuild the plugin with this host's SDK)");
}

TEST_CASE("a library built for a newer ABI minor is refused") {
  Sandbox box;
  CHECK(refusal_of(box, "t-abi-minor") ==
        box.library("t-abi-minor").string() + ": built for ABI " + kNewerAbi +
            ", newer than this host's ABI " + kHostAbi +
            " (upgrade emsnode, or rebuild the plugin with this host's SDK)");
}

TEST_CASE("a manifest declaring a newer ABI minor is refused") {
  Sandbox box;
  box.add("t-healthy");
  box.edit_manifest("t-healthy", "abi = \"1.0\"", "abi = \"" + kNewerAbi + "\"");
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")) ==
        box.manifest("t-healthy").string() + ": built for ABI " + kNewerAbi +
            ", newer than this host's ABI " + kHostAbi +
            " (upgrade emsnode, or rebuild the plugin with this host's SDK)");
}

TEST_CASE("a library whose id differs from its manifest is refused with both ids") {
  Sandbox box;
  CHECK(refusal_of(box, "t-id-mismatch") ==
        box.library("t-id-mismatch").string() +
            ": id \"t-someone-else\" compiled into the library differs from id "
            "\"t-id-mismatch\" in " +
            box.manifest("t-id-mismatch").string() + " (install the plugin.toml built with it)");
}

TEST_CASE("a library whose version differs from its manifest is refused with both versions") {
  Sandbox box;
  CHECK(refusal_of(box, "t-version-mismatch") ==
        box.library("t-version-mismatch").string() +
            ": version \"1.1.0\" compiled into the library differs from version \"1.0.0\" in " +
            box.manifest("t-version-mismatch").string() +
            " (install the plugin.toml built with it)");
}

TEST_CASE("a plugin library writable by group or others is refused with its mode") {
  Sandbox box;
  box.add("t-healthy");
  REQUIRE(::chmod(box.library("t-healthy").c_str(), 0775) == 0);
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")) ==
        box.library("t-healthy").string() +
            ": writable by group or others (mode 0775); a file the node trusts (plugin, hook) "
            "must be writable by its owner only (chmod go-w)");
}

TEST_CASE("a manifest writable by others is refused with its mode") {
  Sandbox box;
  box.add("t-healthy");
  REQUIRE(::chmod(box.manifest("t-healthy").c_str(), 0646) == 0);
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")) ==
        box.manifest("t-healthy").string() +
            ": writable by group or others (mode 0646); a file the node trusts (plugin, hook) "
            "must be writable by its owner only (chmod go-w)");
}

TEST_CASE("a plugin library owned by another user is refused with its owner") {
  if (::geteuid() != 0) {
    emsnode::testing::skip_test("changing a file's owner needs root (CI runs the tests as root)");
    return;
  }
  Sandbox box;
  box.add("t-healthy");
  REQUIRE(::chown(box.library("t-healthy").c_str(), 65534, 65534) == 0);
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")) ==
        box.library("t-healthy").string() +
            ": owned by uid 65534, neither root nor the user running the node (uid 0); chown it "
            "to one of them");
}

TEST_CASE("the same plugin id in two directories is refused naming both manifests") {
  Sandbox box;
  box.add("t-healthy");
  box.add("t-healthy", box.root() / "more");
  box.also_search(box.root() / "more");
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")) ==
        (box.root() / "more" / "t-healthy" / "plugin.toml").string() +
            ": duplicate plugin id \"t-healthy\", already in " +
            box.manifest("t-healthy").string() +
            " (remove one, or take one directory out of plugin_host.dirs)");
}

TEST_CASE("a plugin directory that is a plugin's own folder is refused with its parent to name") {
  Sandbox box;
  const fs::path folder = box.add("t-healthy", box.root() / "elsewhere");
  box.also_search(folder);
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")) ==
        (folder / "plugin.toml").string() +
            ": plugin \"t-healthy\" is enabled but not found, and plugin_host.dirs names " +
            folder.string() +
            ", a plugin's own folder: name the folder that holds plugin folders, its parent " +
            (box.root() / "elsewhere").string() + ", instead");
}

TEST_CASE("the built-in plugin directory is searched first, then plugin_host.dirs in order") {
  Sandbox box;
  box.also_search(box.root() / "more");
  PluginHost host(box.node_config(""));
  const fs::path executable_dir = fs::read_symlink("/proc/self/exe").parent_path();
  CHECK(PluginHost::builtin_plugin_dir() ==
        executable_dir.parent_path() / "lib" / "emsnode" / "plugins");
  CHECK(host.search_dirs() == std::vector<fs::path>{PluginHost::builtin_plugin_dir(),
                                                    box.plugin_dir(), box.root() / "more"});
}

TEST_CASE("a plugin directory listed twice is searched once") {
  Sandbox box;
  box.add("t-healthy");
  box.also_search(box.plugin_dir() / ".." / "plugins");
  CHECK(load_refusal(box.node_config("[plugins.t-healthy]\n")).empty());
}

TEST_CASE("an enabled plugin that is not found is refused naming the directories searched") {
  Sandbox box;
  box.also_search(box.root() / "missing");
  const config::NodeConfig& config = box.node_config("[plugins.t-nowhere]\n");
  const std::string error = load_refusal(config);
  CHECK(starts_with(error,
                    "plugin \"t-nowhere\" is enabled but not found: no plugin.toml with id "
                    "\"t-nowhere\" in " +
                        PluginHost::builtin_plugin_dir().string()));
  CHECK(contains(error, ", " + box.plugin_dir().string() + ", " +
                            (box.root() / "missing").string() +
                            " (does not exist) (install it, "
                            "or add its directory to plugin_host.dirs)"));
}

TEST_CASE("an invalid plugin config section is refused at its line in the node config") {
  Sandbox box;
  box.add("t-healthy");
  const std::string error =
      load_refusal(box.node_config("[plugins.t-healthy]\nenabled = true\ncount = -1\n"));
  // node.toml: 3 lines of [node], a blank, 4 of [plugin_host], a blank, then the section.
  CHECK(starts_with(error, box.node_config_file().string() + ":12:9: "));
  CHECK(contains(error, "count"));
}

TEST_CASE("an unknown key in a plugin config section is refused at its position") {
  Sandbox box;
  box.add("t-healthy");
  const std::string error = load_refusal(box.node_config("[plugins.t-healthy]\ncolour = 1\n"));
  CHECK(starts_with(error, box.node_config_file().string() + ":11:1: "));
  CHECK(contains(error, "unknown key \"colour\""));
}

TEST_CASE("a requirement that is not enabled is refused naming the manifest") {
  Sandbox box;
  box.add("t-order-a");
  box.add("t-order-b");
  CHECK(load_refusal(box.node_config(box.section("t-order-b"))) ==
        box.manifest("t-order-b").string() +
            ": requires \"t-order-a\", which is not enabled in the node config (enable it with a "
            "[plugins.t-order-a] section)");
}

TEST_CASE("a dependency cycle is refused with the cycle") {
  Sandbox box;
  box.add("t-order-a");
  box.add("t-order-b");
  box.edit_manifest("t-order-a", "requires = []", "requires = [\"t-order-b\"]");
  CHECK(load_refusal(box.node_config(box.section("t-order-b") + box.section("t-order-a"))) ==
        box.manifest("t-order-b").string() +
            ": dependency cycle: t-order-b -> t-order-a -> t-order-b");
}

TEST_CASE("a plugin whose create fails refuses the node with the plugin's reason") {
  Sandbox box;
  box.add("t-create-fails");
  PluginHost host(box.node_config("[plugins.t-create-fails]\n"));
  host.load();
  CHECK_THROWS_WITH(host.create_all(),
                    box.library("t-create-fails").string() +
                        ": create failed: certificate /etc/emsnode/missing.pem does not exist");
  CHECK(host.status().at(0).state == PluginState::failed);
}

TEST_CASE("a broken plugin nobody enabled does not stop the node and is logged") {
  Sandbox box;
  LogCapture log(box.root() / "log.txt", log::Level::warning);
  box.add("t-order-a");
  box.add("t-healthy");
  box.edit_manifest("t-healthy", "name =", "colour = \"red\"\nname =");
  PluginHost host(box.node_config(box.section("t-order-a")));
  host.load();
  CHECK(host.status().size() == 1);
  CHECK(contains(log.text(), "plugin.ignored id=t-healthy reason=\"" +
                                 box.manifest("t-healthy").string() + ":2:1: unknown key"));
}

TEST_CASE("plugins found but not enabled are listed as available and not loaded") {
  Sandbox box;
  box.add("t-order-a");
  box.add("t-order-c");
  box.add("t-healthy");
  PluginHost host(
      box.node_config(box.section("t-order-a") + "[plugins.t-order-c]\nenabled = false\n"));
  host.load();
  const std::vector<PluginStatus> status = host.status();
  REQUIRE(status.size() == 1);
  CHECK(status[0].id == "t-order-a");
  CHECK(status[0].state == PluginState::loaded);
  CHECK(status[0].library == box.library("t-order-a"));

  std::vector<AvailablePlugin> available;
  for (const AvailablePlugin& plugin : host.available()) {
    if (plugin.manifest.parent_path().parent_path() == box.plugin_dir())
      available.push_back(plugin);
  }
  REQUIRE(available.size() == 2);
  CHECK(available[0].id == "t-healthy");
  CHECK(available[0].name == "Healthy");
  CHECK_FALSE(available[0].disabled);
  CHECK(available[1].id == "t-order-c");
  CHECK(available[1].disabled);
}

TEST_CASE("check reports every enabled plugin's outcome and starts none") {
  Sandbox box;
  box.add("t-healthy");
  box.add("t-create-fails");
  box.add("t-abi-major");
  PluginHost host(box.node_config(box.section("t-healthy") + "[plugins.t-create-fails]\n" +
                                  "[plugins.t-nowhere]\n[plugins.t-abi-major]\n"));
  const std::vector<CheckResult> results = host.check();
  REQUIRE(results.size() == 4);
  CHECK(results[0].id == "t-healthy");
  CHECK(results[0].ok);
  CHECK(results[0].version == "1.0.0");
  CHECK(results[0].library == box.library("t-healthy"));
  CHECK(results[1].id == "t-create-fails");
  CHECK_FALSE(results[1].ok);
  CHECK(results[1].error == box.library("t-create-fails").string() +
                                ": create failed: certificate /etc/emsnode/missing.pem does not "
                                "exist");
  CHECK(results[2].id == "t-nowhere");
  CHECK(starts_with(results[2].error, "plugin \"t-nowhere\" is enabled but not found"));
  CHECK(results[2].library.empty());
  CHECK(results[3].id == "t-abi-major");
  CHECK(starts_with(results[3].error, box.library("t-abi-major").string() + ": built for ABI 2.0"));

  const std::vector<std::string> journal = box.journal_lines();
  REQUIRE(journal.size() == 2);
  CHECK(starts_with(journal[0], "config "));
  CHECK(journal[1] == "destroy");
}

}  // namespace emsnode::host
