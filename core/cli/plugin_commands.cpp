#include "cli/plugin_commands.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "admin/address.hpp"
#include "admin/admin_client.hpp"
#include "cli/cli.hpp"
#include "config/node_config.hpp"
#include "host/command_args.hpp"
#include "host/host_error.hpp"
#include "host/plugin_catalog.hpp"
#include "host/plugin_host.hpp"

namespace emsnode::cli {
namespace {

using nlohmann::json;

// A mistake in what the operator typed: printed as one line, exit status 2.
class ArgumentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<std::filesystem::path> search_dirs(const std::optional<config::NodeConfig>& config) {
  if (config) return host::PluginHost::default_search_dirs(*config);
  return {host::PluginHost::builtin_plugin_dir()};
}

std::string names_of(const std::vector<config::Field>& fields) {
  std::string names;
  for (const config::Field& field : fields) names += (names.empty() ? "--" : ", --") + field.name;
  return names;
}

std::string commands_of(const host::Manifest& manifest) {
  std::string names;
  for (const host::CommandSpec& c : manifest.commands)
    names += (names.empty() ? "" : ", ") + c.name;
  return names;
}

// One argument's value as the host reads it: numbers and booleans typed, a path made absolute
// against the working directory (the node would resolve it against its config's folder).
json typed(const config::Field& field, const std::string& text) {
  switch (field.type) {
    case config::Type::integer: {
      errno = 0;
      char* end = nullptr;
      const long long n = std::strtoll(text.c_str(), &end, 10);
      if (!text.empty() && *end == '\0' && errno == 0) return static_cast<std::int64_t>(n);
      return text;  // refused by the check, which says what is expected
    }
    case config::Type::floating: {
      char* end = nullptr;
      const double n = std::strtod(text.c_str(), &end);
      if (!text.empty() && *end == '\0') return n;
      return text;
    }
    case config::Type::boolean:
      if (text == "true") return true;
      if (text == "false") return false;
      return text;
    case config::Type::path:
      return text.empty() ? text : std::filesystem::absolute(text).lexically_normal().string();
    default:
      return text;
  }
}

json arguments(const host::CommandSpec& command, const std::vector<std::string>& words) {
  json args = json::object();
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word.rfind("--", 0) != 0 || word.size() == 2) {
      throw ArgumentError("unexpected " + config::quote(word) + " (expected --ARGUMENT VALUE)");
    }
    const std::size_t eq = word.find('=');
    const std::string name = word.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const config::Field* field = nullptr;
    for (const config::Field& f : command.args.fields) {
      if (f.name == name) field = &f;
    }
    if (field == nullptr) {
      throw ArgumentError("--" + name + ": " + command.name + " has no such argument (" +
                          (command.args.fields.empty()
                               ? "it takes none"
                               : "its arguments: " + names_of(command.args.fields)) +
                          ")");
    }
    if (args.contains(name)) throw ArgumentError("--" + name + " is given twice");
    std::string value;
    if (eq != std::string::npos) {
      value = word.substr(eq + 1);
    } else if (field->type == config::Type::boolean) {
      value = "true";  // --flag; --flag=false to say no
    } else if (i + 1 < words.size()) {
      value = words[++i];
    } else {
      throw ArgumentError("--" + name + " needs a value (" +
                          std::string(config::type_name(field->type)) + ")");
    }
    args[name] = typed(*field, value);
  }
  return args;
}

std::string error_of(const admin::Response& response) {
  const json body = json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    return body["error"].get<std::string>();
  }
  std::string text = response.body;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return "HTTP " + std::to_string(response.status) + (text.empty() ? "" : ": " + text);
}

void print_answer(const admin::Response& response, std::ostream& out) {
  const json body = json::parse(response.body, nullptr, false);
  if (body.is_discarded()) {
    out << response.body << '\n';
  } else {
    out << body.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
  }
}

std::string describe(const config::Field& field) {
  std::string text = "--" + field.name + " " + std::string(config::type_name(field.type));
  if (field.required) text += ", required";
  if (field.default_value) text += ", default " + config::to_display(*field.default_value);
  if (!field.choices.empty()) {
    text += ", one of:";
    for (const std::string& choice : field.choices) text += " " + choice;
  }
  if (!field.description.empty()) text += ": " + field.description;
  return text;
}

}  // namespace

