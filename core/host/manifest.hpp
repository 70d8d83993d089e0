// plugin.toml: what a plugin says about itself, read before any of its code runs.
//
//   id = "mq"                      # [a-z][a-z0-9_-]{0,63}; the library is <id>.so beside this file
//   name = "Message queue"
//   version = "1.2.0"              # must equal the version compiled into the library
//   abi = "1.0"                    # EMSNODE_ABI_MAJOR.MINOR the plugin was built against
//   description = "MQTT 3.1.1 broker on TCP 8013"
//   requires = ["license"]         # optional: plugins started before this one
//   [config.listen]                # optional: the schema of the node's [plugins.mq] section
//   type = "address"
//   default = "0.0.0.0:8013"
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/schema.hpp"

namespace emsnode::host {

struct Manifest {
  std::filesystem::path file;     // the plugin.toml
  std::filesystem::path library;  // <id><platform suffix>, in the manifest's folder
  std::string id;
  std::string name;
  std::string version;
  std::uint16_t abi_major = 0;
  std::uint16_t abi_minor = 0;
  std::string description;
  std::vector<std::string> required_plugins;  // `requires`
  config::Schema config_schema;               // for the node config's [plugins.<id>] section
};

// Reads and checks a plugin.toml: unknown keys, missing or malformed values and a malformed
// [config] schema are refused. Throws config::ConfigError at the offending FILE:LINE:COL.
Manifest read_manifest(const std::filesystem::path& file);

// Whether `id` is a well-formed plugin id: [a-z][a-z0-9_-]{0,63}.
bool is_valid_plugin_id(std::string_view id);

// The file name of the library of plugin `id` on this platform: "<id>.so" on Linux.
std::string library_file_name(std::string_view id);

}  // namespace emsnode::host
