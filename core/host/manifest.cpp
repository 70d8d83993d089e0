#include "host/manifest.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <regex>
#include <set>
#include <utility>

#include <boost/dll/shared_library.hpp>

namespace emsnode::host {
namespace {

using config::ConfigError;
using config::Type;

config::Field field(std::string name, Type type, std::string description, bool required) {
  config::Field f;
  f.name = std::move(name);
  f.type = type;
  f.description = std::move(description);
  f.required = required;
  return f;
}

// The top-level keys of plugin.toml. `config` is reserved: it is a schema, read by
// schema_from_toml rather than validated as a value.
const config::Schema& manifest_schema() {
  static const config::Schema schema = [] {
    config::Schema s;
    s.fields.push_back(field("id", Type::string, "the plugin id, [a-z][a-z0-9_-]{0,63}", true));
    s.fields.push_back(field("name", Type::string, "a human-readable name", true));
    s.fields.push_back(field("version", Type::string, "the plugin version, e.g. 1.2.0", true));
    s.fields.push_back(field("abi", Type::string, "the ABI built against, MAJOR.MINOR", true));
    s.fields.push_back(field("description", Type::string, "one line on what it does", true));
    config::Field requires_field =
        field("requires", Type::strings, "ids of plugins started before this one", false);
    requires_field.default_value = config::Value{std::vector<std::string>{}};
    s.fields.push_back(std::move(requires_field));
    config::Field exports_field = field(
        "exports", Type::strings, "shared APIs it exports, \"<name>.v<major>.<minor>\"", false);
    exports_field.default_value = config::Value{std::vector<std::string>{}};
    s.fields.push_back(std::move(exports_field));
    config::Field uses_field =
        field("uses", Type::strings, "shared APIs it uses, \"<name>.v<major>[.<minor>]\"", false);
    uses_field.default_value = config::Value{std::vector<std::string>{}};
    s.fields.push_back(std::move(uses_field));
    return s;
  }();
  return schema;
}

[[noreturn]] void refuse(const config::Values& values, std::string_view key,
                         const std::filesystem::path& file, const std::string& message) {
  if (const auto where = values.source(key)) {
    throw ConfigError(file.string(), where->begin.line, where->begin.column, message);
  }
  throw ConfigError(file.string(), 1, 1, message);
}

const std::string& required_string(const config::Values& values, std::string_view key,
                                   const std::filesystem::path& file) {
  const std::string* text = values.get<std::string>(key);
  // validate() guarantees presence and type of required fields; this guards the contract.
  if (text == nullptr) refuse(values, key, file, std::string(key) + " is required (a string)");
  if (text->empty()) refuse(values, key, file, std::string(key) + " must not be empty");
  return *text;
}

std::pair<std::uint16_t, std::uint16_t> parse_abi(const config::Values& values,
                                                  const std::filesystem::path& file) {
  static const std::regex pattern(R"(([0-9]{1,5})\.([0-9]{1,5}))");
  const std::string& text = required_string(values, "abi", file);
  std::smatch match;
  const auto limit = std::numeric_limits<std::uint16_t>::max();
  if (std::regex_match(text, match, pattern)) {
    const unsigned long major = std::stoul(match[1].str());
    const unsigned long minor = std::stoul(match[2].str());
    if (major <= limit && minor <= limit) {
      return {static_cast<std::uint16_t>(major), static_cast<std::uint16_t>(minor)};
    }
  }
  refuse(values, "abi", file,
         "abi \"" + text +
             "\" is not MAJOR.MINOR (the EMSNODE_ABI_MAJOR.EMSNODE_ABI_MINOR of "
             "the SDK the plugin was built with, e.g. \"1.0\")");
}

// The keys of one [commands.<name>] table; `args` is reserved: a schema, read by
// schema_from_toml.
const config::Schema& command_schema() {
  static const config::Schema schema = [] {
    config::Schema s;
    s.fields.push_back(field("summary", Type::string, "one line on what the command does", true));
    config::Field changes_state =
        field("changes_state", Type::boolean, "whether the admin token is required", false);
    changes_state.default_value = config::Value{true};
    s.fields.push_back(std::move(changes_state));
    config::Field active_only =
        field("active_only", Type::boolean, "whether it runs on the active node only", false);
    active_only.default_value = config::Value{true};
    s.fields.push_back(std::move(active_only));
    return s;
  }();
  return schema;
}

constexpr std::string_view kNamePattern = "[a-z][a-z0-9-]{0,63}";

// The keys of `table` in the order the author wrote them.
std::vector<std::pair<const toml::key*, const toml::node*>> in_written_order(
    const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin < b.first->source().begin;
  });
  return entries;
}

