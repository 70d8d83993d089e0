#include "host/plugin_host.hpp"

#include <algorithm>
#include <utility>

#include <boost/dll/runtime_symbol_info.hpp>

#include <nlohmann/json.hpp>

#include "host/command_args.hpp"
#include "host/dependency_order.hpp"
#include "host/plugin_loader.hpp"

namespace emsnode::host {
namespace {

namespace fs = std::filesystem;

std::vector<const config::PluginSection*> enabled_sections(const config::NodeConfig& config) {
  std::vector<const config::PluginSection*> sections;
  for (const config::PluginSection& section : config.plugins) {
    if (section.enabled) sections.push_back(&section);
  }
  return sections;
}

std::vector<std::string> disabled_ids(const config::NodeConfig& config) {
  std::vector<std::string> ids;
  for (const config::PluginSection& section : config.plugins) {
    if (!section.enabled) ids.push_back(section.id);
  }
  return ids;
}

std::string ms(std::chrono::milliseconds duration) {
  return std::to_string(duration.count());
}

// Why a plugin's create failed. A plugin's ConfigError reads "config key 'KEY': problem"
// (sdk/plugin.hpp); when KEY was written in the node config, the reason is put at its place
// there, FILE:LINE:COL, as the host's own checks of the section are.
std::string create_failure(PluginInstance& instance, const std::string& error,
                           const fs::path& config_file) {
  const std::string failed = instance.manifest().library.string() + ": create failed: " + error;
  constexpr std::string_view kPrefix = "config key '";
  const std::size_t end = error.find('\'', kPrefix.size());
  if (error.rfind(kPrefix, 0) != 0 || end == std::string::npos) return failed;
  const auto where = instance.context().values().source(
      std::string_view(error).substr(kPrefix.size(), end - kPrefix.size()));
  if (!where) return failed;
  return config::ConfigError::at(*where, config_file.string(),
                                 "[plugins." + instance.manifest().id + "] " + error)
      .what();
}

}  // namespace

std::string_view state_name(PluginState state) {
  switch (state) {
    case PluginState::loaded:
      return "loaded";
    case PluginState::created:
      return "created";
    case PluginState::starting:
      return "starting";
    case PluginState::running:
      return "running";
    case PluginState::stopping:
      return "stopping";
    case PluginState::stopped:
      return "stopped";
    case PluginState::failed:
      return "failed";
    case PluginState::faulted:
      return "faulted";
  }
  return "unknown";
}

bool is_down(const PluginStatus& status) {
  return status.state == PluginState::failed || status.state == PluginState::faulted ||
         (status.state == PluginState::running && status.health == Health::failed);
}

PluginHost::PluginHost(const config::NodeConfig& config)
    : PluginHost(config, default_search_dirs(config),
                 std::make_shared<metrics::MetricsRegistry>()) {}

PluginHost::PluginHost(const config::NodeConfig& config, std::vector<fs::path> search_dirs,
                       std::shared_ptr<metrics::MetricsRegistry> metrics)
    : config_file_(config.file),
      enabled_(enabled_sections(config)),
      disabled_(disabled_ids(config)),
      start_timeout_(config.plugin_host.start_timeout),
      stop_deadline_(config.plugin_host.stop_deadline),
      command_timeout_(config.plugin_host.command_timeout),
      search_dirs_(std::move(search_dirs)),
      shared_(std::make_shared<HostShared>()),
      executor_(std::make_unique<Executor>(config.plugin_host.stop_deadline,
                                           config.plugin_host.slow_callback)) {
  shared_->node_id = config.node_id;
  shared_->metrics = metrics ? std::move(metrics) : std::make_shared<metrics::MetricsRegistry>();
}

PluginHost::~PluginHost() {
  destroy_all();
  // A faulted plugin's thread may outlive the host, the database and the store: let its calls
  // fail cleanly.
  shared_->database.store(nullptr);
  shared_->store.store(nullptr);
}

fs::path PluginHost::builtin_plugin_dir() {
  const fs::path program(boost::dll::program_location().string());
  return (program.parent_path() / ".." / "lib" / "emsnode" / "plugins").lexically_normal();
}

std::vector<fs::path> PluginHost::default_search_dirs(const config::NodeConfig& config) {
  std::vector<fs::path> dirs{builtin_plugin_dir()};
  dirs.insert(dirs.end(), config.plugin_host.dirs.begin(), config.plugin_host.dirs.end());
  return dirs;
}

config::Values PluginHost::validate_section(const config::PluginSection& section,
                                            const Manifest& manifest) const {
  // The section keeps its source regions, so errors point into the node config file.
  config::Context context;
  context.file = config_file_.string();
  context.base_dir = config_file_.parent_path();
  context.table = "plugins." + section.id;
  try {
    return config::validate(section.settings, manifest.config_schema, context);
  } catch (const config::ConfigError& e) {
    throw HostError(e.what());
  }
}

void PluginHost::prepare(std::vector<std::string>* errors) {
  const auto fail = [errors](std::size_t index, const std::string& message) {
    if (errors == nullptr) throw HostError(message);
    if ((*errors)[index].empty()) (*errors)[index] = message;
  };
  catalog_ = PluginCatalog::scan(search_dirs_);
  for (const CatalogProblem& problem : catalog_.problems()) {
    if (!is_enabled(problem.id)) {
      log_.warning("plugin.ignored", {{"id", problem.id}, {"reason", problem.message}});
    }
  }

  // Manifests and config sections first: nothing of a plugin runs before all of them pass.
  const std::size_t count = enabled_.size();
  std::vector<const Manifest*> manifests(count, nullptr);
  std::vector<config::Values> values(count);
  std::vector<DependencyNode> nodes(count);
  for (std::size_t i = 0; i < count; ++i) {
    nodes[i].id = enabled_[i]->id;
    try {
      const Manifest& manifest = catalog_.find(enabled_[i]->id);
      manifests[i] = &manifest;
      nodes[i].required = manifest.required_plugins;
      nodes[i].exports = manifest.exports;
      nodes[i].uses = manifest.uses;
      nodes[i].manifest = manifest.file;
      // Before its schema is trusted to validate anything.
      check_manifest_abi(manifest);
      check_file_trust(manifest.file);
      values[i] = validate_section(*enabled_[i], manifest);
    } catch (const HostError& e) {
      fail(i, e.what());
    }
  }
  const DependencyOrder order = order_by_dependencies(nodes);
  for (std::size_t i = 0; i < count; ++i) {
    if (!order.problems[i].empty()) fail(i, order.problems[i]);
  }

  std::vector<Slot> slots;
  std::vector<std::size_t> slot_of(count, count);
  for (const std::size_t i : order.order) {
    if (errors != nullptr && !(*errors)[i].empty()) continue;
    try {
      LoadedLibrary library = load_library(*manifests[i]);
      Slot slot;
      slot.section = i;
      // Every requirement and exporter is enabled (order_by_dependencies checked) and ordered
      // before; under check() one that failed to load has no slot.
      for (const std::size_t required : order.edges[i]) {
        if (slot_of[required] != count) slot.required.push_back(slot_of[required]);
      }
      slot.instance = std::make_unique<PluginInstance>(std::move(library), std::move(values[i]),
                                                       shared_, *executor_);
      for (std::size_t u = 0; u < manifests[i]->uses.size(); ++u) {
        const std::size_t exporter = slot_of[order.exporters[i][u]];
        if (exporter == count) continue;  // under check(): it failed to load
        slot.instance->context().bind_use(manifests[i]->uses[u].api(),
                                          slots[exporter].instance->shared_context());
        slot.exporters.push_back(exporter);
      }
      slot_of[i] = slots.size();
      slots.push_back(std::move(slot));
    } catch (const HostError& e) {
      fail(i, e.what());
      continue;
    }
    const Manifest& manifest = slots.back().instance->manifest();
    log_.info("plugin.loaded", {{"id", manifest.id},
                                {"version", manifest.version},
                                {"abi", std::to_string(manifest.abi_major) + "." +
                                            std::to_string(manifest.abi_minor)},
                                {"file", manifest.library.string()}});
  }
  std::lock_guard<std::mutex> lock(mutex_);
  slots_ = std::move(slots);
}

void PluginHost::load() {
  prepare(nullptr);
}

void PluginHost::create_all() {
  for (Slot& slot : slots_) {
    if (state_of(slot) != PluginState::loaded) continue;
    const CallOutcome outcome = slot.instance->create();
    const Manifest& manifest = slot.instance->manifest();
    if (outcome.result != CallResult::ok) {
      set_state(slot, PluginState::failed, outcome.error);
      throw HostError(create_failure(*slot.instance, outcome.error, config_file_));
    }
    set_state(slot, PluginState::created);
    log_.info("plugin.created", {{"id", manifest.id}, {"elapsed_ms", ms(outcome.elapsed)}});
  }
}

bool PluginHost::start_all() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
  serving_ = true;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    serving_seen_ = true;
  }
  bool all_running = true;
  for (Slot& slot : slots_) {
    const PluginState state = state_of(slot);
    if (state == PluginState::created || state == PluginState::stopped ||
        state == PluginState::failed) {
      start_one(slot);
    }
    all_running = all_running && state_of(slot) == PluginState::running;
  }
  return all_running;
}

