// The plugin host: finds, loads and drives the plugins the node config enables.
//
//   PluginHost host(node_config);
//   host.set_database(&database);  // optional: what plugins reach through the db_* services
//   host.set_store(&file_store);   // optional: what plugins reach through the store_* services
//   host.load();        // discover, check and load every enabled plugin (HostError: refused)
//   host.create_all();  // create each, on this thread (HostError: a create failed)
//   host.set_epoch(epoch);
//   host.start_all();   // when the node becomes active, in dependency order
//   host.stop_all();    // when it stops being active, in reverse order; idempotent
//   host.destroy_all(); // at shutdown (the destructor does stop_all + destroy_all too)
//
// Or, for `emsnode check`: `PluginHost host(node_config); auto results = host.check();`
//
// Search order: the built-in directory (<dir of the executable>/../lib/emsnode/plugins), then
// plugin_host.dirs. Only plugins with a [plugins.<id>] section that is enabled are loaded; the
// others are listed by available().
//
// A plugin's `uses` of shared APIs are resolved in load(), before anything is created: each
// must be exported by exactly one enabled plugin at a minor at least the one asked for, else the
// node is refused with one line naming both plugins. A use orders as `requires` does: the
// exporter is created and started before its users, stopped and destroyed after them, and
// restart() of the exporter restarts them too.
//
// start_all and stop_all repeat on every role flip. A plugin whose start fails (or times out)
// is stopped again and marked failed; the plugins that require it are skipped (failed, reason
// dependency_failed); the rest run. Between start_all and stop_all the host is serving, and
// restart() brings a failed plugin back (the Supervisor calls it, with backoff). A plugin
// that misses its stop deadline is faulted: abandoned, never started or destroyed again, and
// its library stays loaded. The lifecycle calls are serialised: a restart never runs after, nor
// during, the stop_all that ends serving.
//
// Log events (component "host"): plugin.loaded, plugin.created, plugin.started,
// plugin.start_failed, plugin.stopped, plugin.stop_failed, plugin.stop_deadline_missed,
// plugin.faulted, plugin.timer_leaked, plugin.destroyed, plugin.destroy_skipped,
// plugin.restarted, plugin.ignored (a broken candidate nobody enabled), plugin.metric_refused,
// plugin.metric_misuse, plugin.callback_threw, plugin.command (id, command, outcome, ms: never
// the arguments, which may be secrets).
//
// Control commands (ABI 1.3): run_command checks a call's JSON arguments against the command's
// declaration and runs its handler (PluginInstance::run_command) within
// plugin_host.command_timeout, on any thread: the admin endpoint's.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/node_config.hpp"
#include "host/executor.hpp"
#include "host/host_error.hpp"
#include "host/host_services.hpp"
#include "host/plugin_catalog.hpp"
#include "host/plugin_instance.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"