int plugin_command_verb(const std::string& conf, const std::string& plugin,
                        const std::string& command, const std::vector<std::string>& args,
                        std::ostream& out, std::ostream& err) {
  const config::NodeConfig config = config::load_node_config(conf);
  const std::string what = plugin + " " + command;
  json body;
  bool active_only = true;
  try {
    const host::PluginCatalog catalog = host::PluginCatalog::scan(search_dirs(config));
    const host::Manifest& manifest = catalog.find(plugin);
    const host::CommandSpec* spec = host::find_command(manifest, command);
    if (spec == nullptr) {
      throw ArgumentError("plugin " + plugin + " has no command " + config::quote(command) +
                          (manifest.commands.empty()
                               ? " (it has none)"
                               : " (its commands: " + commands_of(manifest) + ")"));
    }
    active_only = spec->active_only;
    body = arguments(*spec, args);
    host::check_command_args(*spec, body, std::filesystem::current_path());
  } catch (const ArgumentError& e) {
    err << "emsnode: " << what << ": " << e.what() << " (see emsnode help " << plugin << ")\n";
    return kExitInvalid;
  } catch (const host::CommandArgsError& e) {
    err << "emsnode: " << what << ": " << e.what() << '\n';
    return kExitInvalid;
  } catch (const host::HostError& e) {
    err << "emsnode: " << e.what() << '\n';
    return kExitInvalid;
  }

  const admin::Target local = admin::target_from(config);
  const std::string path =
      "/plugins/" + admin::percent_encode(plugin) + "/commands/" + admin::percent_encode(command);
  // The node gives up at its command timeout and says so: wait a little longer than it does.
  const auto timeout = config.plugin_host.command_timeout + std::chrono::seconds(5);
  const std::string text = body.dump();
  admin::Response response = admin::request(local, "POST", path, text, timeout);

  if (response.status == 409 && active_only) {
    const json refusal = json::parse(response.body, nullptr, false);
    if (refusal.is_object() && refusal.value("not_active", false)) {
      const json& active = refusal.contains("active") ? refusal["active"] : json();
      if (!active.is_object()) {
        err << "emsnode: " << what << " runs on the active node only, and no node is active now\n";
        return kExitFailure;
      }
      const std::string id = active.value("id", "");
      const std::string address = active.value("admin_address", "");
      const std::string named = "the active node " + id + " (admin endpoint " +
                                (address.empty() ? std::string("unknown") : address) + ")";
      admin::Target target{{}, 0, local.token, local.tls, local.ca};
      try {
        const admin::HostPort where = admin::parse_host_port(address);
        target.host = where.host == "0.0.0.0" ? "127.0.0.1"
                      : where.host == "::"    ? "::1"
                                              : where.host;
        target.port = where.port;
      } catch (const std::invalid_argument&) {
      }
      if (target.port == 0) {
        err << "emsnode: " << what << " runs on " << named
            << "; its address cannot be used: run it "
            << "there\n";
        return kExitFailure;
      }
      try {
        response = admin::request(target, "POST", path, text, timeout);
      } catch (const admin::ClientError& e) {
        err << "emsnode: " << what << " runs on " << named
            << ", which could not be reached: " << e.what() << '\n';
        return kExitFailure;
      }
      if (response.status == 409) {
        err << "emsnode: " << what << " runs on " << named
            << ", which refused it: " << error_of(response) << '\n';
        return kExitFailure;
      }
      err << "emsnode: this node is not active; forwarded to " << named << '\n';
    }
  }
  if (response.status != 200) {
    err << "emsnode: " << what << ": " << error_of(response) << '\n';
    return kExitFailure;
  }
  print_answer(response, out);
  return kExitOk;
}

int plugin_help(const std::optional<std::string>& conf, const std::string& plugin,
                std::ostream& out, std::ostream& err) {
  std::optional<config::NodeConfig> config;
  if (conf) config = config::load_node_config(*conf);
  const host::PluginCatalog catalog = host::PluginCatalog::scan(search_dirs(config));
  const host::Manifest* manifest = nullptr;
  try {
    manifest = &catalog.find(plugin);
  } catch (const host::HostError& e) {
    err << "emsnode: " << e.what() << '\n';
    return kExitInvalid;
  }
  out << plugin << " " << manifest->version << ": " << manifest->description << "\n";
  if (manifest->commands.empty()) {
    out << "It has no commands.\n";
    return kExitOk;
  }
  out << "\nUsage: emsnode " << plugin << " COMMAND [--ARGUMENT VALUE ...] --conf FILE\n\n"
      << "Commands:\n";
  for (const host::CommandSpec& command : manifest->commands) {
    out << "  " << command.name << "  " << command.summary << " ["
        << (command.active_only ? "active node" : "any node") << ", "
        << (command.changes_state ? "token" : "no token") << "]\n";
    for (const config::Field& field : command.args.fields)
      out << "      " << describe(field) << '\n';
  }
  return kExitOk;
}

void list_plugins_with_commands(const std::optional<std::string>& conf, std::ostream& out) {
  std::optional<config::NodeConfig> config;
  if (conf) config = config::load_node_config(*conf);
  const host::PluginCatalog catalog = host::PluginCatalog::scan(search_dirs(config));
  bool any = false;
  for (const host::Manifest& manifest : catalog.manifests()) {
    if (manifest.commands.empty()) continue;
    if (!any) out << "\nPlugin commands (emsnode help PLUGIN lists them):\n";
    any = true;
    out << "  " << manifest.id
        << std::string(manifest.id.size() < 12 ? 12 - manifest.id.size() : 1, ' ')
        << commands_of(manifest) << '\n';
  }
}

}  // namespace emsnode::cli
