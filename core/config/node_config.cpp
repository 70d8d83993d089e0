#include "config/node_config.hpp"

#include <algorithm>
#include <cassert>
#include <utility>

#include "config/trusted_file.hpp"

namespace emsnode::config {
namespace {

// The components that log under their own name; a plugin's level is set in its own section.
constexpr std::string_view kComponents[] = {"main", "config", "host"};
constexpr std::string_view kLevelsExpected =
    "(expected one of: trace, debug, info, warning, error)";
constexpr std::size_t kMaxNodeIdLength = 64;
constexpr std::size_t kMaxPluginIdLength = 64;

bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_letter(char c) {
  return is_lower(c) || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool valid_plugin_id(std::string_view id) {
  return !id.empty() && id.size() <= kMaxPluginIdLength && is_lower(id.front()) &&
         std::all_of(id.begin(), id.end(),
                     [](char c) { return is_lower(c) || is_digit(c) || c == '_' || c == '-'; });
}

std::string check_level(const Value& value) {
  const auto& name = std::get<std::string>(value);
  if (log::parse_level(name)) return {};
  return quote(name) + " is not a log level " + std::string(kLevelsExpected);
}

std::string check_node_id(const Value& value) {
  const auto& id = std::get<std::string>(value);
  const bool valid =
      !id.empty() && id.size() <= kMaxNodeIdLength && std::all_of(id.begin(), id.end(), [](char c) {
        return is_letter(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
      });
  if (valid) return {};
  return quote(id) + " is not a node id (expected 1 to 64 letters, digits, '-', '_' or '.')";
}

// A host name, an IPv4 address or an IPv6 address, without a port: peers add their own.
std::string check_host(const Value& value) {
  const auto& host = std::get<std::string>(value);
  const bool name = std::all_of(host.begin(), host.end(), [](char c) {
    return is_letter(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
  });
  const bool ipv6 = std::count(host.begin(), host.end(), ':') >= 2 &&
                    std::all_of(host.begin(), host.end(),
                                [](char c) { return is_hex(c) || c == ':' || c == '.'; });
  if (!host.empty() && (name || ipv6)) return {};
  return quote(host) + " is not a host (expected a host name or an IP address, without a port)";
}

// Lists of paths (plugin dirs, hooks): an empty entry is a mistake, not "the config's folder".
std::string check_dirs(const Value& value) {
  const auto& dirs = std::get<std::vector<std::string>>(value);
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    if (dirs[i].empty()) {
      return "entry " + std::to_string(i) + " is empty (expected a path)";
    }
  }
  return {};
}

std::string check_database_backend(const Value& value) {
  const auto& backend = std::get<std::string>(value);
  if (backend == "sqlite" || backend == "postgresql") return {};
  return quote(backend) + " is not a database backend (expected \"sqlite\" or \"postgresql\")";
}

// The shape of a libpq connection string; libpq itself parses it when the node checks the config
// (node::check_config), which also refuses a password inside it.
std::string check_postgres_url(const Value& value) {
  const auto& url = std::get<std::string>(value);
  const bool is_url = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  if (is_url || url.find('=') != std::string::npos) return {};
  return quote(url) +
         " is not a PostgreSQL connection string (expected \"postgresql://user@host:port/dbname\" "
         "or keyword=value pairs such as \"host=db1 dbname=emsnode user=emsnode\")";
}

Field make_field(std::string name, Type type, std::string description,
                 std::optional<Value> default_value = std::nullopt) {
  Field field;
  field.name = std::move(name);
  field.type = type;
  field.description = std::move(description);
  field.default_value = std::move(default_value);
  return field;
}

Field level_field(std::string name, std::string description,
                  std::optional<Value> default_value = std::nullopt) {
  Field field =
      make_field(std::move(name), Type::string, std::move(description), std::move(default_value));
  field.check = check_level;
  return field;
}

Field bounded_duration(std::string name, std::string description, std::chrono::milliseconds value,
                       std::chrono::milliseconds min, std::chrono::milliseconds max) {
  Field field = make_field(std::move(name), Type::duration, std::move(description), value);
  field.min = static_cast<double>(min.count());
  field.max = static_cast<double>(max.count());
  return field;
}

Field hooks_field(std::string name, std::string description) {
  Field field = make_field(std::move(name), Type::strings,
                           "executables, run in order: " + std::move(description),
                           std::vector<std::string>{});
  field.check = check_dirs;
  return field;
}

Field host_names_field() {
  Field field = make_field("host_names", Type::strings,
                           "more names the Host header may carry on loopback (DNS rebinding)",
                           std::vector<std::string>{});
  field.check = [](const Value& value) -> std::string {
    for (const auto& name : std::get<std::vector<std::string>>(value)) {
      const std::string problem = check_host(name);
      if (!problem.empty()) return problem;
    }
    return {};
  };
  return field;
}

Field open_reads_field() {
  Field field = make_field("open_reads", Type::strings,
                           "off loopback, which of \"/metrics\" and \"/status\" need no token",
                           std::vector<std::string>{});
  field.check = [](const Value& value) -> std::string {
    for (const auto& path : std::get<std::vector<std::string>>(value)) {
      if (path != "/metrics" && path != "/status") {
        return quote(path) + " cannot be opened (expected \"/metrics\" or \"/status\")";
      }
    }
    return {};
  };
  return field;
}

// Whether only this host can reach `host`: localhost, 127.0.0.0/8 or ::1. A name other than
// localhost may resolve anywhere, so it is not.
bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
  if (host.substr(0, 4) != "127.") return false;
  int parts = 1;
  for (const char c : host.substr(4)) {
    if (c == '.') {
      ++parts;
    } else if (!is_digit(c)) {
      return false;
    }
  }
  return parts == 3;
}

// The endpoint's security rules that the config alone decides, refused at their key's position.
void check_admin(const AdminConfig& admin, const Values& values, const std::string& file) {
  const auto refuse = [&](const char* key, const std::string& problem) {
    if (const auto where = values.source(key)) throw ConfigError::at(*where, file, problem);
    throw ConfigError(file, 1, 1, problem);
  };
  if (admin.token && admin.token->reveal().size() < kMinAdminTokenLength) {
    refuse("admin.token", "[admin] token is shorter than " + std::to_string(kMinAdminTokenLength) +
                              " bytes: use a long random one, such as `openssl rand -hex 32`");
  }
  if (admin.tls_cert.empty() != admin.tls_key.empty()) {
    refuse(admin.tls_cert.empty() ? "admin.tls_key" : "admin.tls_cert",
           "[admin] tls_cert and tls_key go together: set both for HTTPS, or neither");
  }
  const std::string_view listen = admin.listen;
  std::string_view host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (is_loopback_host(host) || admin.insecure) return;
  std::string missing;
  if (admin.tls_cert.empty()) missing = "TLS (tls_cert, tls_key)";
  if (!admin.token) missing += std::string(missing.empty() ? "" : " and ") + "a token";
  if (missing.empty()) return;
  refuse("admin.listen", "[admin] listen " + quote(admin.listen) +
                             " is not a loopback address: it needs " + missing +
                             "; listen on 127.0.0.1, configure them, or set insecure = true");
}

Schema make_node_schema() {
  using namespace std::chrono_literals;
  Schema node;
  Field id = make_field("id", Type::string,
                        "the node's id, unique in the cluster: 1 to 64 letters, digits, '-', "
                        "'_' or '.'");
  id.required = true;
  id.check = check_node_id;
  Field address =
      make_field("address", Type::string, "how operators and the other nodes reach this one",
                 std::string("127.0.0.1"));
  address.check = check_host;
  node.fields = {std::move(id), std::move(address),
                 make_field("data_dir", Type::path, "node-local state", std::string("var")),
                 make_field("backup_dir", Type::path,
                            "this node's own backups, never shared with another node; "
                            "default <data_dir>/backup")};

  Schema log;
  Field format = make_field("format", Type::string, "text, or json (one object per line)",
                            std::string("text"));
  format.choices = {"text", "json"};
  log.fields = {
      std::move(format),
      level_field("level", "for components not named in [log.levels]", std::string("info")),
      make_field("console", Type::boolean, "to standard error", true),
      make_field("file", Type::path, "appended to; reopened on SIGHUP"),
      make_field("syslog", Type::boolean, "local syslog, facility daemon", false)};
  Schema levels;
  for (const auto& component : kComponents) {
    levels.fields.push_back(level_field(
        std::string(component), "the level of the " + std::string(component) + " component"));
  }
  log.tables.emplace("levels", std::move(levels));

  Schema database;
  Field db_backend = make_field("backend", Type::string,
                                "sqlite (single host) or postgresql (nodes on several hosts)",
                                std::string("sqlite"));
  db_backend.check = check_database_backend;
  Field url = make_field("url", Type::string,
                         "postgresql: libpq's connection string (postgresql://user@host:port/"
                         "dbname or keyword=value pairs), without the password");
  url.check = check_postgres_url;
  Field sslmode = make_field(
      "sslmode", Type::string,
      "postgresql: TLS to the server; default verify-full, or prefer for a server on loopback");
  sslmode.choices = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
  database.fields = {
      std::move(db_backend),
      make_field("path", Type::path, "sqlite: the database file; default <data_dir>/emsnode.db"),
      make_field("migrate", Type::boolean, "whether this node may create and upgrade the schema",
                 false),
      bounded_duration("busy_timeout",
                       "sqlite: how long a write waits for another node's transaction", 2s, 10ms,
                       60s),
      std::move(url),
      make_field("password", Type::secret,
                 "postgresql: the password (inline, \"env:NAME\", or password_file)"),
      bounded_duration("connect_timeout", "postgresql: how long connecting may take", 5s, 1s, 60s),
      bounded_duration("statement_timeout",
                       "postgresql: how long a statement may take, below [role] renew_deadline; "
                       "the client gives up on a silent server one second later",
                       1s, 100ms, 10min),
      std::move(sslmode),
      make_field("sslrootcert", Type::path,
                 "postgresql: the CA certificate file for verify-ca and verify-full"),
      make_field("insecure", Type::boolean,
                 "postgresql: accept sslmode disable, allow or prefer (no server "
                 "authentication) for a server that is not on loopback",
                 false)};

  Schema store;
  Field store_backend = make_field(
      "backend", Type::string,
      "share (a directory on a mounted network share) or blob (a table in the shared database)",
      std::string("share"));
  store_backend.check = [](const Value& value) -> std::string {
    const auto& backend = std::get<std::string>(value);
    if (backend == "share" || backend == "blob") return {};
    return quote(backend) + " is not a store backend (expected \"share\" or \"blob\")";
  };
  store.fields = {std::move(store_backend),
                  make_field("path", Type::path, "the share directory; default <data_dir>/share")};

  Schema plugin_host;
  Field dirs =
      make_field("dirs", Type::strings, "more plugin directories, searched after the built-in one",
                 std::vector<std::string>{});
  dirs.check = check_dirs;
  plugin_host.fields = {
      std::move(dirs),
      bounded_duration("start_timeout", "how long a plugin's start() may take", 10s, 100ms, 10min),
      bounded_duration("stop_deadline", "how long a plugin's stop() may take before it is faulted",
                       5s, 100ms, 10min),
      bounded_duration("restart_backoff",
                       "how long after a plugin fails the host first restarts it (then doubling, "
                       "with jitter)",
                       500ms, 10ms, 1min),
      bounded_duration("restart_backoff_max", "the longest wait between two restarts of a plugin",
                       30s, 10ms, 1h),
      bounded_duration("failure_grace",
                       "how long a required plugin may stay down before the active hands over to "
                       "a healthy passive",
                       5s, 100ms, 1h),
      bounded_duration("handover_holdoff",
                       "how long a node that handed over for a failed plugin stays out of the "
                       "competition while another node could serve",
                       1min, 0ms, 24h),
      bounded_duration("command_timeout",
                       "how long a plugin's control command may take before the caller is told "
                       "it timed out",
                       30s, 100ms, 1h),
      bounded_duration("slow_callback", "a plugin callback that runs longer than this is logged",
                       250ms, 1ms, 1min)};

  // Their invariants (renew_deadline against lease_ttl, ...) are checked by the role manager.
  Schema role;
  role.fields = {
      bounded_duration("lease_ttl", "how long a lease lives without renewal", 2s, 200ms, 60s),
      bounded_duration("renew_interval", "how often the active renews its lease", 400ms, 10ms, 30s),
      bounded_duration("renew_deadline",
                       "the active stops serving when it has not renewed for this long", 1200ms,
                       20ms, 60s),
      bounded_duration("poll_interval", "how often a passive checks whether the lease is free",
                       200ms, 10ms, 30s),
      hooks_field("pre_promote", "run before serving; a non-zero exit or a timeout vetoes"),
      hooks_field("post_promote", "run once serving"),
      hooks_field("pre_demote", "run before a planned demotion (never before self-fencing)"),
      hooks_field("post_demote", "run after serving stopped"),
      bounded_duration("hook_timeout", "how long each hook may run", 5s, 100ms, 10min)};

  Schema admin;
  admin.fields = {
      make_field("listen", Type::address,
                 "the admin endpoint (status, /healthz/active, /metrics, commands)",
                 std::string("127.0.0.1:8440")),
      make_field("token", Type::secret,
                 "bearer token, 16 bytes at least, for everything but /healthz/* (and /, /status, "
                 "/metrics on loopback); default: one made in <data_dir>/admin.token"),
      make_field("tls_cert", Type::path, "HTTPS: the certificate chain (PEM), with tls_key"),
      make_field("tls_key", Type::path, "HTTPS: the private key (PEM), with tls_cert"),
      make_field("tls_ca", Type::path,
                 "the CA certificates (PEM) the CLI verifies the endpoint against; default: the "
                 "system's"),
      make_field("insecure", Type::boolean,
                 "allow a non-loopback listen address without TLS and a token", false),
      host_names_field(),
      open_reads_field()};

  Schema root;
  root.tables.emplace("node", std::move(node));
  root.tables.emplace("role", std::move(role));
  root.tables.emplace("admin", std::move(admin));
  root.tables.emplace("log", std::move(log));
  root.tables.emplace("database", std::move(database));
  root.tables.emplace("store", std::move(store));
  root.tables.emplace("plugin_host", std::move(plugin_host));
  return root;
}

// The keys of a [plugins.<id>] section that the host reads itself.
const Schema& plugin_host_keys_schema() {
  static const Schema schema = [] {
    Schema s;
    s.fields = {make_field("enabled", Type::boolean, "whether the plugin is loaded", true),
                make_field("required", Type::boolean,
                           "whether the active hands over when the plugin stays down", true),
                level_field("log_level", "the level of the plugin's log records")};
    return s;
  }();
  return schema;
}

template <typename T>
const T& required_value(const Values& values, std::string_view key) {
  const T* value = values.get<T>(key);
  assert(value && "every key read here has a default or is required");
  return *value;
}

std::filesystem::path path_or(Values& values, const std::string& key,
                              const std::filesystem::path& fallback) {
  if (const auto* text = values.get<std::string>(key)) return *text;
  values.set(key, fallback.string());
  return fallback;
}

// Resolves a list of paths against the config's folder, and shows them resolved in `values`.
std::vector<std::filesystem::path> resolved_paths(Values& values, const std::string& key,
                                                  const std::filesystem::path& base_dir) {
  std::vector<std::filesystem::path> paths;
  std::vector<std::string> shown;
  for (const auto& entry : required_value<std::vector<std::string>>(values, key)) {
    paths.push_back(resolve_path(entry, base_dir));
    shown.push_back(paths.back().string());
  }
  values.set(key, std::move(shown), values.source(key));
  return paths;
}

// Hooks run with the node's power: one that another user could have written is refused where the
// config names it. (One that does not exist yet is reported when it is run.)
std::vector<std::filesystem::path> hook_paths(Values& values, const std::string& key,
                                              const Context& context) {
  auto paths = resolved_paths(values, key, context.base_dir);
  for (const auto& path : paths) {
    if (!std::filesystem::exists(path)) continue;
    if (const std::string reason = untrusted_reason(path); !reason.empty()) {
      if (const auto where = values.source(key))
        throw ConfigError::at(*where, context.file, reason);
      throw ConfigError(context.file, 1, 1, reason);
    }
  }
  return paths;
}

log::Level level_of(const std::string& name) {
  // Validation already refused any name parse_level does not know.
  return log::parse_level(name).value_or(log::Level::info);
}

std::vector<PluginSection> take_plugin_sections(toml::table& root, const Context& context,
                                                Values& values) {
  toml::node* node = root.get("plugins");
  if (!node) return {};
  toml::table* plugins = node->as_table();
  if (!plugins) {
    throw ConfigError::at(*node, context.file,
                          "plugins: expected a table of [plugins.<id>] sections, got " +
                              std::string(node_kind(*node)));
  }

  std::vector<std::pair<const toml::key*, toml::node*>> entries;
  for (auto&& [key, section] : *plugins) entries.emplace_back(&key, &section);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin < b.first->source().begin;
  });