void PluginHost::start_one(Slot& slot) {
  const Manifest& manifest = slot.instance->manifest();
  for (const std::size_t required : slot.required) {
    if (state_of(slots_[required]) == PluginState::running) continue;
    const std::string& dependency = slots_[required].instance->manifest().id;
    set_state(slot, PluginState::failed, "dependency_failed: " + dependency + " is not running");
    log_.error("plugin.start_failed",
               {{"id", manifest.id}, {"reason", "dependency_failed"}, {"dependency", dependency}});
    return;
  }

  set_state(slot, PluginState::starting);
  const CallOutcome outcome = slot.instance->start(start_timeout_);
  if (outcome.result == CallResult::ok) {
    set_state(slot, PluginState::running);
    log_.info(
        "plugin.started",
        {{"id", manifest.id}, {"version", manifest.version}, {"elapsed_ms", ms(outcome.elapsed)}});
    return;
  }
  const bool timed_out = outcome.result == CallResult::timed_out;
  set_state(slot, PluginState::failed, outcome.error);
  log_.error("plugin.start_failed", {{"id", manifest.id},
                                     {"reason", timed_out ? "timeout" : "error"},
                                     {"detail", outcome.error},
                                     {"elapsed_ms", ms(outcome.elapsed)}});
  // The ABI makes stop valid after a failed start: it releases whatever start got hold of.
  stop_one(slot, true, stop_deadline_);
}