CommandSpec read_command(const toml::key& key, const toml::node& node,
                         const config::Context& manifest_context) {
  const std::string& file = manifest_context.file;
  const std::string name(key.str());
  const std::string label = "[commands." + name + "]";
  if (!is_valid_command_name(name)) {
    throw ConfigError::at(key.source(), file,
                          "command " + config::quote(name) + " is not a command name (" +
                              std::string(kNamePattern) + ")");
  }
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    throw ConfigError::at(node, file,
                          "commands." + name +
                              ": expected a table (summary, changes_state, "
                              "active_only, args), got " +
                              std::string(config::node_kind(node)));
  }
  config::Context context = manifest_context;
  context.table = "commands." + name;
  context.reserved_keys = {"args"};
  const config::Values values = config::validate(*table, command_schema(), context);

  CommandSpec command;
  command.name = name;
  command.summary = *values.get<std::string>("summary");
  if (command.summary.empty()) {
    throw ConfigError::at(*table->get("summary"), file, label + " summary: must not be empty");
  }
  command.changes_state = *values.get<bool>("changes_state");
  command.active_only = *values.get<bool>("active_only");

  if (const toml::node* args = table->get("args")) {
    const toml::table* args_table = args->as_table();
    if (args_table == nullptr) {
      throw ConfigError::at(*args, file,
                            "commands." + name + ".args: expected a table, one [commands." + name +
                                ".args.<arg>] table per argument, got " +
                                std::string(config::node_kind(*args)));
    }
    for (const auto& [arg_key, arg_node] : in_written_order(*args_table)) {
      if (!is_valid_command_name(arg_key->str())) {
        throw ConfigError::at(arg_key->source(), file,
                              "argument " + config::quote(arg_key->str()) + " of " + label +
                                  " is not an argument name (" + std::string(kNamePattern) + ")");
      }
    }
    config::Context args_context = manifest_context;
    args_context.table = "commands." + name + ".args";
    command.args = config::schema_from_toml(*args_table, args_context);
    for (const config::Field& arg : command.args.fields) {
      if (arg.type == Type::strings) {
        throw ConfigError::at(*args_table->get(arg.name), file,
                              "[commands." + name + ".args." + arg.name +
                                  "] type: strings is not an argument type (expected one of: "
                                  "string, integer, float, boolean, duration, secret, path, "
                                  "address)");
      }
    }
  }
  return command;
}

std::vector<CommandSpec> read_commands(const toml::node& node, const config::Context& context) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    throw ConfigError::at(node, context.file,
                          "commands must be a table: one [commands.<name>] table per command");
  }
  std::vector<CommandSpec> commands;
  for (const auto& [key, command] : in_written_order(*table)) {
    commands.push_back(read_command(*key, *command, context));
  }
  return commands;
}

// One parsed entry of `exports` or `uses`: "<name>.v<major>" with an optional ".<minor>".
struct ApiName {
  std::string name;
  std::uint32_t major = 0;
  std::optional<std::uint32_t> minor;
};

std::optional<ApiName> parse_api_name(const std::string& text) {
  static const std::regex pattern(R"(([a-z][a-z0-9_-]{0,63})\.v([0-9]{1,9})(\.([0-9]{1,9}))?)");
  std::smatch match;
  if (!std::regex_match(text, match, pattern)) return std::nullopt;
  ApiName api;
  api.name = match[1].str();
  api.major = static_cast<std::uint32_t>(std::stoul(match[2].str()));
  if (match[4].matched) api.minor = static_cast<std::uint32_t>(std::stoul(match[4].str()));
  return api;
}

// The entries of the string array `key`, each with its own node so that a refusal points at the
// entry rather than at the array.
std::vector<std::pair<std::string, const toml::node*>> entries(const toml::table& table,
                                                               std::string_view key) {
  std::vector<std::pair<std::string, const toml::node*>> result;
  const toml::array* array = table[key].as_array();
  if (array == nullptr) return result;  // validate() accepted it: it is absent
  for (const toml::node& node : *array) {
    if (const auto* text = node.as_string()) result.emplace_back(text->get(), &node);
  }
  return result;
}

void read_exports(const toml::table& table, const std::filesystem::path& file, Manifest& manifest) {
  std::set<std::string, std::less<>> seen;
  for (const auto& [text, node] : entries(table, "exports")) {
    const std::optional<ApiName> api = parse_api_name(text);
    if (!api || !api->minor) {
      throw ConfigError::at(*node, file.string(),
                            "exports \"" + text +
                                "\", which is not <name>.v<major>.<minor> (e.g. \"license.v1.0\"; "
                                "name: [a-z][a-z0-9_-]*)");
    }
    ApiExport entry{api->name, api->major, *api->minor};
    if (!seen.insert(entry.api()).second) {
      throw ConfigError::at(*node, file.string(), "exports " + entry.api() + " twice");
    }
    manifest.exports.push_back(std::move(entry));
  }
}

