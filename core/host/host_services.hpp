// The services the host offers plugins through the C ABI (`emsnode_host_api`), and the
// per-plugin context behind the ABI's opaque `emsnode_host_ctx`.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/schema.hpp"
#include "db/database.hpp"
#include "emsnode/plugin_abi.h"
#include "host/executor.hpp"
#include "host/manifest.hpp"
#include "metrics/metrics.hpp"

namespace emsnode::store {
class FileStore;
}

namespace emsnode::host {

enum class Health { ok, degraded, failed };
std::string_view health_name(Health health);

struct HealthReport {
  Health health = Health::ok;
  std::string detail;
};

enum class Severity { info, warning, critical };
std::string_view severity_name(Severity severity);

// One fact of a plugin's status panel (status_fact).
struct StatusFact {
  std::string name;
  std::string value;
  Severity severity = Severity::info;
};

// The bounds status_fact enforces, as plugin_abi.h states them.
constexpr std::size_t kMaxFactName = 64;
constexpr std::size_t kMaxFactValue = 256;
constexpr std::size_t kMaxFacts = 32;

// What every plugin context shares with the host. Held by shared_ptr so that a plugin call the
// host abandoned (stop past its deadline) can still use host services safely while it runs.
struct HostShared {
  std::string node_id;
  std::atomic<std::uint64_t> epoch{0};
  std::shared_ptr<metrics::MetricsRegistry> metrics;
  // The shared database behind the db_* services, or null: they then fail with "no shared
  // database" (emsnode-plugin-check has none). Owned by the node; see PluginHost::set_database.
  std::atomic<db::Database*> database{nullptr};
  // The shared file store behind the store_* services, or null: they then fail with "no shared
  // file store". Owned by the node; see PluginHost::set_store.
  std::atomic<store::FileStore*> store{nullptr};
};

// The most a command's answer may hold (command_reply): what the admin endpoint answers.
inline constexpr std::size_t kCommandReplyLimit = 1024 * 1024;

// What an `emsnode_command_call*` points to: one call of a control command. Its handler's thread
// fills reply and failure; the host reads them once the handler has returned, and never after it
// gave up on a late one (whose thread keeps the object alive until it returns).
struct CommandCall {
  std::string command;
  config::Values args;  // checked against the command's declaration, defaults filled in
  std::optional<std::string> reply;
  std::string failure;

  emsnode_command_call* handle();
  static CommandCall& from(emsnode_command_call* call);
};

// A plugin's handler of one command, as command_handle attached it.
struct CommandHandler {
  emsnode_command_fn fn = nullptr;
  void* user_data = nullptr;
};

// One plugin instance's view of the host; `emsnode_host_ctx*` is a pointer to one of these.
// Thread-safe: plugins call host services from any thread.
class PluginContext {
 public:
  // `commands`: what its manifest declares, each to get a handler in create. `exports` and
  // `uses`: the shared APIs its manifest declares; it must hand over each export in create, and
  // may take each use once the host bound it to its exporter (bind_use).
  PluginContext(std::string plugin_id, config::Values values, std::shared_ptr<HostShared> shared,
                std::shared_ptr<TaskGroup> tasks, std::vector<CommandSpec> commands = {},
                std::vector<ApiExport> exports = {}, std::vector<ApiUse> uses = {});
  PluginContext(const PluginContext&) = delete;
  PluginContext& operator=(const PluginContext&) = delete;

  emsnode_host_ctx* handle();
  static PluginContext& from(emsnode_host_ctx* ctx);

  const std::string& plugin_id() const { return plugin_id_; }
  const std::string& log_component() const { return log_component_; }
  const config::Values& values() const { return values_; }
  HostShared& shared() { return *shared_; }
  TaskGroup& tasks() { return *tasks_; }

  // The message a failing create/start/stop left with set_error; take_error also clears it so
  // that the next call starts without a stale message.
  void set_error(std::string message);
  std::string take_error();

  // Whether create is running: command_handle and api_export are accepted only then.
  void set_creating(bool creating) { creating_.store(creating, std::memory_order_release); }
  bool creating() const { return creating_.load(std::memory_order_acquire); }

  // ---- shared APIs ----
  // Binds the declared use of `api` ("license.v1") to the plugin that exports it. Before create;
  // an unbound use (its exporter was not loaded) fails api_use saying so.
  void bind_use(std::string_view api, std::shared_ptr<PluginContext> exporter);
  // api_export: "" when accepted, else why not.
  std::string export_api(std::string_view api, std::uint32_t minor, const void* table);
  // api_use: "" when `*table` and `*minor` are set, else why not.
  std::string use_api(std::string_view api, const void** table, std::uint32_t* minor) const;
  // The declared exports create left without a table, as "license.v1, queue.v2".
  std::string missing_exports() const;

  // ---- status facts ----
  // status_fact: "" when applied, else why not (the facts are then unchanged).
  std::string set_fact(std::string_view name, std::string_view value, Severity severity);
  std::vector<StatusFact> facts() const;

  void report_health(Health health, std::string detail);
  void reset_health();
  HealthReport health() const;

  // Whether the plugin may write to the shared database and file store: from the moment the host
  // calls start until stop returns (start may migrate and write, stop may flush).
  void set_writable(bool writable) { writable_.store(writable, std::memory_order_release); }
  bool writable() const { return writable_.load(std::memory_order_acquire); }

  // ---- control commands ----
  // command_handle: "" when attached, else why not.
  std::string attach_command(std::string_view name, CommandHandler handler);
  std::optional<CommandHandler> command_handler(std::string_view name) const;
  // The declared commands that create left without a handler.
  std::vector<std::string> unhandled_commands() const;
  const std::vector<CommandSpec>& commands() const { return commands_; }

 private:
  const std::string plugin_id_;
  const std::string log_component_;  // "plugin.<id>"
  const config::Values values_;      // never modified: getters hand out views into it
  const std::shared_ptr<HostShared> shared_;
  const std::shared_ptr<TaskGroup> tasks_;

  const std::vector<CommandSpec> commands_;

  std::atomic<bool> writable_{false};
  std::atomic<bool> creating_{false};

  struct Exported {
    ApiExport declared;
    const void* table = nullptr;  // set by api_export in create
  };
  struct Used {
    ApiUse declared;
    std::shared_ptr<PluginContext> exporter;
  };

  mutable std::mutex mutex_;
  std::string error_;
  HealthReport health_;
  std::map<std::string, CommandHandler, std::less<>> handlers_;
  std::vector<Exported> exports_;  // set in create, read-only afterwards
  std::vector<Used> uses_;         // declared; bound before create, read-only afterwards
  std::vector<StatusFact> facts_;  // in the order first set
};

// The host API table: every member it has built filled, struct_size covering exactly those.
const emsnode_host_api& host_api();

}  // namespace emsnode::host