namespace emsnode::host {

enum class PluginState { loaded, created, starting, running, stopping, stopped, failed, faulted };
std::string_view state_name(PluginState state);

struct PluginStatus {
  std::string id;
  std::string name;
  std::string version;
  std::string description;
  std::filesystem::path library;
  PluginState state = PluginState::loaded;
  Health health = Health::ok;  // the plugin's own report; reset to ok at each start
  std::string health_detail;
  std::string last_error;         // why it last failed or faulted; empty when it has not
  std::size_t leaked_timers = 0;  // timers it left armed at its stops, in total
  std::size_t restarts = 0;       // restart() calls that brought it back, in total
  bool required = true;           // [plugins.<id>] required: down past the grace, hand over
  std::vector<StatusFact> facts;  // its status panel (status_fact), in the order first set
};

// Whether the plugin is out of service: failed, faulted, or running but reporting FAILED.
bool is_down(const PluginStatus& status);

// A plugin found in the search directories but not enabled in the node config.
struct AvailablePlugin {
  std::string id;
  std::string name;
  std::string version;
  std::string description;
  std::filesystem::path manifest;
  bool disabled = false;  // true: a [plugins.<id>] section with enabled = false
};

// One enabled plugin's outcome in check().
struct CheckResult {
  std::string id;
  std::string version;            // empty when the manifest was not found
  std::filesystem::path library;  // empty when the manifest was not found
  bool ok = false;
  std::string error;  // the refusal line, when !ok
  std::chrono::milliseconds create_elapsed{0};
  config::Values config;  // the validated section, defaults filled in (secrets stay redacted
                          // when shown through config::to_display)
};

// The answer to one control command call, as the admin endpoint sends it.
struct CommandAnswer {
  // 200 OK, 400 INVALID or bad arguments, 404 NOT_FOUND or no such plugin or command, 409
  // FENCED or not active, 500 ERROR, 503 the plugin is faulted or busy, 504 timed out.
  unsigned http_status = 200;
  std::string body;         // JSON: the handler's answer, or {"error": "<one line>"}
  bool not_active = false;  // 409: an active_only command while the plugin is not started
};

class PluginHost {
 public:
  // Searches default_search_dirs(config) and reports into a registry of its own. `config` must
  // outlive the host: its plugin sections are validated in place, because a copied toml table
  // loses the source positions that errors point at.
  explicit PluginHost(const config::NodeConfig& config);
  // Searches exactly `search_dirs`; registers plugin metrics in `metrics` (shared with the
  // core's own metrics; a registry of its own when null).
  PluginHost(const config::NodeConfig& config, std::vector<std::filesystem::path> search_dirs,
             std::shared_ptr<metrics::MetricsRegistry> metrics);
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;
  ~PluginHost();

  // <dir of the running executable>/../lib/emsnode/plugins
  static std::filesystem::path builtin_plugin_dir();
  // builtin_plugin_dir(), then config.plugin_host.dirs.
  static std::vector<std::filesystem::path> default_search_dirs(const config::NodeConfig& config);

  // Discovers the plugins, and for each enabled one: reads its manifest, validates its config
  // section, orders by `requires`, checks the files' ownership and mode, loads the library and
  // checks its ABI and facts against the manifest. Throws HostError (one line: the file and the
  // reason; a config section error is the ConfigError's FILE:LINE:COL line) at the first
  // refusal. Call once.
  void load();
  // Creates every loaded plugin, in dependency order, on this thread. Throws HostError
  // ("<library>: create failed: <the plugin's reason>") at the first failure.
  void create_all();
  // Starts every created, stopped or failed plugin in dependency order, each on a worker thread
  // within plugin_host.start_timeout. Returns true when all of them run.
  bool start_all();
  // Stops every running plugin in reverse order, each within plugin_host.stop_deadline; never
  // waits longer on one. Idempotent.
  void stop_all();
  // The same within `budget` in all (self-fencing: the node must stop serving before its lease
  // can expire); each plugin gets what is left of it, at most plugin_host.stop_deadline.
  void stop_all(std::chrono::milliseconds budget);
  // stop_all(), then destroys every created plugin in reverse order, except faulted ones and the
  // exporters of APIs a faulted plugin uses (its code may still call their tables).
  void destroy_all();
  // While serving (after start_all, before stop_all): stops plugin `id` and the running plugins
  // that require it or use its shared APIs, directly or not, in reverse order, then starts it and
  // them again in dependency order. Returns true when `id` runs afterwards; false when it did not
  // start, is faulted (its code may still run: it cannot be started again in this process), or the
  // host is not serving or has no epoch (set_epoch(0): the node is fencing itself).
  bool restart(const std::string& id);
  // Between start_all and stop_all. Thread-safe.
  bool serving() const;
  // "" when every enabled plugin runs and none reports FAILED; else what is missing, one clause
  // per plugin ("mq failed: <why>"). Thread-safe.
  std::string not_serving() const;