void read_uses(const toml::table& table, const std::filesystem::path& file, Manifest& manifest) {
  std::set<std::string, std::less<>> seen;
  for (const auto& [text, node] : entries(table, "uses")) {
    const std::optional<ApiName> api = parse_api_name(text);
    if (!api) {
      throw ConfigError::at(*node, file.string(),
                            "uses \"" + text +
                                "\", which is not <name>.v<major> or <name>.v<major>.<minor> (e.g. "
                                "\"license.v1\"; name: [a-z][a-z0-9_-]*)");
    }
    ApiUse entry{api->name, api->major, api->minor.value_or(0), api->minor.has_value()};
    if (!seen.insert(entry.api()).second) {
      throw ConfigError::at(*node, file.string(), "uses " + entry.api() + " twice");
    }
    const bool own = std::any_of(manifest.exports.begin(), manifest.exports.end(),
                                 [&](const ApiExport& e) { return e.api() == entry.api(); });
    if (own) {
      throw ConfigError::at(*node, file.string(),
                            "uses " + entry.api() + ", which it exports itself");
    }
    manifest.uses.push_back(std::move(entry));
  }
}

}  // namespace

bool is_valid_command_name(std::string_view name) {
  static const std::regex pattern{std::string(kNamePattern)};
  return std::regex_match(name.begin(), name.end(), pattern);
}

const CommandSpec* find_command(const Manifest& manifest, std::string_view name) {
  for (const CommandSpec& command : manifest.commands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::string ApiExport::api() const {
  return name + ".v" + std::to_string(major);
}

std::string ApiExport::text() const {
  return api() + "." + std::to_string(minor);
}

std::string ApiUse::api() const {
  return name + ".v" + std::to_string(major);
}

std::string ApiUse::text() const {
  return minor_given ? api() + "." + std::to_string(minor) : api();
}

bool is_valid_plugin_id(std::string_view id) {
  static const std::regex pattern("[a-z][a-z0-9_-]{0,63}");
  return std::regex_match(id.begin(), id.end(), pattern);
}

std::string library_file_name(std::string_view id) {
  return std::string(id) + boost::dll::shared_library::suffix().string();
}

Manifest read_manifest(const std::filesystem::path& file) {
  const toml::table table = config::parse_file(file);
  config::Context context;
  context.file = file.string();
  context.base_dir = file.parent_path();
  context.reserved_keys = {"config", "commands"};
  const config::Values values = config::validate(table, manifest_schema(), context);

  Manifest manifest;
  manifest.file = file;
  manifest.id = required_string(values, "id", file);
  if (!is_valid_plugin_id(manifest.id)) {
    refuse(values, "id", file,
           "id \"" + manifest.id + "\" is not a plugin id ([a-z][a-z0-9_-]{0,63})");
  }
  manifest.name = required_string(values, "name", file);
  manifest.version = required_string(values, "version", file);
  static const std::regex version_pattern(R"([0-9]+\.[0-9]+(\.[0-9]+)?([-+][0-9A-Za-z.+-]+)?)");
  if (!std::regex_match(manifest.version, version_pattern)) {
    refuse(values, "version", file,
           "version \"" + manifest.version + "\" is not a version such as 1.2.0 or 1.2.0-rc.1");
  }
  std::tie(manifest.abi_major, manifest.abi_minor) = parse_abi(values, file);
  manifest.description = required_string(values, "description", file);

  std::set<std::string, std::less<>> seen;
  if (const auto* ids = values.get<std::vector<std::string>>("requires")) {
    for (const std::string& id : *ids) {
      if (!is_valid_plugin_id(id)) {
        refuse(values, "requires", file, "requires \"" + id + "\", which is not a plugin id");
      }
      if (id == manifest.id) refuse(values, "requires", file, "a plugin cannot require itself");
      if (!seen.insert(id).second) {
        refuse(values, "requires", file, "requires \"" + id + "\" twice");
      }
      manifest.required_plugins.push_back(id);
    }
  }

  read_exports(table, file, manifest);
  read_uses(table, file, manifest);
  // Major 1 only: another major is refused, with its own reason, before anything is loaded.
  if ((!manifest.exports.empty() || !manifest.uses.empty()) && manifest.abi_major == 1 &&
      manifest.abi_minor < 3) {
    refuse(values, manifest.exports.empty() ? "uses" : "exports", file,
           std::string(manifest.exports.empty() ? "uses" : "exports") +
               " needs abi \"1.3\" or later (shared APIs came with ABI 1.3); this manifest "
               "declares abi \"" +
               std::to_string(manifest.abi_major) + "." + std::to_string(manifest.abi_minor) +
               "\"");
  }

  if (const toml::node* node = table.get("config")) {
    const toml::table* schema_table = node->as_table();
    if (schema_table == nullptr) {
      throw ConfigError::at(*node, file.string(),
                            "config must be a table: one [config.<key>] table per setting");
    }
    manifest.config_schema = config::schema_from_toml(*schema_table, context);
  }
  if (const toml::node* node = table.get("commands")) {
    manifest.commands = read_commands(*node, context);
  }
  manifest.library = file.parent_path() / library_file_name(manifest.id);
  return manifest;
}

}  // namespace emsnode::host
