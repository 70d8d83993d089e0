// The node runtime: wires the shared database, the node registry, the plugin host, the role
// manager and the admin endpoint from a validated config; serves until SIGTERM or SIGINT; and
// takes everything down in reverse order, handing the lease over on the way out.
#pragma once

#include <string>

#include "config/node_config.hpp"

namespace emsnode::node {

// The log settings of a node: the [log] section plus each plugin's `log_level`.
log::Settings log_settings(const config::NodeConfig& config);

// Checks what spans several keys: the [role] timer invariants and, on PostgreSQL, TLS that
// authenticates a server off loopback (unless [database] insecure) and statement_timeout below
// renew_deadline. Throws config::ConfigError at the offending key of the config file.
void check_config(const config::NodeConfig& config);

// The sslmode of the node's PostgreSQL connections: [database] sslmode, or when it is not set
// verify-full for a server off loopback and prefer on loopback. Throws std::invalid_argument for
// a url that libpq cannot parse.
std::string postgres_sslmode(const config::DatabaseConfig& database);

// Runs the node until it is asked to stop. Returns the process exit status: 0 after a clean stop.
// Throws config::ConfigError, host::HostError and db::DbError (a refused start: another node with
// this id or backup dir, a database that cannot be used) before anything serves.
int run(const config::NodeConfig& config, std::string_view version);

}  // namespace emsnode::node
