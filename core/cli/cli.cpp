#include "cli/cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <emsnode/plugin_abi.h>

#include "admin/admin_client.hpp"
#include "admin/store_client.hpp"
#include "cli/plugin_commands.hpp"
#include "config/node_config.hpp"
#include "db/database.hpp"
#include "host/plugin_host.hpp"
#include "node/node.hpp"

namespace emsnode::cli {
namespace {

constexpr std::string_view kVersion = EMSNODE_VERSION;

struct Verb {
  std::string_view name;
  std::string_view summary;
};

constexpr Verb kVerbs[] = {
    {"run", "run this node of the cluster (the default when no verb is given)"},
    {"check", "validate the config and every enabled plugin's section, then exit"},
    {"status", "show this node's role, the lease, the nodes and the plugins [--json]"},
    {"switchover", "hand the active role to another node [--to NODE]"},
    {"pause", "maintenance: this node will not take the lease (the active hands over first)"},
    {"resume", "end maintenance"},
    {"settings", "cluster settings: settings [list] | settings get KEY | settings set KEY VALUE"},
    {"store", "the shared file store: put, get, stat, ls, rm, migrate (see below)"},
    {"version", "print the version"},
    {"help", "print this help"},
};

void print_help(std::ostream& out) {
  out << "Usage: emsnode [VERB] --conf FILE\n\n"
         "Runs one node of an emsnode active/passive cluster.\n\nVerbs:\n";
  for (const Verb& verb : kVerbs) {
    out << "  " << verb.name << std::string(12 - verb.name.size(), ' ') << verb.summary << '\n';
  }
  out << "\nOptions:\n"
         "  -c, --conf FILE   the node's config (TOML); relative paths in it resolve against its "
         "folder\n"
         "  --json            status: the JSON the admin endpoint serves\n"
         "  --to NODE         switchover: the node that should become active\n"
         "  --to BACKEND      store migrate: blob or share\n"
         "  -h, --help        print this help\n"
         "  -V, --version     print the version\n"
         "\nPlugin commands: emsnode PLUGIN COMMAND [--ARGUMENT VALUE ...] --conf FILE runs a\n"
         "plugin's control command on the node (an active-only one is forwarded to the active\n"
         "node); a boolean argument is --flag or --flag=false, a duration \"5s\". emsnode help\n"
         "PLUGIN lists its commands. A verb above wins over a plugin of the same id.\n"
         "\nExit status: 0 success, 1 failure while running, 2 usage error, invalid config or\n"
         "refused plugin (one line on standard error: FILE:LINE:COL: what is wrong).\n"
         "Signals: SIGTERM or SIGINT stop the node cleanly; SIGHUP reopens the log file.\n"
         "status, switchover, pause, resume, settings and store talk to the running node's\n"
         "admin endpoint ([admin] listen, over HTTPS verified against [admin] tls_ca when it\n"
         "has tls_cert) with [admin] token, or when the config sets none the token the node\n"
         "made in <data_dir>/admin.token (readable only by the user that runs the node).\n"
         "\nThe shared file store (writes go through the active node, with its epoch; - is\n"
         "standard input or output; a progress bar goes to standard error on a terminal):\n"
         "  store put KEY FILE|-   store FILE at KEY, published once complete\n"
         "  store get KEY FILE|-   fetch KEY into FILE, written beside it and renamed into place\n"
         "                         once its SHA-256 matches; with -, standard output gets the\n"
         "                         bytes before the check completes and only the exit status\n"
         "                         (1) reports a mismatch\n"
         "  store stat KEY         size, SHA-256, modified time, writer node and epoch\n"
         "  store ls [PREFIX]      the files whose key starts with PREFIX\n"
         "  store rm KEY           remove KEY\n"
         "  store migrate --to blob|share\n"
         "                         copy every file into the other backend, verifying each; then\n"
         "                         set [store] backend in every node's config and restart them\n";
}

struct Arguments {
  std::string verb = "run";               // "plugin": a plugin's command
  std::string plugin;                     // plugin: its id
  std::string command;                    // plugin: the command's name
  std::vector<std::string> command_args;  // plugin: the words after the command
  std::optional<std::string> conf;
  bool json = false;
  std::optional<std::string> to;
  std::vector<std::string> operands;  // after the verb (settings' and store's subcommands)
};

class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  bool verb_seen = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (args.verb == "plugin" && !args.command.empty() && arg != "-c" && arg != "--conf" &&
        arg.rfind("--conf=", 0) != 0) {
      args.command_args.emplace_back(arg);  // the command's own arguments, checked by its schema
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      args.verb = "help";
    } else if (arg == "-V" || arg == "--version") {
      args.verb = "version";
    } else if (arg == "-c" || arg == "--conf") {
      if (i + 1 == argc) throw UsageError(std::string(arg) + " needs a FILE");
      args.conf = argv[++i];
    } else if (arg.rfind("--conf=", 0) == 0) {
      args.conf = std::string(arg.substr(7));
    } else if (arg == "--json") {
      args.json = true;
    } else if (arg == "--to") {
      if (i + 1 == argc) throw UsageError("--to needs a NODE");
      args.to = argv[++i];
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {  // "-": standard input or output
      throw UsageError("unknown option " + std::string(arg));
    } else if (!verb_seen) {
      const bool known = std::any_of(std::begin(kVerbs), std::end(kVerbs),
                                     [&](const Verb& v) { return v.name == arg; });
      // A built-in verb wins over a plugin of the same id.
      if (!known && !host::is_valid_plugin_id(arg)) {
        throw UsageError("unknown verb " + std::string(arg));
      }
      args.verb = known ? std::string(arg) : "plugin";
      if (!known) args.plugin = arg;
      verb_seen = true;
    } else if (args.verb == "plugin") {
      args.command = arg;
    } else if (args.verb == "settings" || args.verb == "store" || args.verb == "help") {
      args.operands.emplace_back(arg);
    } else {
      throw UsageError("unexpected argument " + std::string(arg));
    }
  }
  return args;
}

const std::string& require_conf(const Arguments& args) {
  if (!args.conf) {
    const std::string what = args.verb == "plugin" ? args.plugin + " " + args.command : args.verb;
    throw UsageError(what + " needs --conf FILE");
  }
  return *args.conf;
}

void print_values(const config::Values& values) {
  for (const auto& [key, value] : values.all()) {
    std::cout << "  " << key << " = " << config::to_display(value) << '\n';
  }
}

// Validates everything a start would, short of serving: the node config, then every enabled
// plugin (manifest, library, its section, and create). Reports every refused plugin, one line
// each, not only the first.
int check(const std::string& conf) {
  const config::NodeConfig config = config::load_node_config(conf);
  node::check_config(config);
  log::Settings quiet;
  quiet.level = log::Level::warning;
  log::init(quiet);

  host::PluginHost plugins(config);
  const std::vector<host::CheckResult> results = plugins.check();
  const bool all_ok =
      std::all_of(results.begin(), results.end(), [](const host::CheckResult& r) { return r.ok; });
  for (const host::CheckResult& result : results) {
    if (!result.ok) std::cerr << result.error << '\n';
  }
  if (!all_ok) return kExitInvalid;

  std::cout << conf << ": valid\n";
  print_values(config.values);
  for (const host::CheckResult& result : results) {
    std::cout << "plugin " << result.id << ' ' << result.version << " (" << result.library.string()
              << "): valid\n";
    print_values(result.config);
  }
  return kExitOk;
}

// The verbs that talk to a running node through its admin endpoint.
int admin_verb(const Arguments& args) {
  const config::NodeConfig config = config::load_node_config(require_conf(args));
  const admin::Target target = admin::target_from(config);
  if (args.verb == "status") return admin::status_verb(target, args.json);
  if (args.verb == "switchover") return admin::switchover_verb(target, args.to);
  if (args.verb == "pause") return admin::pause_verb(target);
  if (args.verb == "resume") return admin::resume_verb(target);
  if (args.verb == "store") {
    std::vector<std::string> operands = args.operands;
    if (args.to) operands.push_back(*args.to);  // store migrate --to BACKEND
    admin::StoreStreams streams{std::cin, std::cout, std::cerr,
                                isatty(STDERR_FILENO) == 1 ? &std::cerr : nullptr};
    return admin::store_verb(target, operands, streams);
  }
  return admin::settings_verb(target, args.operands);
}

int run(const std::string& conf) {
  const config::NodeConfig config = config::load_node_config(conf);
  node::check_config(config);
  log::init(node::log_settings(config));
  return node::run(config, kVersion);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments args = parse(argc, argv);
    if (args.verb == "help") {
      if (args.operands.size() > 1) throw UsageError("help takes at most one PLUGIN");
      if (!args.operands.empty())
        return plugin_help(args.conf, args.operands[0], std::cout, std::cerr);
      print_help(std::cout);
      list_plugins_with_commands(args.conf, std::cout);
      return kExitOk;
    }
    if (args.verb == "plugin") {
      if (args.command.empty()) {
        // A lone word is far more often a mistyped verb than a plugin without its command.
        throw UsageError("unknown verb " + args.plugin);
      }
      return plugin_command_verb(require_conf(args), args.plugin, args.command, args.command_args,
                                 std::cout, std::cerr);
    }
    if (args.verb == "version") {
      std::cout << "emsnode " << kVersion << " (plugin ABI " << EMSNODE_ABI_MAJOR << '.'
                << EMSNODE_ABI_MINOR << ")\n";
      return kExitOk;
    }
    const bool migrate =
        args.verb == "store" && args.operands == std::vector<std::string>{"migrate"};
    if (args.to && args.verb != "switchover" && !migrate) {
      throw UsageError("--to goes with switchover and store migrate");
    }
    if (args.json && args.verb != "status") throw UsageError("--json goes with status");
    if (args.verb == "check") return check(require_conf(args));
    if (args.verb == "run") return run(require_conf(args));
    return admin_verb(args);
  } catch (const UsageError& e) {
    std::cerr << "emsnode: " << e.what() << " (see emsnode --help)\n";
  } catch (const config::ConfigError& e) {
    std::cerr << e.what() << '\n';
  } catch (const host::HostError& e) {
    std::cerr << e.what() << '\n';
  } catch (const db::DbError& e) {
    // Refused before serving: another node with this id or backup dir, an unusable database.
    std::cerr << "emsnode: " << e.what() << '\n';
  } catch (const admin::ClientError& e) {
    std::cerr << "emsnode: " << e.what() << '\n';
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "emsnode: " << e.what() << '\n';
    return kExitFailure;
  }
  return kExitInvalid;
}

}  // namespace emsnode::cli