void PluginHost::stop_all() {
  stop_until(std::nullopt);
}

void PluginHost::stop_all(std::chrono::milliseconds budget) {
  stop_until(std::chrono::steady_clock::now() + budget);
}

void PluginHost::stop_until(std::optional<std::chrono::steady_clock::time_point> until) {
  {
    // First, so that a load balancer asking not_serving() stops at once.
    std::lock_guard<std::mutex> lock(mutex_);
    serving_seen_ = false;
  }
  std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
  serving_ = false;
  for (auto slot = slots_.rbegin(); slot != slots_.rend(); ++slot) {
    if (state_of(*slot) != PluginState::running) continue;
    auto deadline = stop_deadline_;
    if (until) {
      // Past the budget a plugin still gets a moment to return; one that does not is faulted,
      // so the node stops serving in time whatever a plugin does.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *until - std::chrono::steady_clock::now());
      deadline = std::clamp(left, std::chrono::milliseconds(1), stop_deadline_);
    }
    stop_one(*slot, false, deadline);
  }
}

void PluginHost::stop_one(Slot& slot, bool after_failed_start, std::chrono::milliseconds deadline) {
  const Manifest& manifest = slot.instance->manifest();
  if (!after_failed_start) set_state(slot, PluginState::stopping);
  const CallOutcome outcome = slot.instance->stop(deadline);

  if (outcome.leaked_timers > 0) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot.leaked_timers += outcome.leaked_timers;
    }
    log_.warning("plugin.timer_leaked",
                 {{"id", manifest.id}, {"count", std::to_string(outcome.leaked_timers)}});
  }
  switch (outcome.result) {
    case CallResult::abandoned:
      set_state(slot, PluginState::faulted, outcome.error);
      log_.error(
          "plugin.stop_deadline_missed",
          {{"id", manifest.id}, {"deadline", ms(deadline) + "ms"}, {"detail", outcome.error}});
      log_.error("plugin.faulted", {{"id", manifest.id},
                                    {"reason", "stop_deadline_missed"},
                                    {"action", "abandoned; its library stays loaded"}});
      return;
    case CallResult::failed:
      log_.error("plugin.stop_failed", {{"id", manifest.id}, {"detail", outcome.error}});
      break;
    case CallResult::ok:
    case CallResult::timed_out:
      break;
  }
  if (after_failed_start) return;  // stays failed, with the start's reason
  set_state(slot, PluginState::stopped, outcome.error);
  log_.info("plugin.stopped", {{"id", manifest.id}, {"elapsed_ms", ms(outcome.elapsed)}});
}