  // `emsnode check`: load and create every enabled plugin (create binds nothing), then destroy
  // them. Does not stop at the first refusal: returns one result per enabled plugin, in config
  // order. Call instead of load/create_all, once.
  std::vector<CheckResult> check();

  // The fencing epoch plugins read with current_epoch(); 0 while the node is not active. Their
  // fenced writes are checked against it and the node id.
  void set_epoch(std::uint64_t epoch);
  // The shared database plugins use through db_query, db_write, db_exec and db_migrate. Without
  // one (the default, or null) those calls fail with "no shared database". `database` must
  // outlive this host; set it before create_all, so that create may already read.
  void set_database(db::Database* database);
  // The shared file store plugins use through the store_* services, under their own folder
  // `plugins/<id>/`. Without one (the default, or null) those calls fail with "no shared file
  // store". `store` must outlive this host; set it before create_all, as the database.
  void set_store(store::FileStore* store);
  metrics::MetricsRegistry& metrics() { return *shared_->metrics; }

  // Thread-safe: for the admin API while the node runs. In dependency order.
  std::vector<PluginStatus> status() const;
  // The commands the enabled plugin `id` declares, or null when no such plugin is loaded. Valid
  // after load(); the declarations never change.
  const std::vector<CommandSpec>* commands(std::string_view id) const;
  // Runs the command `command` of plugin `id` with `args_json` (a JSON object; empty: none).
  // Thread-safe; blocks up to plugin_host.command_timeout. Never throws for the caller's input.
  CommandAnswer run_command(std::string_view id, std::string_view command,
                            std::string_view args_json);

  // Found in the search directories but not enabled. Valid after load() or check().
  std::vector<AvailablePlugin> available() const;
  const std::vector<std::filesystem::path>& search_dirs() const { return search_dirs_; }

 private:
  struct Slot {
    std::size_t section = 0;  // index into enabled_
    std::unique_ptr<PluginInstance> instance;
    std::vector<std::size_t> required;   // indices into slots_: requirements and exporters
    std::vector<std::size_t> exporters;  // indices into slots_: the exporters of what it uses
    PluginState state = PluginState::loaded;
    std::string last_error;
    std::size_t leaked_timers = 0;
    std::size_t restarts = 0;
  };

  void prepare(std::vector<std::string>* errors);
  bool is_enabled(std::string_view id) const;
  config::Values validate_section(const config::PluginSection& section,
                                  const Manifest& manifest) const;
  void start_one(Slot& slot);
  void stop_until(std::optional<std::chrono::steady_clock::time_point> until);
  void stop_one(Slot& slot, bool after_failed_start, std::chrono::milliseconds deadline);
  void set_state(Slot& slot, PluginState state, std::string error = {});
  PluginState state_of(const Slot& slot) const;

  const std::filesystem::path config_file_;
  const std::vector<const config::PluginSection*> enabled_;  // in config order
  const std::vector<std::string> disabled_;                  // ids with enabled = false
  const std::chrono::milliseconds start_timeout_;
  const std::chrono::milliseconds stop_deadline_;
  const std::chrono::milliseconds command_timeout_;
  const std::vector<std::filesystem::path> search_dirs_;
  log::Logger log_{"host"};

  std::shared_ptr<HostShared> shared_;
  std::unique_ptr<Executor> executor_;  // outlives every slot's instance (declared before)
  PluginCatalog catalog_;
  std::mutex lifecycle_mutex_;  // one lifecycle call at a time: start_all, stop, restart
  bool serving_ = false;        // lifecycle_mutex_'s
  bool destroyed_ = false;      // lifecycle_mutex_'s: destroy_all ran
  mutable std::mutex mutex_;    // guards slots_' states and errors, and a copy of serving_
  bool serving_seen_ = false;   // serving_, for readers that must not wait on a lifecycle call
  std::vector<Slot> slots_;     // in dependency order
};

}  // namespace emsnode::host
