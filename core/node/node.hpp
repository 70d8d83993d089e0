// The node runtime: brings up logging and the plugin host from a validated config, serves until
// SIGTERM or SIGINT, and takes everything down in reverse order.
#pragma once

#include "config/node_config.hpp"

namespace emsnode::node {

// The log settings of a node: the [log] section plus each plugin's `log_level`.
log::Settings log_settings(const config::NodeConfig& config);

// Runs the node until it is asked to stop. Returns the process exit status: 0 after a clean stop.
// Throws config::ConfigError and host::HostError for refusals found before anything started.
int run(const config::NodeConfig& config, std::string_view version);

}  // namespace emsnode::node