bool PluginHost::restart(const std::string& id) {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
  // A fencing node drops its epoch before it stops its plugins: nothing starts in between.
  if (!serving_ || shared_->epoch.load(std::memory_order_acquire) == 0) return false;
  const auto found = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& slot) {
    return slot.instance->manifest().id == id;
  });
  if (found == slots_.end() || found->instance->faulted()) return false;
  const std::size_t index = static_cast<std::size_t>(found - slots_.begin());
  // The plugin and every plugin that requires it, directly or not: later in dependency order.
  std::vector<bool> affected(slots_.size(), false);
  affected[index] = true;
  for (std::size_t i = index + 1; i < slots_.size(); ++i) {
    for (const std::size_t required : slots_[i].required) {
      affected[i] = affected[i] || affected[required];
    }
  }
  for (std::size_t i = slots_.size(); i-- > index;) {
    if (affected[i] && state_of(slots_[i]) == PluginState::running) {
      stop_one(slots_[i], false, stop_deadline_);
    }
  }
  for (std::size_t i = index; i < slots_.size(); ++i) {
    const PluginState state = state_of(slots_[i]);
    if (!affected[i] || (state != PluginState::stopped && state != PluginState::failed)) continue;
    start_one(slots_[i]);
  }
  if (state_of(slots_[index]) != PluginState::running) return false;
  std::size_t restarts = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    restarts = ++slots_[index].restarts;
  }
  shared_->metrics
      ->counter("emsnode_plugin_restarts_total",
                "Restarts that brought a down plugin back, by plugin", {{"plugin", id}})
      .add(1);
  log_.info("plugin.restarted", {{"id", id}, {"restarts", std::to_string(restarts)}});
  return true;
}

bool PluginHost::serving() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return serving_seen_;
}

std::string PluginHost::not_serving() const {
  std::string missing;
  for (const PluginStatus& plugin : status()) {
    if (plugin.state == PluginState::running && plugin.health != Health::failed) continue;
    if (!missing.empty()) missing += "; ";
    missing += plugin.id + " " +
               std::string(plugin.state == PluginState::running ? "reports failed"
                                                                : state_name(plugin.state));
    const std::string& why =
        plugin.state == PluginState::running ? plugin.health_detail : plugin.last_error;
    if (!why.empty()) missing += ": " + why;
  }
  return missing;
}

