// emsnode-plugin-check: loads one built plugin with the host's own loader and refusals, and
// cycles it the way a node does over role flips, reporting every step and every leak. The
// plugin gets a scratch shared database (the node's SQLite backend) and file store (the node's
// share backend) in a temporary folder, with the lease held, so that a plugin that migrates and
// writes in start, as the SDK advises, passes; the folder is removed at exit. kHelp below is the
// user's documentation, also in sdk/README.md.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/schema.hpp"
#include "db/database.hpp"
#include "db/schema.hpp"
#include "host/command_args.hpp"
#include "host/executor.hpp"
#include "host/host_error.hpp"
#include "host/host_services.hpp"
#include "host/manifest.hpp"
#include "host/plugin_instance.hpp"
#include "host/plugin_loader.hpp"
#include "metrics/metrics.hpp"
#include "role/lease_store.hpp"
#include "store/file_store.hpp"

namespace {

namespace fs = std::filesystem;
using emsnode::host::CallOutcome;
using emsnode::host::CallResult;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kUsage =
    "usage: emsnode-plugin-check LIB_OR_DIR [--config FILE.toml] [--start-timeout DURATION]\n"
    "                            [--stop-deadline DURATION] [--command-timeout DURATION]\n"
    "                            [--no-database] [--no-store]\n"
    "       emsnode-plugin-check --help\n";

constexpr const char* kHelp =
    "Loads a built emsnode plugin with the node's own loader and cycles it as a node does over\n"
    "role flips: instance 1 create, start, stop, start, stop, stop again, destroy; instance 2\n"
    "create, stop without start, destroy. Reports each step, timers left armed after stop and\n"
    "threads left running after destroy.\n"
    "\n"
    "Every control command that plugin.toml declares is called as a node calls it, by instance 1:\n"
    "those that run on any node after create, the active_only ones after the first start. Each\n"
    "once with valid arguments, built from their declaration (the default when there is one,\n"
    "else the first choice or \"x\" for a string, the min, else the max, else 1 for a number,\n"
    "false, \"1s\", \"x\" for a path or secret, \"127.0.0.1:1\" for an address): any answer\n"
    "passes, an error status included, since it is the plugin's to give; a handler that throws\n"
    "or does not answer within the command timeout fails. Then with invalid ones (a wrong type,\n"
    "an unknown argument, a required one left out), which the host's argument check must refuse\n"
    "before the handler runs.\n"
    "\n"
    "LIB_OR_DIR             the plugin's folder (holding plugin.toml and <id>.so) or its library\n"
    "--config FILE.toml     the plugin's config: the keys of its [plugins.<id>] section of\n"
    "                       node.toml, written as top-level keys, with no table header\n"
    "                       (listen = \"127.0.0.1:18013\"); relative paths are read from FILE's\n"
    "                       folder. Without it, the defaults of plugin.toml (a required key then\n"
    "                       needs --config)\n"
    "--start-timeout D      how long start may take (default 10s); D as in node.toml: 500ms, 5s\n"
    "--stop-deadline D      how long stop may take before the plugin is faulted (default 5s)\n"
    "--command-timeout D    how long a command may take to answer (default 30s, as a node's\n"
    "                       [plugin_host] command_timeout)\n"
    "--no-database          give the plugin no shared database: its db calls fail\n"
    "--no-store             give the plugin no shared file store: its store calls fail\n"
    "--help                 this text\n"
    "\n"
    "The plugin runs as the active node \"plugin-check\" of a scratch cluster: a SQLite database\n"
    "and a share-dir file store in a temporary folder (under $TMPDIR, else /tmp), with the lease\n"
    "held, so migrations and fenced writes in start succeed. The folder is removed at exit.\n"
    "\n"
    "Exit status: 0 clean, 1 refused by the host or a problem found, 2 bad usage.\n";

struct Options {
  fs::path target;
  std::optional<fs::path> config;
  milliseconds start_timeout{10000};
  milliseconds stop_deadline{5000};
  milliseconds command_timeout{30000};
  bool database = true;
  bool store = true;
  bool help = false;
};

std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  bool have_target = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      return options;
    } else if (arg == "--config" && has_value) {
      options.config = fs::absolute(argv[++i]);
    } else if ((arg == "--start-timeout" || arg == "--stop-deadline" ||
                arg == "--command-timeout") &&
               has_value) {
      const auto duration = emsnode::config::parse_duration(argv[++i]);
      if (!duration) {
        std::cerr << arg << ": \"" << argv[i] << "\" is not a duration such as 500ms or 5s\n";
        return std::nullopt;
      }
      (arg == "--start-timeout"   ? options.start_timeout
       : arg == "--stop-deadline" ? options.stop_deadline
                                  : options.command_timeout) = *duration;
    } else if (arg == "--no-database") {
      options.database = false;
    } else if (arg == "--no-store") {
      options.store = false;
    } else if (!arg.empty() && arg[0] != '-' && !have_target) {
      options.target = fs::absolute(arg);
      have_target = true;
    } else {
      std::cerr << "unexpected argument \"" << arg << "\"\n";
      return std::nullopt;
    }
  }
  if (!have_target) return std::nullopt;
  return options;
}

