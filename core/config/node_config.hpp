// The node's own configuration (node.toml): what every section means, its defaults and limits.
// Plugin sections ([plugins.<id>]) are kept as written; the plugin host validates each against
// the schema in that plugin's plugin.toml.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config/schema.hpp"
#include "log/log.hpp"

namespace emsnode::config {

struct DatabaseConfig {
  std::string backend = "sqlite";  // "sqlite" or "postgresql"
  std::filesystem::path path;      // sqlite: the database file
  bool migrate = false;            // may this node create or upgrade the schema (seeds' ScriptDB=1)
  std::chrono::milliseconds busy_timeout{2000};  // sqlite: how long a write waits for another's
  // postgresql: libpq's connection string (URL or keyword=value, without a password), the
  // password, and the bounds of every call.
  std::string url;
  std::optional<Secret> password;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds statement_timeout{1000};  // below [role] renew_deadline
  // Unset: chosen by the server's address (node::postgres_sslmode): verify-full off loopback.
  std::optional<std::string> sslmode;
  std::filesystem::path sslrootcert;  // empty: libpq's default
  // Accepts a TLS mode that does not authenticate the server (disable, allow, prefer) for a
  // server off loopback.
  bool insecure = false;
};

// [role]: the lease timers (invariants checked by role::check_timers) and role-change hooks.
struct RoleConfig {
  std::chrono::milliseconds lease_ttl{2000};
  std::chrono::milliseconds renew_interval{400};
  std::chrono::milliseconds renew_deadline{1200};
  std::chrono::milliseconds poll_interval{200};
  std::vector<std::filesystem::path> pre_promote;  // executables, run in order
  std::vector<std::filesystem::path> post_promote;
  std::vector<std::filesystem::path> pre_demote;
  std::vector<std::filesystem::path> post_demote;
  std::chrono::milliseconds hook_timeout{5000};
};

// [admin]: the node's HTTP endpoint for status, health checks, metrics and operator commands.
// The shortest [admin] token accepted.
constexpr std::size_t kMinAdminTokenLength = 16;

// Everything but /healthz/* needs the token; on loopback /, /status and /metrics are open too.
struct AdminConfig {
  std::string listen = "127.0.0.1:8440";  // host:port; port 0 picks a free one (tests)
  // The bearer token, at least 16 bytes. None: the node makes one in <data_dir>/admin.token.
  std::optional<Secret> token;
  std::filesystem::path tls_cert;  // both set: HTTPS only
  std::filesystem::path tls_key;
  std::filesystem::path tls_ca;  // the CLI verifies the endpoint against it (empty: the system's)
  // Off loopback the endpoint needs TLS and a configured token unless this says it is on purpose.
  bool insecure = false;
  // More names that a request's Host header may carry on loopback (besides the listen address,
  // localhost, 127.0.0.1 and ::1): anything else is a browser fooled by DNS rebinding.
  std::vector<std::string> host_names;
  // Off loopback, these of "/metrics" and "/status" (with the page) need no token.
  std::vector<std::string> open_reads;
};

struct StoreConfig {
  std::string backend = "share";
  std::filesystem::path path;  // share: the mounted share directory
};

struct PluginHostConfig {
  std::vector<std::filesystem::path> dirs;  // searched after the built-in plugin directory
  std::chrono::milliseconds start_timeout{10000};
  std::chrono::milliseconds stop_deadline{5000};
  // Supervision (host/supervisor.hpp): a plugin that is down is restarted after restart_backoff,
  // doubling up to restart_backoff_max; one that stays down past failure_grace makes the active
  // hand over to a healthy passive, which then may not take the role back for handover_holdoff.
  std::chrono::milliseconds restart_backoff{500};
  std::chrono::milliseconds restart_backoff_max{30000};
  std::chrono::milliseconds failure_grace{5000};
  std::chrono::milliseconds handover_holdoff{60000};
  std::chrono::milliseconds slow_callback{250};  // a plugin callback longer than this is logged
  // A control command's handler past this is answered 504; its late answer is dropped.
  std::chrono::milliseconds command_timeout{30000};
};

struct PluginSection {
  std::string id;
  bool enabled = true;
  bool required = true;  // down past the grace: the active hands over (false: it only says so)
  std::optional<log::Level> log_level;
  // The section without the reserved keys `enabled` and `log_level`, moved out of the parsed
  // file so every node keeps its source position for the host's errors. toml++ drops positions
  // when a table is copied: pass sections by reference, move them, never copy them.
  toml::table settings;
};

struct NodeConfig {
  std::filesystem::path file;  // absolute path of the config file
  std::string node_id;
  std::string address;               // how operators and peers reach this node
  std::filesystem::path data_dir;    // node-local state
  std::filesystem::path backup_dir;  // this node's own backups; never shared with another node
  log::Settings log;
  DatabaseConfig database;
  StoreConfig store;
  PluginHostConfig plugin_host;
  RoleConfig role;
  AdminConfig admin;
  std::vector<PluginSection> plugins;  // in file order
  Values values;                       // everything validated, for `emsnode check` to print
};

// The schema of node.toml (without the plugin sections).
const Schema& node_schema();

// Loads and validates a node config. Relative paths resolve against the file's folder.
// Throws ConfigError.
NodeConfig load_node_config(const std::filesystem::path& file);
NodeConfig parse_node_config(std::string_view text, const std::filesystem::path& file);

}  // namespace emsnode::config
