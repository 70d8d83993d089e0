#include "cli/cli.hpp"

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <emsnode/plugin_abi.h>

#include "config/node_config.hpp"
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
    {"version", "print the version"},
    {"help", "print this help"},
};

void print_help(std::ostream& out) {
  out << "Usage: emsnode [VERB] --conf FILE\n\n"
         "Runs one node of an emsnode active/passive cluster.\n\nVerbs:\n";
  for (const Verb& verb : kVerbs) {
    out << "  " << verb.name << std::string(10 - verb.name.size(), ' ') << verb.summary << '\n';
  }
  out << "\nOptions:\n"
         "  -c, --conf FILE   the node's config (TOML); relative paths in it resolve against its "
         "folder\n"
         "  -h, --help        print this help\n"
         "  -V, --version     print the version\n"
         "\nExit status: 0 success, 1 failure while running, 2 usage error, invalid config or\n"
         "refused plugin (one line on standard error: FILE:LINE:COL: what is wrong).\n"
         "Signals: SIGTERM or SIGINT stop the node cleanly; SIGHUP reopens the log file.\n";
}

struct Arguments {
  std::string verb = "run";
  std::optional<std::string> conf;
};

class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  bool verb_seen = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      args.verb = "help";
    } else if (arg == "-V" || arg == "--version") {
      args.verb = "version";
    } else if (arg == "-c" || arg == "--conf") {
      if (i + 1 == argc) throw UsageError(std::string(arg) + " needs a FILE");
      args.conf = argv[++i];
    } else if (arg.rfind("--conf=", 0) == 0) {
      args.conf = std::string(arg.substr(7));
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError("unknown option " + std::string(arg));
    } else if (!verb_seen) {
      const bool known = std::any_of(std::begin(kVerbs), std::end(kVerbs),
                                     [&](const Verb& v) { return v.name == arg; });
      if (!known) throw UsageError("unknown verb " + std::string(arg));
      args.verb = arg;
      verb_seen = true;
    } else {
      throw UsageError("unexpected argument " + std::string(arg));
    }
  }
  return args;
}

const std::string& require_conf(const Arguments& args) {
  if (!args.conf) throw UsageError(args.verb + " needs --conf FILE");
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

int run(const std::string& conf) {
  const config::NodeConfig config = config::load_node_config(conf);
  log::init(node::log_settings(config));
  return node::run(config, kVersion);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments args = parse(argc, argv);
    if (args.verb == "help") {
      print_help(std::cout);
      return kExitOk;
    }
    if (args.verb == "version") {
      std::cout << "emsnode " << kVersion << " (plugin ABI " << EMSNODE_ABI_MAJOR << '.'
                << EMSNODE_ABI_MINOR << ")\n";
      return kExitOk;
    }
    if (args.verb == "check") return check(require_conf(args));
    return run(require_conf(args));
  } catch (const UsageError& e) {
    std::cerr << "emsnode: " << e.what() << " (see emsnode --help)\n";
  } catch (const config::ConfigError& e) {
    std::cerr << e.what() << '\n';
  } catch (const host::HostError& e) {
    std::cerr << e.what() << '\n';
  } catch (const std::exception& e) {
    std::cerr << "emsnode: " << e.what() << '\n';
    return kExitFailure;
  }
  return kExitInvalid;
}

}  // namespace emsnode::cli