// A temporary folder, removed with everything in it when this object goes.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        (fs::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") / "emsnode-plugin-check-XXXXXX")
            .string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error(pattern +
                               ": cannot create a scratch folder: " + std::strerror(errno));
    }
    path_ = pattern;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The cluster a plugin under check belongs to: the node's own SQLite backend and share-dir store
// in a scratch folder, and the lease held by the checking node, so that fenced writes succeed.
class ScratchCluster {
 public:
  static constexpr const char* kNodeId = "plugin-check";

  ScratchCluster(bool with_database, bool with_store) : database_for_plugin_(with_database) {
    database_ = emsnode::db::open_sqlite((dir_.path() / "cluster.db").string());
    emsnode::db::migrate_core(*database_, kNodeId);
    promote();
    if (with_store) {
      const fs::path share = dir_.path() / "store";
      fs::create_directories(share);
      store_ = emsnode::store::open_share_store(*database_, share.string());
    }
  }
  ScratchCluster(const ScratchCluster&) = delete;
  ScratchCluster& operator=(const ScratchCluster&) = delete;
  ~ScratchCluster() {
    if (!in_use_after_exit_) return;
    // A faulted plugin's abandoned call may still be running and use them: keep them until the
    // process exits (the folder goes with dir_ all the same), where they stay reachable.
    static auto& kept_stores = *new std::vector<std::unique_ptr<emsnode::store::FileStore>>;
    static auto& kept_databases = *new std::vector<std::unique_ptr<emsnode::db::Database>>;
    kept_stores.push_back(std::move(store_));
    kept_databases.push_back(std::move(database_));
  }

  // Takes the lease afresh (releasing the one held), as a node's promotion does: a new epoch.
  // Lasts longer than any check runs, since nothing renews it.
  std::uint64_t promote() {
    emsnode::role::SqlLeaseStore lease(*database_);
    if (epoch_ != 0) lease.release(kNodeId, epoch_);
    const emsnode::role::AcquireResult acquired =
        lease.try_acquire(kNodeId, std::chrono::hours(24), false);
    if (!acquired.acquired) throw std::runtime_error("the scratch database refused the lease");
    epoch_ = acquired.epoch;
    return epoch_;
  }

  std::uint64_t epoch() const { return epoch_; }
  emsnode::db::Database* database() const {
    return database_for_plugin_ ? database_.get() : nullptr;
  }
  emsnode::store::FileStore* store() const { return store_.get(); }
  const fs::path& path() const { return dir_.path(); }
  void keep_until_exit() { in_use_after_exit_ = true; }