void PluginHost::destroy_all() {
  stop_all();
  std::lock_guard<std::mutex> lifecycle(lifecycle_mutex_);
  if (destroyed_) return;  // the destructor after an explicit call: said once is enough
  destroyed_ = true;
  for (auto slot = slots_.rbegin(); slot != slots_.rend(); ++slot) {
    PluginInstance& instance = *slot->instance;
    const std::string& id = instance.manifest().id;
    if (instance.faulted()) {
      log_.warning("plugin.destroy_skipped", {{"id", id}, {"reason", "faulted"}});
      continue;
    }
    const std::size_t index = static_cast<std::size_t>(&*slot - slots_.data());
    const auto faulted_user = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& user) {
      return user.instance->faulted() &&
             std::find(user.exporters.begin(), user.exporters.end(), index) != user.exporters.end();
    });
    if (faulted_user != slots_.end() && instance.created()) {
      log_.warning("plugin.destroy_skipped", {{"id", id},
                                              {"reason", "user_faulted"},
                                              {"user", faulted_user->instance->manifest().id}});
      instance.keep_loaded();
      continue;
    }
    if (!instance.created()) continue;
    const CallOutcome outcome = instance.destroy(command_timeout_);
    if (outcome.result != CallResult::ok) {
      log_.error("plugin.destroy_failed", {{"id", id}, {"detail", outcome.error}});
    } else {
      log_.info("plugin.destroyed", {{"id", id}, {"elapsed_ms", ms(outcome.elapsed)}});
    }
    // The library stays loaded until the host goes; without an instance it is just loaded.
    set_state(*slot, PluginState::loaded, slot->last_error);
  }
}

std::vector<CheckResult> PluginHost::check() {
  std::vector<std::string> errors(enabled_.size());
  prepare(&errors);
  std::vector<std::chrono::milliseconds> elapsed(enabled_.size());
  std::vector<config::Values> configs(enabled_.size());
  for (Slot& slot : slots_) {
    configs[slot.section] = slot.instance->context().values();
    const CallOutcome outcome = slot.instance->create();
    elapsed[slot.section] = outcome.elapsed;
    if (outcome.result != CallResult::ok) {
      errors[slot.section] = create_failure(*slot.instance, outcome.error, config_file_);
      set_state(slot, PluginState::failed, outcome.error);
      continue;
    }
    set_state(slot, PluginState::created);
  }
  destroy_all();

  std::vector<CheckResult> results;
  for (std::size_t i = 0; i < enabled_.size(); ++i) {
    CheckResult result;
    result.id = enabled_[i]->id;
    const auto& manifests = catalog_.manifests();
    const auto manifest = std::find_if(manifests.begin(), manifests.end(),
                                       [&](const Manifest& m) { return m.id == result.id; });
    if (manifest != manifests.end()) {
      result.version = manifest->version;
      result.library = manifest->library;
    }
    result.ok = errors[i].empty();
    result.error = errors[i];
    result.create_elapsed = elapsed[i];
    result.config = std::move(configs[i]);
    results.push_back(std::move(result));
  }
  return results;
}

void PluginHost::set_epoch(std::uint64_t epoch) {
  shared_->epoch.store(epoch, std::memory_order_release);
}

void PluginHost::set_database(db::Database* database) {
  shared_->database.store(database);
}

void PluginHost::set_store(store::FileStore* store) {
  shared_->store.store(store);
}

std::vector<PluginStatus> PluginHost::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<PluginStatus> result;
  for (const Slot& slot : slots_) {
    const Manifest& manifest = slot.instance->manifest();
    const HealthReport health = slot.instance->context().health();
    PluginStatus status;
    status.id = manifest.id;
    status.name = manifest.name;
    status.version = manifest.version;
    status.description = manifest.description;
    status.library = manifest.library;
    status.state = slot.state;
    status.health = health.health;
    status.health_detail = health.detail;
    status.last_error = slot.last_error;
    status.leaked_timers = slot.leaked_timers;
    status.restarts = slot.restarts;
    status.required = enabled_[slot.section]->required;
    status.facts = slot.instance->context().facts();
    result.push_back(std::move(status));
  }
  return result;
}

const std::vector<CommandSpec>* PluginHost::commands(std::string_view id) const {
  for (const Slot& slot : slots_) {
    if (slot.instance->manifest().id == id) return &slot.instance->manifest().commands;
  }
  return nullptr;
}

