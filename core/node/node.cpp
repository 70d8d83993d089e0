#include "node/node.hpp"

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "admin/admin_server.hpp"
#include "admin/local_token.hpp"
#include "admin/store_model.hpp"
#include "db/file_lock.hpp"
#include "db/node_registry.hpp"
#include "db/postgres_database.hpp"
#include "db/schema.hpp"
#include "db/settings.hpp"
#include "host/command_args.hpp"
#include "host/plugin_host.hpp"
#include "host/supervisor.hpp"
#include "metrics/metrics.hpp"
#include "role/lease_store.hpp"
#include "role/peers.hpp"
#include "role/role_manager.hpp"
#include "store/file_store.hpp"

namespace emsnode::node {
namespace {

using namespace std::chrono_literals;

role::Timers timers_of(const config::RoleConfig& role) {
  return {role.lease_ttl, role.renew_interval, role.renew_deadline, role.poll_interval};
}

std::vector<std::string> strings_of(const std::vector<std::filesystem::path>& paths) {
  return {paths.begin(), paths.end()};
}

role::Hooks hooks_of(const config::RoleConfig& role) {
  return {strings_of(role.pre_promote), strings_of(role.post_promote), strings_of(role.pre_demote),
          strings_of(role.post_demote), role.hook_timeout};
}

// Tells this run of the node apart from an earlier one with the same id in the registry.
std::string random_instance_id() {
  std::random_device random;
  std::uniform_int_distribution<unsigned> byte(0, 255);
  std::string id;
  for (int i = 0; i < 16; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    const unsigned b = byte(random);
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

bool is_postgres(const config::NodeConfig& config) {
  return config.database.backend == "postgresql";
}

// The servers of the url that are not on this machine: TLS to them must authenticate them.
std::vector<std::string> remote_hosts(const db::PostgresTarget& target) {
  std::vector<std::string> remote;
  for (const std::string& host : target.hosts) {
    if (!db::is_loopback_host(host)) remote.push_back(host);
  }
  return remote;
}

db::PostgresOptions postgres_options(const config::DatabaseConfig& database) {
  db::PostgresOptions options;
  options.url = database.url;
  if (database.password) options.password = database.password->reveal();
  options.connect_timeout = database.connect_timeout;
  options.statement_timeout = database.statement_timeout;
  options.sslmode = postgres_sslmode(database);
  options.sslrootcert = database.sslrootcert.string();
  return options;
}

// A connection to the configured database. PostgreSQL connects at its first call, so this does
// not fail when the server is down.
// `for_lease`: the lease's own connection, whose writes go first (SQLite).
std::unique_ptr<db::Database> open_database(const config::NodeConfig& config,
                                            bool for_lease = false) {
  if (is_postgres(config)) return db::open_postgres(postgres_options(config.database));
  return db::open_sqlite(config.database.path.string(),
                         db::SqliteOptions{config.database.busy_timeout.count(), for_lease});
}

// Where the lock files of this node live: beside the SQLite file, which all nodes of the host
// share. With PostgreSQL, in the temporary folder under a name derived from the database, so that
// a node's identity lock (node-<id>) means what it means on SQLite: no other process of this host
// runs under this id on this database.
// SQLite's lock files sit beside its database file. PostgreSQL's are named for the database in a
// folder all of this user's processes on the host share (two configs with one node id must meet
// there) and no other user can write to: never in /tmp, where another user could plant a file or
// a link first.
std::string lock_base(const config::NodeConfig& config, const db::Database& database) {
  if (!is_postgres(config)) return config.database.path.string();
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a: stable across builds and hosts
  for (const unsigned char c : database.describe()) hash = (hash ^ c) * 1099511628211ull;
  char name[32];
  std::snprintf(name, sizeof name, "emsnode-%016llx", static_cast<unsigned long long>(hash));
  return (db::runtime_lock_dir(config.data_dir) / name).string();
}

// [admin] as the endpoint takes it; with no token in the config, the one in data_dir (made on
// the first start), which the CLI run by a user who can read it uses.
admin::ServerSecurity admin_security(const config::NodeConfig& config, const log::Logger& log) {
  admin::ServerSecurity security;
  if (config.admin.token) {
    security.token = config.admin.token->reveal();
  } else {
    security.token = admin::ensure_local_token(config.data_dir);
    log.info("admin.local_token", {{"file", admin::local_token_path(config.data_dir).string()}});
  }
  security.tls_cert = config.admin.tls_cert;
  security.tls_key = config.admin.tls_key;
  security.host_names = config.admin.host_names;
  security.open_reads = config.admin.open_reads;
  return security;
}

// Until the database answers, a node whose PostgreSQL server is down at start-up is passive with
// reason db_unreachable, and says so on its admin endpoint; it finishes starting (schema,
// registry, plugins) once the server is back. The nodes of a cluster must come up in any order.
// Returns false when the node was asked to stop first.
bool await_database(db::Database& database, const config::NodeConfig& config,
                    const admin::ServerSecurity& security, std::string_view version,
                    boost::asio::io_context& events, const bool& stop_requested,
                    const log::Logger& log) {
  std::string reason;
  const auto reachable = [&] {
    try {
      database.now_ms();
      return true;
    } catch (const db::UnreachableError& e) {
      reason = e.what();
      return false;
    }
  };
  if (reachable()) return true;
  log.warning("db.unreachable_at_start", {{"database", database.describe()}, {"reason", reason}});
  const auto refuse = [&]() -> void {
    throw admin::OperationError::unavailable("the database is unreachable: " + reason);
  };
  admin::Model model;
  model.status = [&] {
    admin::StatusView view;
    view.node_id = config.node_id;
    view.version = std::string(version);
    view.role = std::string(role::role_name(role::Role::passive));
    view.not_active_reason = std::string(role::reason::kDbUnreachable);
    return view;
  };
  model.health = [] {
    const std::string why = "the database is unreachable";
    return admin::Health{{true, "live"}, {false, "not ready: " + why}, {false, "passive: " + why}};
  };
  model.metrics_text = [] { return std::string(); };
  model.switchover = [&](std::optional<std::string>) { refuse(); };
  model.pause = refuse;
  model.resume = refuse;
  model.settings = [&]() -> std::vector<admin::Setting> {
    refuse();
    return {};
  };
  model.set_setting = [&](const std::string&, const std::string&) { refuse(); };
  admin::AdminServer admin(config.admin.listen, security, std::move(model));
  admin.start();
  for (;;) {
    events.poll();
    if (stop_requested) return false;
    std::this_thread::sleep_for(config.role.poll_interval);
    if (reachable()) break;
  }
  log.info("db.reachable", {{"database", database.describe()}});
  admin.stop();
  return true;
}

// Creates or upgrades the schema when this node may; a node that may not waits as passive until
// one that may has done it (the seeds' ScriptDB=1 installer runs first).
void prepare_schema(db::Database& database, const config::NodeConfig& config,
                    const log::Logger& log) {
  const db::SchemaState state = db::inspect_core(database);
  log.info("db.schema", {{"db_version", std::to_string(state.db_version)},
                         {"binary_version", std::to_string(state.binary_version)},
                         {"status", std::string(db::schema_status_name(state.status))},
                         {"migrate", config.database.migrate ? "true" : "false"}});
  const bool behind =
      state.status == db::SchemaStatus::missing || state.status == db::SchemaStatus::older;
  if (behind && config.database.migrate) db::migrate_core(database, config.node_id);
  if (state.status == db::SchemaStatus::missing && !config.database.migrate) {
    throw db::DbError(database.describe() +
                      ": the database has no emsnode schema yet, and this node may not create it "
                      "([database] migrate = false); start a node with migrate = true first");
  }
}

// Why this binary may not serve on the database's schema now ("" when it may). The role manager
// asks before every attempt to take the lease; a schema that fits is re-read only now and then,
// since the answer changes only when an operator upgrades the cluster.
class SchemaBlocker {
 public:
  explicit SchemaBlocker(db::Database& database) : database_(database) {}

  std::string operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (fits_ && now - checked_at_ < kRecheck) return "";
    checked_at_ = now;
    const db::SchemaStatus status = db::inspect_core(database_).status;
    fits_ = status == db::SchemaStatus::current;
    switch (status) {
      case db::SchemaStatus::current:
        return "";
      case db::SchemaStatus::newer:
        return std::string(role::reason::kSchemaNewer);
      case db::SchemaStatus::older:
        return "schema_older";
      case db::SchemaStatus::missing:
        break;
    }
    return std::string(role::reason::kSchemaMissing);
  }

 private:
  static constexpr std::chrono::seconds kRecheck{5};
  db::Database& database_;
  bool fits_ = false;
  std::chrono::steady_clock::time_point checked_at_;
};

// Keeps this node's registry row fresh (last seen, role, reason) so that `status` on any node and
// the duplicate-id check see it alive.
class Heartbeat {
 public:
  Heartbeat(std::function<void()> beat, std::chrono::milliseconds period)
      : beat_(std::move(beat)), period_(period), thread_([this] { loop(); }) {}
  ~Heartbeat() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, period_, [this] { return stopping_; })) {
      lock.unlock();
      beat_();
      lock.lock();
    }
  }

