// plugin.toml: what a plugin says about itself, read before any of its code runs.
//
//   id = "mq"                      # [a-z][a-z0-9_-]{0,63}; the library is <id>.so beside this file
//   name = "Message queue"
//   version = "1.2.0"              # must equal the version compiled into the library
//   abi = "1.0"                    # EMSNODE_ABI_MAJOR.MINOR the plugin was built against
//   description = "MQTT 3.1.1 broker on TCP 8013"
//   requires = ["license"]         # optional: plugins started before this one
//   exports = ["queue.v1.2"]       # optional: shared APIs it hands over in create, at their minor
//   uses = ["license.v1"]          # optional: shared APIs it takes ("license.v1.2": minor >= 2)
//   [config.listen]                # optional: the schema of the node's [plugins.mq] section
//   type = "address"
//   default = "0.0.0.0:8013"
//   [commands.sessions]            # optional: a control command (ABI 1.3), [a-z][a-z0-9-]{0,63}
//   summary = "Count the persistent sessions"
//   changes_state = false          # default true: the admin token is required
//   active_only = false            # default true: runs on the active node only
//   [commands.sessions.args.client]  # its arguments: the keys and types of a [config.<key>]
//   type = "string"                  # (all but strings)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/schema.hpp"

namespace emsnode::host {

// A control command a plugin declares under [commands.<name>] (plugin_abi.h, CONTROL COMMANDS).
struct CommandSpec {
  std::string name;
  std::string summary;
  bool changes_state = true;  // needs the admin token
  bool active_only = true;    // runs only while the plugin is started on the active node
  config::Schema args;        // checked by config::validate, as a config section is
};

// A shared API a plugin exports: `name`.v`major` at `minor` ("license.v1.2").
struct ApiExport {
  std::string name;  // [a-z][a-z0-9_-]*, at most 64 bytes
  std::uint32_t major = 0;
  std::uint32_t minor = 0;

  std::string api() const;   // "license.v1": what api_export and api_use name
  std::string text() const;  // "license.v1.2"
};

// A shared API a plugin uses: `name`.v`major`, at `minor` or later.
struct ApiUse {
  std::string name;
  std::uint32_t major = 0;
  std::uint32_t minor = 0;   // the oldest minor it works with; 0 when not given
  bool minor_given = false;  // written "license.v1.2" rather than "license.v1"

  std::string api() const;   // "license.v1"
  std::string text() const;  // as written: "license.v1" or "license.v1.2"
};

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
  std::vector<ApiExport> exports;             // `exports`, as written
  std::vector<ApiUse> uses;                   // `uses`, as written
  config::Schema config_schema;               // for the node config's [plugins.<id>] section
  std::vector<CommandSpec> commands;          // in the order plugin.toml declares them
};

// The command `name` of `manifest`, or null.
const CommandSpec* find_command(const Manifest& manifest, std::string_view name);

// Whether `name` is a well-formed command or argument name: [a-z][a-z0-9-]{0,63}.
bool is_valid_command_name(std::string_view name);

// Reads and checks a plugin.toml: unknown keys, missing or malformed values and a malformed
// [config] schema are refused. Throws config::ConfigError at the offending FILE:LINE:COL.
Manifest read_manifest(const std::filesystem::path& file);

// Whether `id` is a well-formed plugin id: [a-z][a-z0-9_-]{0,63}.
bool is_valid_plugin_id(std::string_view id);

// The file name of the library of plugin `id` on this platform: "<id>.so" on Linux.
std::string library_file_name(std::string_view id);

}  // namespace emsnode::host