 private:
  ScratchDir dir_;
  std::unique_ptr<emsnode::db::Database> database_;
  std::unique_ptr<emsnode::store::FileStore> store_;
  std::uint64_t epoch_ = 0;
  // The store needs the database (its catalog) even when the plugin is given none.
  bool database_for_plugin_;
  bool in_use_after_exit_ = false;
};

// Threads of this process, as the kernel counts them.
std::size_t count_threads() {
  std::error_code ec;
  std::size_t count = 0;
  for (fs::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    ++count;
  }
  return count;
}

emsnode::host::Manifest read_target_manifest(const fs::path& target) {
  const bool is_dir = fs::is_directory(target);
  const fs::path folder = is_dir ? target : target.parent_path();
  emsnode::host::Manifest manifest;
  try {
    manifest = emsnode::host::read_manifest(folder / "plugin.toml");
  } catch (const emsnode::config::ConfigError& e) {
    throw emsnode::host::HostError(e.what());
  }
  if (!is_dir && fs::weakly_canonical(target) != fs::weakly_canonical(manifest.library)) {
    throw emsnode::host::HostError(target.string() + ": the plugin.toml beside it declares id \"" +
                                   manifest.id + "\", whose library is " +
                                   manifest.library.filename().string());
  }
  return manifest;
}

emsnode::config::Values plugin_values(const emsnode::host::Manifest& manifest,
                                      const std::optional<fs::path>& config_file) {
  emsnode::config::Context context;
  context.table = "plugins." + manifest.id;
  try {
    if (config_file) {
      context.file = config_file->string();
      context.base_dir = config_file->parent_path();
      return emsnode::config::validate(emsnode::config::parse_file(*config_file),
                                       manifest.config_schema, context);
    }
    context.file = manifest.file.string();
    context.base_dir = manifest.file.parent_path();
    return emsnode::config::validate(toml::table{}, manifest.config_schema, context);
  } catch (const emsnode::config::ConfigError& e) {
    const std::string hint = config_file ? "" : " (the defaults do not do: pass --config)";
    throw emsnode::host::HostError(e.what() + hint);
  }
}

// A value of `field`'s declared type that its declaration accepts: its default when it has one,
// else the least the bounds allow.
json valid_value(const emsnode::config::Field& field) {
  using emsnode::config::Type;
  if (field.default_value && field.type != Type::secret) {
    struct Visit {
      json operator()(const std::string& s) const { return s; }
      json operator()(std::int64_t n) const { return n; }
      json operator()(double n) const { return n; }
      json operator()(bool b) const { return b; }
      json operator()(milliseconds d) const { return emsnode::config::format_duration(d); }
      json operator()(const emsnode::config::Secret&) const { return "x"; }
      json operator()(const std::vector<std::string>& items) const { return items; }
    };
    return std::visit(Visit{}, *field.default_value);
  }
  const std::optional<double> bound = field.min ? field.min : field.max;
  switch (field.type) {
    case Type::integer:
      return bound ? static_cast<std::int64_t>(*bound) : std::int64_t{1};
    case Type::floating:
      return bound.value_or(1.0);
    case Type::boolean:
      return false;
    case Type::duration:
      return bound
                 ? emsnode::config::format_duration(milliseconds(static_cast<std::int64_t>(*bound)))
                 : std::string("1s");
    case Type::address:
      return "127.0.0.1:1";
    case Type::strings:
      return json::array({"x"});
    case Type::string:
      if (!field.choices.empty()) return field.choices.front();
      return "x";
    case Type::secret:
    case Type::path:
      return "x";
  }
  return "x";
}

// A value no field of `field`'s type accepts.
json wrong_value(const emsnode::config::Field& field) {
  using emsnode::config::Type;
  const bool takes_text =
      field.type != Type::integer && field.type != Type::floating && field.type != Type::boolean;
  return takes_text ? json(true) : json("x");
}

// Arguments the host's check must refuse, each with what is wrong with it.
struct InvalidArgs {
  std::string what;
  json args;
};