  std::function<void()> beat_;
  std::chrono::milliseconds period_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

// The shared file store of `backend` ("share" or "blob") on the cluster's database: the one the
// config names, or a migration's target.
std::unique_ptr<store::FileStore> open_file_store(db::Database& database,
                                                  const config::NodeConfig& config,
                                                  const std::string& backend) {
  if (backend == "blob") return store::open_blob_store(database);
  // Created when missing, as data_dir is, so that a one-host cluster works as configured. An
  // unmounted share still shows: once the cluster has a store, the store refuses a directory
  // without its marker.
  std::filesystem::create_directories(config.store.path);
  return store::open_share_store(database, config.store.path.string());
}

// Removes what crashed or fenced-out puts left in the file store, once per promotion, on a
// thread of its own: a scan of a large share must not delay serving.
class StoreJanitor {
 public:
  StoreJanitor(store::FileStore& store, const log::Logger& log)
      : store_(store), log_(log), thread_([this] { loop(); }) {}
  ~StoreJanitor() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void request() {
    {
      std::lock_guard lock(mutex_);
      requested_ = true;
    }
    wake_.notify_all();
  }

 private:
  // Younger leftovers may belong to a put still running on this node.
  static constexpr std::chrono::minutes kMinAge{1};

  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return stopping_ || requested_; });
      if (stopping_) return;
      requested_ = false;
      lock.unlock();
      try {
        store_.collect_garbage(kMinAge);
      } catch (const std::exception& e) {
        log_.warning("store.garbage_collection_failed", {{"reason", e.what()}});
      }
      lock.lock();
    }
  }

  store::FileStore& store_;
  const log::Logger& log_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

