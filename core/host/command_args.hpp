// The arguments of a control command, as a caller sends them: a JSON object checked against the
// command's declaration in plugin.toml by the config's own validator, so that an argument is
// refused with the same words as a config key ("count: -1 is out of range (expected 0..10)").
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/schema.hpp"
#include "host/manifest.hpp"

namespace emsnode::host {

// An argument that is unknown, missing, of the wrong type or out of bounds, or a body that is not
// a JSON object. what() is one line: which argument, what is wrong, what is expected.
class CommandArgsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Checks `args` (a JSON object) against `command`'s arguments and returns their values with the
// defaults filled in. A relative path resolves against `base_dir`; a secret is taken as given
// (never read from the node's environment or files). Throws CommandArgsError.
config::Values check_command_args(const CommandSpec& command, const nlohmann::json& args,
                                  const std::filesystem::path& base_dir);
// The same for JSON text (a request's body): an empty text is no arguments.
config::Values parse_command_args(const CommandSpec& command, std::string_view json_text,
                                  const std::filesystem::path& base_dir);

// The declaration of `command` as JSON, for GET /plugins/<id>/commands and `emsnode help <id>`:
// {"name", "summary", "changes_state", "active_only", "args": [{"name", "type", "description",
// "required", "default", "min", "max", "choices"}]}, the optional keys only when set.
nlohmann::json command_to_json(const CommandSpec& command);

}  // namespace emsnode::host