std::vector<InvalidArgs> invalid_args(const emsnode::host::CommandSpec& command,
                                      const json& valid) {
  std::vector<InvalidArgs> cases;
  const std::vector<emsnode::config::Field>& fields = command.args.fields;
  if (!fields.empty()) {
    json wrong = valid;
    wrong[fields.front().name] = wrong_value(fields.front());
    cases.push_back({"a wrong type (" + fields.front().name + ")", std::move(wrong)});
  }
  json unknown = valid;
  unknown["plugin_check_unknown"] = "x";
  cases.push_back({"an unknown argument", std::move(unknown)});
  for (const emsnode::config::Field& field : fields) {
    if (!field.required) continue;
    json missing = valid;
    missing.erase(field.name);
    cases.push_back({"without " + field.name, std::move(missing)});
    break;
  }
  return cases;
}

std::string status_name(emsnode_status status) {
  switch (status) {
    case EMSNODE_OK:
      return "OK";
    case EMSNODE_INVALID:
      return "INVALID";
    case EMSNODE_NOT_FOUND:
      return "NOT_FOUND";
    case EMSNODE_FENCED:
      return "FENCED";
    case EMSNODE_ERROR:
      return "ERROR";
  }
  return "status " + std::to_string(static_cast<int>(status));
}

// Runs the steps and collects what went wrong.
class Checker {
 public:
  // `cluster` must outlive this object.
  Checker(emsnode::host::LoadedLibrary library, emsnode::config::Values values,
          const Options& options, ScratchCluster& cluster)
      : library_(std::move(library)),
        values_(std::move(values)),
        options_(options),
        cluster_(cluster),
        shared_(std::make_shared<emsnode::host::HostShared>()),
        executor_(options.stop_deadline) {
    shared_->node_id = ScratchCluster::kNodeId;
    shared_->epoch.store(cluster.epoch());
    shared_->metrics = std::make_shared<emsnode::metrics::MetricsRegistry>();
    shared_->database.store(cluster.database());
    shared_->store.store(cluster.store());
  }

  void run() {
    // The executor's thread is already running: it is part of the baseline.
    const std::size_t threads_before = count_threads();
    std::cout << "instance 1: create, start, stop, start, stop, stop again, destroy"
              << (library_.manifest.commands.empty()
                      ? ""
                      : "; its commands after create (any node) and the first start "
                        "(active only)")
              << "\n";
    cycle_first_instance();
    std::cout << "instance 2: create, stop without start, destroy\n";
    cycle_second_instance();
    check_threads(threads_before);
  }

  const std::vector<std::string>& problems() const { return problems_; }
  std::size_t steps() const { return steps_; }

 private:
  using Instance = emsnode::host::PluginInstance;

  std::unique_ptr<Instance> make_instance() {
    return std::make_unique<Instance>(library_, values_, shared_, executor_);
  }

  void cycle_first_instance() {
    auto instance = make_instance();
    if (!step("create", instance->create())) return;
    check_commands(*instance, false);
    bool started_once = false;
    for (const char* name : {"start", "stop", "start", "stop", "stop again"}) {
      const bool is_start = std::string(name) == "start";
      // Each start is a promotion of the node: writes of this active period carry a new epoch.
      if (is_start) shared_->epoch.store(cluster_.promote());
      const CallOutcome outcome = is_start ? instance->start(options_.start_timeout)
                                           : instance->stop(options_.stop_deadline);
      if (!step(name, outcome)) return;
      if (is_start && !started_once && outcome.result == CallResult::ok) {
        started_once = true;
        check_commands(*instance, true);
      }
    }
    step("destroy", instance->destroy());
  }

  // Calls each command whose active_only is `active_only` as a node's host does: the argument
  // check first, the handler only with what it accepted.
  void check_commands(Instance& instance, bool active_only) {
    for (const emsnode::host::CommandSpec& command : library_.manifest.commands) {
      if (command.active_only == active_only) check_command(instance, command);
    }
  }