// Why this node is not active: the role manager's reason, unless the node stands aside for its
// plugins (faulted, held off), which peers must see at once, whatever the role manager last
// tried. "" while active.
std::string not_active_reason(const role::RoleStatus& status, host::Supervisor& supervisor) {
  if (status.role == role::Role::active) return {};
  const std::string aside = supervisor.standing_aside();
  return aside.empty() ? status.not_active_reason : aside;
}

// The answers of /healthz/*, from what this process knows (no database: load balancers poll).
admin::Health health_of(const role::RoleManager& role, const host::PluginHost& plugins,
                        host::Supervisor& supervisor, const config::RoleConfig& timers) {
  const role::RoleStatus status = role.status();
  admin::Health health;
  const auto quiet = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - status.published_at);
  // The control loop wakes at least every poll_interval or renew_interval: two lease periods
  // of silence mean it is stuck.
  health.live.ok = quiet < 2 * timers.lease_ttl;
  health.live.says = health.live.ok ? "live"
                                    : "not live: the role manager has not run for " +
                                          std::to_string(quiet.count()) + " ms";
  const std::string missing = plugins.not_serving();
  if (status.role == role::Role::active) {
    health.active.ok = missing.empty();
    health.active.says = missing.empty() ? "active" : "active but not serving: " + missing;
    health.ready = health.active;
    if (health.ready.ok) health.ready.says = "ready: serving";
    return health;
  }
  std::string reason = not_active_reason(status, supervisor);
  if (status.paused) reason = role::reason::kPaused;
  health.active.says =
      std::string(role::role_name(status.role)) + (reason.empty() ? std::string() : ": " + reason);
  health.ready.ok = status.role == role::Role::passive && role::could_take_over(reason);
  health.ready.says = health.ready.ok ? "ready" : "not ready: " + reason;
  return health;
}