  std::vector<PluginSection> sections;
  for (const auto& [key, section] : entries) {
    const std::string id(key->str());
    if (!valid_plugin_id(id)) {
      throw ConfigError::at(key->source(), context.file,
                            "[plugins] " + quote(id) +
                                " is not a plugin id (expected a lowercase letter, then up to 63 "
                                "lowercase letters, digits, '_' or '-')");
    }
    toml::table* table = section->as_table();
    if (!table) {
      throw ConfigError::at(
          *section, context.file,
          "[plugins] " + id + ": expected a table, got " + std::string(node_kind(*section)));
    }

    // Only `enabled` and `log_level` are the host's: the plugin's own keys pass untouched.
    Context host_keys_context{context.file, context.base_dir, {}, "plugins." + id};
    const auto& host_fields = plugin_host_keys_schema().fields;
    for (auto&& [name, value] : *table) {
      const std::string_view key_name = name.str();
      const bool host_key = std::any_of(host_fields.begin(), host_fields.end(),
                                        [key_name](const Field& f) { return f.name == key_name; });
      if (!host_key) host_keys_context.reserved_keys.emplace_back(key_name);
    }
    const Values host_keys = validate(*table, plugin_host_keys_schema(), host_keys_context);
    for (const auto& [name, value] : host_keys.all()) {
      values.set("plugins." + id + "." + name, value, host_keys.source(name));
    }

    PluginSection plugin;
    plugin.id = id;
    plugin.enabled = required_value<bool>(host_keys, "enabled");
    plugin.required = required_value<bool>(host_keys, "required");
    if (const auto* level = host_keys.get<std::string>("log_level")) {
      plugin.log_level = level_of(*level);
    }
    // Moved, not copied: toml++ copies drop the source positions the host reports errors at.
    plugin.settings = std::move(*table);
    for (const auto& field : host_fields) plugin.settings.erase(field.name);
    sections.push_back(std::move(plugin));
  }
  return sections;
}

NodeConfig from_document(toml::table root, const std::filesystem::path& file) {
  NodeConfig config;
  config.file = std::filesystem::absolute(file).lexically_normal();
  const Context context{file.string(), config.file.parent_path(), {"plugins"}, ""};
  config.values = validate(root, node_schema(), context);
  Values& values = config.values;

  config.node_id = required_value<std::string>(values, "node.id");
  config.address = required_value<std::string>(values, "node.address");
  config.data_dir = required_value<std::string>(values, "node.data_dir");
  config.backup_dir = path_or(values, "node.backup_dir", config.data_dir / "backup");

  config.log.format = required_value<std::string>(values, "log.format") == "json"
                          ? log::Format::json
                          : log::Format::text;
  config.log.level = level_of(required_value<std::string>(values, "log.level"));
  for (const auto& component : kComponents) {
    if (const auto* level = values.get<std::string>("log.levels." + std::string(component))) {
      config.log.levels.emplace(std::string(component), level_of(*level));
    }
  }
  config.log.console = required_value<bool>(values, "log.console");
  if (const auto* log_file = values.get<std::string>("log.file")) config.log.file = *log_file;
  config.log.syslog = required_value<bool>(values, "log.syslog");

  config.database.backend = required_value<std::string>(values, "database.backend");
  config.database.path = path_or(values, "database.path", config.data_dir / "emsnode.db");
  config.database.migrate = required_value<bool>(values, "database.migrate");

  config.store.backend = required_value<std::string>(values, "store.backend");
  config.store.path = path_or(values, "store.path", config.data_dir / "share");

  config.database.busy_timeout =
      required_value<std::chrono::milliseconds>(values, "database.busy_timeout");
  if (const auto* url = values.get<std::string>("database.url")) config.database.url = *url;
  if (const auto* password = values.get<Secret>("database.password")) {
    config.database.password = *password;
  }
  config.database.connect_timeout =
      required_value<std::chrono::milliseconds>(values, "database.connect_timeout");
  config.database.statement_timeout =
      required_value<std::chrono::milliseconds>(values, "database.statement_timeout");
  if (const auto* sslmode = values.get<std::string>("database.sslmode")) {
    config.database.sslmode = *sslmode;
  }
  config.database.insecure = required_value<bool>(values, "database.insecure");
  if (const auto* ca = values.get<std::string>("database.sslrootcert")) {
    config.database.sslrootcert = *ca;
  }
  if (config.database.backend == "postgresql" && config.database.url.empty()) {
    const std::string problem =
        "[database] backend = \"postgresql\" needs url (expected the server's connection string, "
        "such as url = \"postgresql://emsnode@db1:5432/emsnode\")";
    if (const auto where = values.source("database.backend")) {
      throw ConfigError::at(*where, context.file, problem);
    }
    throw ConfigError(context.file, 1, 1, problem);
  }

  config.plugin_host.dirs = resolved_paths(values, "plugin_host.dirs", context.base_dir);
  const auto duration = [&](const char* key) {
    return required_value<std::chrono::milliseconds>(values, key);
  };
  config.plugin_host.start_timeout = duration("plugin_host.start_timeout");
  config.plugin_host.stop_deadline = duration("plugin_host.stop_deadline");
  config.plugin_host.restart_backoff = duration("plugin_host.restart_backoff");
  config.plugin_host.restart_backoff_max = duration("plugin_host.restart_backoff_max");
  config.plugin_host.failure_grace = duration("plugin_host.failure_grace");
  config.plugin_host.handover_holdoff = duration("plugin_host.handover_holdoff");
  config.plugin_host.slow_callback = duration("plugin_host.slow_callback");
  config.plugin_host.command_timeout = duration("plugin_host.command_timeout");
  config.role.lease_ttl = duration("role.lease_ttl");
  config.role.renew_interval = duration("role.renew_interval");
  config.role.renew_deadline = duration("role.renew_deadline");
  config.role.poll_interval = duration("role.poll_interval");
  config.role.hook_timeout = duration("role.hook_timeout");
  config.role.pre_promote = hook_paths(values, "role.pre_promote", context);
  config.role.post_promote = hook_paths(values, "role.post_promote", context);
  config.role.pre_demote = hook_paths(values, "role.pre_demote", context);
  config.role.post_demote = hook_paths(values, "role.post_demote", context);

  config.admin.listen = required_value<std::string>(values, "admin.listen");
  if (const auto* token = values.get<Secret>("admin.token")) config.admin.token = *token;
  if (const auto* cert = values.get<std::string>("admin.tls_cert")) config.admin.tls_cert = *cert;
  if (const auto* key = values.get<std::string>("admin.tls_key")) config.admin.tls_key = *key;
  if (const auto* ca = values.get<std::string>("admin.tls_ca")) config.admin.tls_ca = *ca;
  config.admin.insecure = required_value<bool>(values, "admin.insecure");
  config.admin.host_names = required_value<std::vector<std::string>>(values, "admin.host_names");
  config.admin.open_reads = required_value<std::vector<std::string>>(values, "admin.open_reads");
  check_admin(config.admin, values, context.file);

  config.plugins = take_plugin_sections(root, context, values);
  return config;
}

}  // namespace

const Schema& node_schema() {
  static const Schema schema = make_node_schema();
  return schema;
}

NodeConfig load_node_config(const std::filesystem::path& file) {
  return from_document(parse_file(file), file);
}

NodeConfig parse_node_config(std::string_view text, const std::filesystem::path& file) {
  return from_document(parse_text(text, file.string()), file);
}

}  // namespace emsnode::config
