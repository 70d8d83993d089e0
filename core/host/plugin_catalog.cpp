#include "host/plugin_catalog.hpp"

#include <algorithm>
#include <system_error>

#include "host/host_error.hpp"

namespace emsnode::host {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> plugin_folders(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw HostError(dir.string() + ": cannot list plugin directory: " + ec.message());
  std::vector<fs::path> folders;
  for (const fs::directory_entry& entry : it) {
    std::error_code entry_ec;
    if (entry.is_directory(entry_ec) && fs::exists(entry.path() / "plugin.toml", entry_ec)) {
      folders.push_back(entry.path());
    }
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

std::string describe(const std::vector<fs::path>& dirs) {
  if (dirs.empty()) return "no plugin directory";
  std::string text;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    text += (text.empty() ? "" : ", ") + dir.string();
    if (!fs::is_directory(dir, ec)) text += " (does not exist)";
  }
  return text;
}

}  // namespace

PluginCatalog PluginCatalog::scan(const std::vector<fs::path>& dirs) {
  PluginCatalog catalog;
  std::vector<fs::path> seen;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(dir, ec);
    if (std::find(seen.begin(), seen.end(), canonical) != seen.end()) continue;
    seen.push_back(canonical);
    catalog.dirs_.push_back(dir);
    if (!fs::is_directory(dir, ec)) continue;
    // An easy slip: naming the plugin's own folder instead of the folder that holds it.
    if (fs::exists(dir / "plugin.toml", ec)) catalog.own_folders_.push_back(dir);

    for (const fs::path& folder : plugin_folders(dir)) {
      Manifest manifest;
      try {
        manifest = read_manifest(folder / "plugin.toml");
      } catch (const config::ConfigError& e) {
        catalog.problems_.push_back({folder.filename().string(), e.what()});
        continue;
      }
      const auto first = std::find_if(catalog.manifests_.begin(), catalog.manifests_.end(),
                                      [&](const Manifest& m) { return m.id == manifest.id; });
      if (first != catalog.manifests_.end()) {
        catalog.problems_.push_back(
            {manifest.id, manifest.file.string() + ": duplicate plugin id \"" + manifest.id +
                              "\", already in " + first->file.string() +
                              " (remove one, or take one directory out of plugin_host.dirs)"});
        continue;
      }
      catalog.manifests_.push_back(std::move(manifest));
    }
  }
  return catalog;
}

const Manifest& PluginCatalog::find(std::string_view id) const {
  for (const CatalogProblem& problem : problems_) {
    if (problem.id == id) throw HostError(problem.message);
  }
  for (const Manifest& manifest : manifests_) {
    if (manifest.id == id) return manifest;
  }
  for (const fs::path& dir : own_folders_) {
    const fs::path parent = dir.lexically_normal().parent_path();
    throw HostError(
        (dir / "plugin.toml").string() + ": plugin \"" + std::string(id) +
        "\" is enabled but not found, and plugin_host.dirs names " + dir.string() +
        ", a plugin's own folder: name the folder that holds plugin folders, its parent " +
        parent.string() + ", instead");
  }
  throw HostError("plugin \"" + std::string(id) + "\" is enabled but not found: no plugin.toml " +
                  "with id \"" + std::string(id) + "\" in " + describe(dirs_) +
                  " (install it, or add its directory to plugin_host.dirs)");
}

}  // namespace emsnode::host