// `seen_recently`: a node whose registry row is older is shown down.
admin::StatusView status_view(const config::NodeConfig& config, std::string_view version,
                              const role::RoleManager& role, const host::PluginHost& plugins,
                              host::Supervisor& supervisor, db::NodeRegistry& registry,
                              std::chrono::milliseconds seen_recently) {
  const role::RoleStatus status = role.status();
  admin::StatusView view;
  view.node_id = config.node_id;
  view.version = std::string(version);
  view.role = std::string(role::role_name(status.role));
  view.epoch = status.epoch;
  view.not_active_reason = not_active_reason(status, supervisor);
  view.paused = status.paused;
  view.transitions = status.transitions;
  if (status.lease) {
    view.lease_holder = status.lease->holder;
    view.lease_epoch = status.lease->epoch;
    view.lease_expires_in_ms = status.lease->expires_in_ms;
  }
  if (status.last_transition) {
    const role::Transition& t = *status.last_transition;
    view.last_transition = admin::TransitionView{std::string(role::role_name(t.from)),
                                                 std::string(role::role_name(t.to)), t.reason,
                                                 t.epoch, admin::iso8601_utc(t.at)};
  }
  // The node's own state is known without the database; the registry is not while the database
  // cannot be reached, and status must still answer then (it is how db_unreachable is seen).
  std::vector<db::RegisteredNode> nodes;
  try {
    nodes = registry.list();
  } catch (const db::UnreachableError& e) {
    log::Logger("main").debug("node.status_without_registry", {{"reason", e.what()}});
  }
  for (const db::RegisteredNode& node : nodes) {
    const db::NodeRecord& r = node.record;
    const std::string role = role::shown_role(node, status.lease, seen_recently);
    std::string reason = r.reason;
    if (role == "down") {
      const auto last_seen =
          std::chrono::system_clock::now() - std::chrono::milliseconds(node.seen_ms_ago);
      reason = "down since " + admin::iso8601_utc(last_seen);
    }
    view.nodes.push_back({r.id, r.address, r.admin_address, r.version, r.backup_dir, role, reason,
                          r.paused, node.seen_ms_ago});
  }
  for (const host::PluginStatus& p : plugins.status()) {
    std::vector<admin::FactView> facts;
    for (const host::StatusFact& fact : p.facts) {
      facts.push_back({fact.name, fact.value, std::string(host::severity_name(fact.severity))});
    }
    view.plugins.push_back({p.id, p.version, std::string(host::state_name(p.state)),
                            std::string(host::health_name(p.health)), p.health_detail, p.last_error,
                            p.restarts, p.required, std::move(facts)});
  }
  return view;
}

// Turns the errors of an operator's command into the admin endpoint's answers.
template <typename Operation>
void as_operation(Operation operation) {
  try {
    operation();
  } catch (const db::FencedError& e) {
    throw admin::OperationError::conflict(e.what());
  } catch (const db::UnreachableError& e) {
    throw admin::OperationError::unavailable(e.what());
  } catch (const std::invalid_argument& e) {
    throw admin::OperationError::bad_input(e.what());
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const admin::OperationError*>(&e)) throw;
    throw admin::OperationError::conflict(e.what());
  }
}

}  // namespace

log::Settings log_settings(const config::NodeConfig& config) {
  log::Settings settings = config.log;
  for (const auto& plugin : config.plugins) {
    if (plugin.log_level) settings.levels["plugin." + plugin.id] = *plugin.log_level;
  }
  return settings;
}

std::string postgres_sslmode(const config::DatabaseConfig& database) {
  if (database.sslmode) return *database.sslmode;
  return remote_hosts(db::postgres_target(database.url)).empty() ? "prefer" : "verify-full";
}