  void check_command(Instance& instance, const emsnode::host::CommandSpec& command) {
    ++steps_;
    const std::string name = "command " + command.name;
    json valid = json::object();
    for (const emsnode::config::Field& field : command.args.fields)
      valid[field.name] = valid_value(field);

    std::string verdict = "ok";
    std::string detail;
    milliseconds elapsed{0};
    emsnode::config::Values args;
    bool checked = false;
    try {
      args = emsnode::host::check_command_args(command, valid, cluster_.path());
      checked = true;
    } catch (const emsnode::host::CommandArgsError& e) {
      // A further rule of the declaration that the built values do not meet: not the plugin's
      // fault, and nothing to call it with.
      verdict = "SKIPPED";
      detail = "no valid arguments could be built: " + std::string(e.what());
    }
    if (checked) {
      const emsnode::host::CommandOutcome outcome =
          instance.run_command(command, std::move(args), options_.command_timeout);
      elapsed = outcome.elapsed;
      using emsnode::host::CommandResult;
      switch (outcome.result) {
        case CommandResult::answered:
          detail = "answered " + status_name(outcome.status) +
                   (outcome.status == EMSNODE_OK ? "" : " (" + outcome.error + ")");
          break;
        case CommandResult::timed_out:
          verdict = "TIMEOUT";
          command_running_ = true;
          break;
        case CommandResult::threw:
          verdict = "THREW";
          break;
        case CommandResult::busy:
          verdict = "BUSY";
          command_running_ = true;
          break;
        case CommandResult::not_started:
          verdict = "REFUSED";
          break;
      }
      if (outcome.result != CommandResult::answered) {
        detail = outcome.error;
        problems_.push_back(name + ": " + outcome.error);
      }
    }

    std::string refused;
    for (const InvalidArgs& invalid : invalid_args(command, valid)) {
      try {
        emsnode::host::check_command_args(command, invalid.args, cluster_.path());
        if (verdict == "ok" || verdict == "SKIPPED") verdict = "ACCEPTED";
        const std::string accepted = "the argument check accepted " + invalid.what;
        detail += "; " + accepted;
        problems_.push_back(name + ": " + accepted);
      } catch (const emsnode::host::CommandArgsError&) {
        refused += (refused.empty() ? "" : ", ") + invalid.what;
      }
    }
    if (!refused.empty()) detail += "; refused " + refused;
    char line[64];
    std::snprintf(line, sizeof line, "  %-20s %-8s %6lld ms", name.c_str(), verdict.c_str(),
                  static_cast<long long>(elapsed.count()));
    std::cout << line << "  " << detail << "\n";
  }

  void cycle_second_instance() {
    auto instance = make_instance();
    if (!step("create", instance->create())) return;
    if (!step("stop without start", instance->stop(options_.stop_deadline))) return;
    step("destroy", instance->destroy());
  }

  // Prints one step; returns false when the instance cannot go on (not created, or faulted).
  bool step(const std::string& name, const CallOutcome& outcome) {
    ++steps_;
    std::string verdict = "ok";
    std::string detail;
    switch (outcome.result) {
      case CallResult::ok:
        break;
      case CallResult::failed:
        verdict = "FAILED";
        break;
      case CallResult::timed_out:
        verdict = "TIMEOUT";
        break;
      case CallResult::abandoned:
        verdict = "FAULTED";
        break;
    }
    if (outcome.result != CallResult::ok) {
      detail = outcome.error;
      problems_.push_back(name + ": " + outcome.error);
    }
    if (outcome.leaked_timers > 0) {
      if (verdict == "ok") verdict = "LEAK";
      const std::string leak =
          std::to_string(outcome.leaked_timers) + " timer(s) still armed when stop returned";
      detail += (detail.empty() ? "" : "; ") + leak;
      problems_.push_back(name + ": " + leak);
    }
    if (outcome.result == CallResult::abandoned) faulted_ = true;
    char line[64];
    std::snprintf(line, sizeof line, "  %-20s %-8s %6lld ms", name.c_str(), verdict.c_str(),
                  static_cast<long long>(outcome.elapsed.count()));
    std::cout << line << (detail.empty() ? "" : "  " + detail) << "\n";
    const bool not_created = name == "create" && outcome.result != CallResult::ok;
    return !not_created && outcome.result != CallResult::abandoned;
  }

