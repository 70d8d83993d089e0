// Loading a plugin library, with every check the host makes before trusting it. Each refusal
// is a HostError whose message is one line naming the file and the reason.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <boost/dll/shared_library.hpp>

#include "emsnode/plugin_abi.h"
#include "host/manifest.hpp"

namespace emsnode::host {

struct LoadedLibrary {
  Manifest manifest;
  // Shared with every thread that runs the plugin's code, so that an abandoned call keeps the
  // code mapped for as long as it runs.
  std::shared_ptr<boost::dll::shared_library> library;
  const emsnode_plugin_api* api = nullptr;  // static in the library
  std::string loaded_as;  // the name the loader knows it by: /proc/self/fd/N of the checked file
};

// Refuses a file that another account could have replaced: it or a folder above it writable by
// group or others, or owned by neither root nor the effective user running the node.
void check_file_trust(const std::filesystem::path& file);

// Refuses a manifest whose ABI this host cannot serve (another major, or a newer minor).
void check_manifest_abi(const Manifest& manifest);

// check_manifest_abi, check_file_trust on the manifest, then opens the library without following
// a link, judges the opened file as check_file_trust does and loads that same file,
// calls emsnode_plugin_entry and checks the table it returns: ABI, size, entry points, and id,
// version and abi against the manifest.
LoadedLibrary load_library(const Manifest& manifest);

// Keeps the library mapped until the process exits, whatever happens to its handles. For a
// plugin whose code may still be running on an abandoned thread. Returns false (nothing
// changed) when the platform cannot do it.
bool pin_library(const LoadedLibrary& loaded);

}  // namespace emsnode::host