namespace {

// A refusal at `key`'s place in the file, or at its start when the key is not written there.
[[noreturn]] void refuse(const config::NodeConfig& config, const std::string& key,
                         const std::string& problem) {
  if (const auto where = config.values.source(key)) {
    throw config::ConfigError::at(*where, config.file.string(), problem);
  }
  throw config::ConfigError(config.file.string(), 1, 1, problem);
}

std::string ms(std::chrono::milliseconds value) {
  return std::to_string(value.count()) + " ms";
}

void check_postgres(const config::NodeConfig& config) {
  const config::DatabaseConfig& database = config.database;
  db::PostgresTarget target;
  try {
    db::describe_postgres_url(database.url);
    target = db::postgres_target(database.url);
  } catch (const std::invalid_argument& e) {
    refuse(config, "database.url", std::string("[database] url: ") + e.what());
  }
  if (!target.sslmode.empty()) {
    refuse(config, "database.url",
           "[database] url sets sslmode=" + target.sslmode +
               ", which [database] sslmode would override: give it as [database] sslmode, where "
               "it is checked against the server's address");
  }
  const std::vector<std::string> remote = remote_hosts(target);
  const std::string sslmode = postgres_sslmode(database);
  const bool authenticated =
      sslmode == "require" || sslmode == "verify-ca" || sslmode == "verify-full";
  if (!remote.empty() && !authenticated && !database.insecure) {
    refuse(config, "database.sslmode",
           "[database] sslmode = \"" + sslmode + "\" for the server " + remote.front() +
               ", which is not on loopback: anyone on the path could read and change the "
               "cluster's lease and data (expected verify-full with sslrootcert, or verify-ca or "
               "require; or insecure = true to accept it)");
  }
  // The lease's renewal is a statement: one the server holds past renew_deadline would make the
  // active fence itself on a server that is merely slow, and a statement_timeout above it no
  // longer bounds anything the node waits on.
  if (database.statement_timeout >= config.role.renew_deadline) {
    const std::string problem =
        "[database] statement_timeout (" + ms(database.statement_timeout) +
        ") must be below [role] renew_deadline (" + ms(config.role.renew_deadline) +
        "): a renewal the server holds longer would make the active stop serving before the "
        "statement fails (lower statement_timeout, or raise renew_deadline with lease_ttl)";
    refuse(config,
           config.values.source("database.statement_timeout") ? "database.statement_timeout"
                                                              : "role.renew_deadline",
           problem);
  }
}

}  // namespace

void check_config(const config::NodeConfig& config) {
  if (is_postgres(config)) check_postgres(config);
  const std::string problem = role::check_timers(timers_of(config.role));
  if (problem.empty()) return;
  const auto where = config.values.source("role.lease_ttl");
  if (where) throw config::ConfigError::at(*where, config.file.string(), problem);
  throw config::ConfigError(config.file.string(), 1, 1, problem);
}