CommandAnswer PluginHost::run_command(std::string_view id, std::string_view command,
                                      std::string_view args_json) {
  const auto began = std::chrono::steady_clock::now();
  const auto answer = [&](unsigned status, std::string_view outcome, std::string body,
                          bool not_active = false) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
    const log::Fields fields{{"id", std::string(id)},
                             {"command", std::string(command)},
                             {"outcome", std::string(outcome)},
                             {"ms", ms(elapsed)}};
    if (status < 500) {
      log_.info("plugin.command", fields);
    } else {
      log_.warning("plugin.command", fields);
    }
    return CommandAnswer{status, std::move(body), not_active};
  };
  const auto error = [](const std::string& message) {
    return nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::replace);
  };

  const auto slot = std::find_if(slots_.begin(), slots_.end(),
                                 [&](const Slot& s) { return s.instance->manifest().id == id; });
  if (slot == slots_.end()) {
    return answer(404, "no_such_plugin",
                  error("no plugin " + config::quote(id) + " is enabled on this node"));
  }
  const Manifest& manifest = slot->instance->manifest();
  const CommandSpec* spec = find_command(manifest, command);
  if (spec == nullptr) {
    std::string known;
    for (const CommandSpec& c : manifest.commands) known += (known.empty() ? "" : ", ") + c.name;
    return answer(404, "no_such_command",
                  error("plugin " + manifest.id + " has no command " + config::quote(command) +
                        (known.empty() ? " (it has none)" : " (its commands: " + known + ")")));
  }
  if (state_of(*slot) == PluginState::faulted) {
    return answer(503, "faulted",
                  error(manifest.id + " is faulted (its code may still run): its commands are "
                                      "refused until the node restarts"));
  }
  config::Values args;
  try {
    args = parse_command_args(*spec, args_json, config_file_.parent_path());
  } catch (const CommandArgsError& e) {
    return answer(400, "bad_arguments", error(e.what()));
  }

  const CommandOutcome outcome =
      slot->instance->run_command(*spec, std::move(args), command_timeout_);
  switch (outcome.result) {
    case CommandResult::not_started:
      return answer(409, "not_active", error(outcome.error), spec->active_only);
    case CommandResult::busy:
      return answer(503, "busy", error(outcome.error));
    case CommandResult::timed_out:
      return answer(504, "timeout", error(outcome.error));
    case CommandResult::threw:
      return answer(500, "threw", error(outcome.error));
    case CommandResult::answered:
      break;
  }
  switch (outcome.status) {
    case EMSNODE_OK:
      return answer(200, "ok", outcome.reply);
    case EMSNODE_INVALID:
      return answer(400, "invalid", error(outcome.error));
    case EMSNODE_NOT_FOUND:
      return answer(404, "not_found", error(outcome.error));
    case EMSNODE_FENCED:
      return answer(409, "fenced", error(outcome.error));
    default:
      return answer(500, "error", error(outcome.error));
  }
}

std::vector<AvailablePlugin> PluginHost::available() const {
  std::vector<AvailablePlugin> result;
  for (const Manifest& manifest : catalog_.manifests()) {
    if (is_enabled(manifest.id)) continue;
    const bool disabled =
        std::find(disabled_.begin(), disabled_.end(), manifest.id) != disabled_.end();
    result.push_back({manifest.id, manifest.name, manifest.version, manifest.description,
                      manifest.file, disabled});
  }
  return result;
}

bool PluginHost::is_enabled(std::string_view id) const {
  return std::any_of(enabled_.begin(), enabled_.end(),
                     [&](const config::PluginSection* section) { return section->id == id; });
}

void PluginHost::set_state(Slot& slot, PluginState state, std::string error) {
  std::lock_guard<std::mutex> lock(mutex_);
  slot.state = state;
  slot.last_error = std::move(error);
}

PluginState PluginHost::state_of(const Slot& slot) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return slot.state;
}

}  // namespace emsnode::host
