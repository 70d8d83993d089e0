// `emsnode <id> <command> [--arg value ...] --conf FILE` and `emsnode help [<id>]`: the plugins'
// control commands (ABI 1.3) on the command line. The declarations come from the plugins'
// manifests in the node's plugin directories, so arguments are checked here with the host's own
// rules before anything is sent; the node checks them again. An active_only command refused by
// a passive node is sent on to the active node that the refusal names.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace emsnode::cli {

// Runs `command` of plugin `plugin` with `args` (the words after the command: "--name value",
// "--name=value", "--flag") through the admin endpoint of the node configured in `conf`.
// Prints the JSON answer to `out` and returns 0; else prints one line to `err` and returns 1
// (refused or failed by the node) or 2 (unknown plugin, command or argument, a bad value).
int plugin_command_verb(const std::string& conf, const std::string& plugin,
                        const std::string& command, const std::vector<std::string>& args,
                        std::ostream& out, std::ostream& err);

// `emsnode help <plugin>`: its commands with their summaries and arguments. Returns 0, or 2
// when no plugin directory holds `plugin`.
int plugin_help(const std::optional<std::string>& conf, const std::string& plugin,
                std::ostream& out, std::ostream& err);

// The plugins that declare commands, one line each, for `emsnode help`; nothing when none does.
void list_plugins_with_commands(const std::optional<std::string>& conf, std::ostream& out);

}  // namespace emsnode::cli
