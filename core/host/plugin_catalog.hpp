// Discovery: which plugins the search directories hold. Only manifests are read here; no plugin
// code runs. Each folder <dir>/<folder>/ with a plugin.toml is one candidate.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "host/manifest.hpp"

namespace emsnode::host {

// Something wrong with a candidate. Only a refusal when that plugin is wanted: a broken plugin
// nobody enabled must not keep the node from starting.
struct CatalogProblem {
  std::string id;       // the manifest's id, or the folder's name when the manifest is unreadable
  std::string message;  // one line naming the file(s) and the reason
};

class PluginCatalog {
 public:
  // Reads <dir>/*/plugin.toml for each dir in order (folders sorted by name). A dir that does
  // not exist is skipped; a dir listed twice is read once. Throws HostError when a dir exists
  // but cannot be listed.
  static PluginCatalog scan(const std::vector<std::filesystem::path>& dirs);

  // The manifest of plugin `id`. Throws HostError (naming the dirs searched, or a dir that is a
  // plugin's own folder and so names the wrong level) when no folder holds it, and the problem's
  // message when its manifest is unreadable or the id is found in two places.
  const Manifest& find(std::string_view id) const;

  // Readable manifests, one per id (the first found), in search order.
  const std::vector<Manifest>& manifests() const { return manifests_; }
  const std::vector<CatalogProblem>& problems() const { return problems_; }
  // The directories searched, in order, without repeats (including those that do not exist).
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }

 private:
  std::vector<std::filesystem::path> dirs_;
  std::vector<Manifest> manifests_;
  std::vector<CatalogProblem> problems_;
  std::vector<std::filesystem::path> own_folders_;  // dirs that hold a plugin.toml themselves
};

}  // namespace emsnode::host