  void check_threads(std::size_t before) {
    if (faulted_ || command_running_) {
      cluster_.keep_until_exit();
      std::cout << "threads: not counted (a call was "
                << (faulted_ ? "abandoned" : "left running past the command timeout")
                << " and may still run)\n";
      return;
    }
    // A plugin thread that was told to end in stop may take a moment to be gone.
    std::size_t after = count_threads();
    for (int i = 0; i < 50 && after > before; ++i) {
      std::this_thread::sleep_for(milliseconds(20));
      after = count_threads();
    }
    std::cout << "threads: " << before << " before the first create, " << after
              << " after the last destroy\n";
    if (after > before) {
      problems_.push_back(std::to_string(after - before) +
                          " thread(s) still running after destroy (join them in stop)");
      // Their code must stay mapped until the process exits.
      emsnode::host::pin_library(library_);
    }
  }

  emsnode::host::LoadedLibrary library_;
  emsnode::config::Values values_;
  Options options_;
  ScratchCluster& cluster_;
  std::shared_ptr<emsnode::host::HostShared> shared_;
  emsnode::host::Executor executor_;
  std::vector<std::string> problems_;
  std::size_t steps_ = 0;
  bool faulted_ = false;
  bool command_running_ = false;  // a handler past the command timeout may still run
};

int verdict(const std::string& who, const std::vector<std::string>& problems, std::size_t steps) {
  if (problems.empty()) {
    std::cout << "PASS " << who << ": " << steps << " steps, no failures, no leaks\n";
    return 0;
  }
  std::string text;
  for (const std::string& problem : problems) text += (text.empty() ? "" : "; ") + problem;
  std::cout << "FAIL " << who << ": " << problems.size() << " problem(s): " << text << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::optional<Options> options = parse_options(argc, argv);
  if (!options) {
    std::cerr << kUsage;
    return 2;
  }
  if (options->help) {
    std::cout << kUsage << "\n" << kHelp;
    return 0;
  }
  std::string who = options->target.string();
  try {
    const emsnode::host::Manifest manifest = read_target_manifest(options->target);
    who = manifest.id + " " + manifest.version;
    emsnode::config::Values values = plugin_values(manifest, options->config);
    emsnode::host::LoadedLibrary library = emsnode::host::load_library(manifest);
    ScratchCluster cluster(options->database, options->store);
    std::cout << "plugin: " << manifest.id << " " << manifest.version << " (ABI "
              << manifest.abi_major << "." << manifest.abi_minor << ") "
              << manifest.library.string() << "\n"
              << "config: "
              << (options->config ? options->config->string() : "defaults from plugin.toml") << "\n"
              << "database: "
              << (options->database ? "scratch SQLite in " + cluster.path().string() +
                                          ", the lease held: a new epoch at each start"
                                    : std::string("none (--no-database)"))
              << "\n"
              << "store: "
              << (options->store ? "scratch share folder " + (cluster.path() / "store").string()
                                 : std::string("none (--no-store)"))
              << "\n";
    // Declared after the cluster: the plugin's calls end before its database and store close.
    Checker checker(std::move(library), std::move(values), *options, cluster);
    checker.run();
    return verdict(who, checker.problems(), checker.steps());
  } catch (const emsnode::host::HostError& e) {
    std::cout << "refused: " << e.what() << "\n";
    return verdict(who, {"refused by the host"}, 0);
  } catch (const std::exception& e) {
    // The scratch cluster could not be set up: nothing of the plugin was judged.
    std::cerr << "emsnode-plugin-check: " << e.what() << "\n";
    return 1;
  }
}