int run(const config::NodeConfig& config, std::string_view version) {
  const log::Logger log{"main"};

  // Signals are caught before any plugin code runs, so a stop requested during start-up is a
  // clean stop once start-up is done, never the default action's abrupt exit.
  boost::asio::io_context events;
  boost::asio::signal_set stop_signals(events, SIGTERM, SIGINT);
  boost::asio::signal_set reopen_signal(events, SIGHUP);
  std::function<void()> await_reopen = [&] {
    reopen_signal.async_wait([&](const boost::system::error_code& error, int) {
      if (error) return;
      try {
        log::reopen();
        log.info("log.reopened");
      } catch (const std::exception& e) {
        // The old stream stays: a log that cannot move is better than a node that stops.
        log.error("log.reopen_failed", {{"error", e.what()}});
      }
      await_reopen();
    });
  };
  await_reopen();
  bool stop_requested = false;
  stop_signals.async_wait([&](const boost::system::error_code& error, int signal) {
    if (error) return;
    stop_requested = true;
    log.info("node.stopping", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    reopen_signal.cancel();
  });

  // Every plugin's manifest, library and config section is checked before the shared database is
  // touched: a node that is going to refuse its config neither creates nor migrates anything.
  // Declared before the plugins, so that they are destroyed after them.
  std::unique_ptr<db::Database> database;
  std::unique_ptr<db::Database> lease_database;
  std::unique_ptr<store::FileStore> file_store;
  auto metrics = std::make_shared<metrics::MetricsRegistry>();
  host::PluginHost plugins(config, host::PluginHost::default_search_dirs(config), metrics);
  plugins.load();

  std::filesystem::create_directories(config.data_dir);
  std::filesystem::create_directories(config.backup_dir);
  database = open_database(config);
  // The lease gets a connection of its own: a connection runs one transaction at a time, and a
  // plugin's long transaction must never hold up a renewal until the node fences itself.
  lease_database = open_database(config, /*for_lease=*/true);
  const admin::ServerSecurity security = admin_security(config, log);
  if (!await_database(*database, config, security, version, events, stop_requested, log)) {
    log.info("node.stopped", {{"node", config.node_id}});
    log::flush();
    return 0;
  }
  prepare_schema(*database, config, log);
  file_store = open_file_store(*database, config, config.store.backend);
  StoreJanitor janitor(*file_store, log);

  // The kernel drops this lock when the process dies: holding it proves that no other process on
  // this host runs under our id, so a restart right after a crash is not taken for a duplicate.
  const auto identity =
      db::FileLock::try_lock(db::lock_path(lock_base(config, *database), "node-" + config.node_id));
  db::NodeRegistry registry(*database);
  const std::string instance = random_instance_id();
  db::NodeRecord record;
  record.id = config.node_id;
  record.instance = instance;
  record.address = config.address;
  record.admin_address = config.admin.listen;
  record.version = std::string(version);
  record.backup_dir = db::normalise_backup_dir(config.backup_dir.string());
  record.role = std::string(role::role_name(role::Role::starting));
  registry.register_node(record, identity.has_value(), 3 * config.role.lease_ttl);

  plugins.set_database(database.get());
  plugins.set_store(file_store.get());
  plugins.create_all();

  role::Actions actions;
  actions.promote = [&](std::uint64_t epoch) {
    plugins.set_epoch(epoch);
    plugins.start_all();
    janitor.request();
  };
  actions.demote = [&](std::chrono::milliseconds deadline) {
    plugins.stop_all(deadline);
    plugins.set_epoch(0);
  };
  actions.fence = [&] {
    plugins.set_epoch(0);   // the plugins' next writes are refused without asking the database
    database->interrupt();  // and one already waiting on an unreachable server gives up now
  };
  // The same-host fast path exists only for SQLite, whose nodes all run on one host.
  std::optional<std::filesystem::path> fast_path_lock;
  if (!is_postgres(config)) {
    fast_path_lock = db::lock_path(lock_base(config, *database), "active.lock");
  }
  // A node heartbeats every 2 poll_intervals: seen within two heartbeats and a lease, it is
  // alive as far as the registry can tell.
  const auto seen_recently = 4 * config.role.poll_interval + config.role.lease_ttl;
  // Built once the role manager exists (it hands over through it); asked before each attempt
  // to take the lease, after the schema.
  std::unique_ptr<host::Supervisor> supervisor;
  const auto promotion_blocker = [&supervisor, schema = SchemaBlocker(*lease_database)]() mutable {
    std::string blocker = schema();
    if (blocker.empty() && supervisor) blocker = supervisor->promotion_blocker();
    return blocker;
  };
  role::RoleManager role(*lease_database, nullptr, config.node_id, timers_of(config.role),
                         hooks_of(config.role), std::move(actions), fast_path_lock,
                         promotion_blocker, *metrics);
  host::Cluster cluster;
  cluster.ready_peer = [&](bool or_held_off) {
    return role::ready_peer(registry.list(), config.node_id, version, seen_recently, or_held_off);
  };
  cluster.hand_over = [&](const std::string& to, const std::string& why) {
    role.switchover(to, why);
  };
  supervisor = std::make_unique<host::Supervisor>(
      plugins, host::SupervisionPolicy::of(config.plugin_host), std::move(cluster));

  admin::Model model;
  model.status = [&] {
    return status_view(config, version, role, plugins, *supervisor, registry, seen_recently);
  };
  model.health = [&] { return health_of(role, plugins, *supervisor, config.role); };
  model.metrics_text = [&] { return metrics->render_prometheus(); };
  model.switchover = [&](std::optional<std::string> to) {
    as_operation([&] { role.switchover(std::move(to)); });
  };
  model.pause = [&] { as_operation([&] { role.pause(); }); };
  model.resume = [&] { as_operation([&] { role.resume(); }); };
  model.settings = [&] {
    std::vector<admin::Setting> settings;
    for (const db::Setting& s : db::Settings(*database).list()) {
      settings.push_back({s.key, s.value, s.updated_at_ms, s.updated_by, s.epoch});
    }
    return settings;
  };
  // The epoch this node writes under; a refusal naming the active node while it is not active.
  const auto active_epoch = [&](const std::string& what) {
    const role::RoleStatus status = role.status();
    if (status.role != role::Role::active) {
      const std::string holder = status.lease ? status.lease->holder : std::string();
      throw admin::OperationError::conflict(
          "this node is " + std::string(role::role_name(status.role)) + "; " + what +
          " on the active node" + (holder.empty() ? std::string() : " (" + holder + ")"));
    }
    return status.epoch;
  };
  model.set_setting = [&](const std::string& key, const std::string& value) {
    as_operation([&] {
      const std::uint64_t epoch = active_epoch("cluster settings are changed");
      db::Settings(*database).set(key, value, config.node_id, epoch);
    });
  };
  model.store = admin::store_model(
      *file_store,
      [&] {
        return store::Writer{config.node_id, active_epoch("the file store is written")};
      },
      [&](const std::string& backend) { return open_file_store(*database, config, backend); });
  model.commands.list = [&](const std::string& plugin) -> std::optional<std::string> {
    const std::vector<host::CommandSpec>* commands = plugins.commands(plugin);
    if (commands == nullptr) return std::nullopt;
    nlohmann::json list = nlohmann::json::array();
    for (const host::CommandSpec& command : *commands)
      list.push_back(host::command_to_json(command));
    return list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  model.commands.find = [&](const std::string& plugin,
                            const std::string& name) -> std::optional<admin::CommandInfo> {
    const std::vector<host::CommandSpec>* commands = plugins.commands(plugin);
    if (commands == nullptr) return std::nullopt;
    for (const host::CommandSpec& command : *commands) {
      if (command.name == name)
        return admin::CommandInfo{command.changes_state, command.active_only};
    }
    return std::nullopt;
  };
  model.commands.run = [&](const std::string& plugin, const std::string& name,
                           const std::string& args) {
    const host::CommandAnswer answer = plugins.run_command(plugin, name, args);
    return admin::CommandReply{answer.http_status, answer.body, answer.not_active};
  };
  admin::AdminServer admin(config.admin.listen, security, std::move(model));
  admin.start();

  role.start();
  log.info("node.started", {{"node", config.node_id},
                            {"version", std::string(version)},
                            {"config", config.file.string()},
                            {"database", database->describe()},
                            {"plugins", std::to_string(plugins.status().size())}});
  {
    Heartbeat heartbeat(
        [&] {
          const role::RoleStatus status = role.status();
          try {
            registry.heartbeat(config.node_id, instance, role::role_name(status.role),
                               not_active_reason(status, *supervisor), status.paused);
          } catch (const std::exception& e) {
            log.warning("node.heartbeat_failed", {{"reason", e.what()}});
          }
        },
        config.role.poll_interval * 2);
    events.run();
  }

  supervisor->stop();  // it hands over through the role manager: first
  role.stop();
  admin.stop();
  try {
    registry.mark_stopped(config.node_id, instance);
  } catch (const db::DbError& e) {
    log.warning("node.unregister_failed", {{"reason", e.what()}});
  }
  plugins.destroy_all();
  log.info("node.stopped", {{"node", config.node_id}});
  log::flush();
  return 0;
}

}  // namespace emsnode::node
