// What the plugin host tests share: a sandbox whose plugin directory holds copies of just the
// test plugins a test needs, a real node.toml pointing at it, and a capture of the log.
#pragma once

#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/node_config.hpp"
#include "log/log.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace emsnode::host {

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The status of plugin `id` in `all`; throws when there is none.
template <typename Status>
const Status& status_of(const std::vector<Status>& all, const std::string& id) {
  for (const Status& status : all) {
    if (status.id == id) return status;
  }
  throw std::logic_error("no status for " + id);
}

}  // namespace emsnode::host

namespace emsnode::host::testing {

namespace fs = std::filesystem;
using emsnode::testing::read_file;

// Where the build puts the test plugins; never searched by a real node.
inline const fs::path kBuiltPlugins{EMSNODE_TEST_PLUGIN_DIR};

class Sandbox {
 public:
  Sandbox() { fs::create_directories(plugin_dir()); }

  const fs::path& root() const { return dir_.path(); }
  fs::path plugin_dir() const { return dir_ / "plugins"; }
  fs::path journal() const { return dir_ / "journal.txt"; }
  fs::path library(const std::string& id) const { return plugin_dir() / id / (id + ".so"); }
  fs::path manifest(const std::string& id) const { return plugin_dir() / id / "plugin.toml"; }

  // Copies the built test plugin `id` (library and plugin.toml) into `into`, by default the
  // sandbox's plugin directory. Returns the copy's folder.
  fs::path add(const std::string& id, const fs::path& into = {}) const {
    return add_from(kBuiltPlugins, id, into);
  }
  // As add, from the built plugins in `built` rather than the usual folder.
  fs::path add_from(const fs::path& built, const std::string& id, const fs::path& into = {}) const {
    const fs::path folder = (into.empty() ? plugin_dir() : into) / id;
    fs::create_directories(folder);
    fs::copy(built / id, folder,
             fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    return folder;
  }

  // Replaces the first `from` in the copied manifest of `id`.
  void edit_manifest(const std::string& id, const std::string& from, const std::string& to) const {
    std::string text = read_file(manifest(id));
    const auto at = text.find(from);
    if (at == std::string::npos) throw std::logic_error(from + " is not in " + id + "'s manifest");
    text.replace(at, from.size(), to);
    dir_.write(manifest(id).lexically_relative(root()), text);
  }

  // Searched after the sandbox's plugin directory.
  void also_search(const fs::path& dir) { extra_dirs_.push_back(dir); }

  // Writes node.toml (the sandbox's plugin directory, the given time limits, then `sections`:
  // the [plugins.<id>] tables) and loads it as the node does. The config lives as long as the
  // sandbox, so a PluginHost declared after the sandbox may use it.
  const config::NodeConfig& node_config(const std::string& sections,
                                        const std::string& start_timeout = "2s",
                                        const std::string& stop_deadline = "2s",
                                        const std::string& command_timeout = "") {
    std::string dirs = "\"" + plugin_dir().string() + "\"";
    for (const fs::path& dir : extra_dirs_) dirs += ", \"" + dir.string() + "\"";
    const fs::path file = dir_.write(
        "node.toml",
        "[node]\nid = \"node-a\"\ndata_dir = \"var\"\n\n[plugin_host]\ndirs = [" + dirs +
            "]\nstart_timeout = \"" + start_timeout + "\"\nstop_deadline = \"" + stop_deadline +
            "\"\n" +
            // Only when given: tests expect errors at fixed lines of this file.
            (command_timeout.empty() ? std::string()
                                     : "command_timeout = \"" + command_timeout + "\"\n") +
            "\n" + sections);
    config_.emplace(config::load_node_config(file));
    return *config_;
  }
  fs::path node_config_file() const { return dir_ / "node.toml"; }

  // Writes `text` to `name` in the sandbox; returns its path.
  fs::path dir_write(const std::string& name, const std::string& text) const {
    return dir_.write(name, text);
  }

  // `[plugins.<id>]` with journal = this sandbox's journal, then `extra` lines.
  std::string section(const std::string& id, const std::string& extra = "") const {
    return "[plugins." + id + "]\njournal = \"" + journal().string() + "\"\n" + extra + "\n";
  }

  std::vector<std::string> journal_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(read_file(journal()));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  emsnode::testing::TempDir dir_;
  std::vector<fs::path> extra_dirs_;
  std::optional<config::NodeConfig> config_;
};

// Sends every log record at `level` and above to a file while it lives.
class LogCapture {
 public:
  explicit LogCapture(fs::path file, log::Level level = log::Level::info) : file_(std::move(file)) {
    log::Settings settings;
    settings.console = false;
    settings.file = file_;
    settings.level = level;
    log::init(settings);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture() { log::init(log::Settings{}); }

  std::string text() const {
    log::flush();
    return read_file(file_);
  }

 private:
  fs::path file_;
};

}  // namespace emsnode::host::testing
