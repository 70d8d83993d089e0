// emsnode plugin SDK: an in-memory host for unit-testing a plugin without a node.
//
// FakeHost implements the whole emsnode_host_api: config from values the test sets, captured
// log records, inspectable metrics and health, a settable node id and epoch, and a manual
// executor whose posted tasks and timers run only when the test says so, on the test's thread,
// against a fake clock. It drives a plugin table through the lifecycle the node uses:
//
//   emsnode::sdk::testing::FakeHost fake;
//   fake.config("listen", "127.0.0.1:0").config("max_connections", 8);
//   REQUIRE(fake.create(emsnode_plugin_entry(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR)) == EMSNODE_OK);
//   REQUIRE(fake.start() == EMSNODE_OK);
//   fake.advance(std::chrono::seconds(1));   // runs the timers due within that second
//   REQUIRE(fake.stop() == EMSNODE_OK);
//   CHECK(fake.leaked_timers() == 0);
//
// It mirrors the node's rules where a plugin could come to depend on them: post and timers are
// refused outside start..stop, timers still armed when stop returns are cancelled and counted as
// leaked, health resets to OK at each start, metric names and kinds are checked, a failed host
// call explains itself through last_error. Given the plugin's manifest (`manifest("plugin.toml")`)
// it fills in config defaults and refuses what a node refuses (a missing required key, a value
// out of bounds) before create; without one it checks nothing: set every key the plugin reads.
//
// Control commands (ABI 1.3): declare a command as plugin.toml does, create, then call it; the
// fake checks the arguments (unknown, missing, wrong type) as the node does and runs the handler
// on the test's thread:
//
//   fake.declare_command("stats");
//   const auto result = fake.call_command("stats");   // result.status, result.reply
//
// It has no database of its own. A test that drives a plugin's SQL paths sets hooks that stand
// for the node's database and throw to fail (sdk::FencedError plays a node that lost the lease):
//
//   fake.set_db_write([](const auto& run_body) { run_body(); })   // no fencing: run the body
//       .set_db_exec([&](std::string_view sql, const sdk::Params& params) {
//         statements.emplace_back(sql);
//         return FakeHost::DbExecResult{{}, 1};                    // no rows, 1 row changed
//       });
//
// The node's rules hold around the hooks: db_write and db_migrate are refused outside
// start..stop, a migration step that creates, alters or drops a table, index or view not named
// after the created plugin (`<id>_...`, '-' written '_') is refused, db_exec only works inside the
// body of its db_write, a failed db_exec spoils the transaction (it rolls back whatever the body
// returns), and nothing but db_exec may be called from a body. tests/host/
// host_conformance_test.cpp holds the fake and the node to the same rules.
//
// Nor has it a file store: store hooks stand for the node's, with keys as the plugin gives them
// (relative to its folder), content as streams, and exceptions to fail (sdk::FencedError plays a
// node that lost the lease, sdk::FileNotFoundError a missing file):
//
//   std::map<std::string, std::string> files;
//   fake.set_store_put([&](std::string_view key, std::istream& content) {
//         files[std::string(key)].assign(std::istreambuf_iterator<char>(content), {});
//       })
//       .set_store_get([&](std::string_view key, std::ostream& out) {
//         const auto found = files.find(std::string(key));
//         if (found == files.end()) throw sdk::FileNotFoundError("no such file");
//         out << found->second;
//       });
//
// Around them the fake refuses what the node refuses: a key that would leave the plugin's folder
// (it checks the node's rules except UTF-8 validity), a put or remove outside start..stop, and
// any store call inside a db_write body.
//
// Shared APIs (ABI 1.3): the fake stands for the exporters of what the plugin uses, and records
// what it exports. As it does not read plugin.toml, say what the manifest declares if the test
// wants the node's checks (a declared export left unexported fails create; an undeclared name
// or another minor is refused):
//
//   static const LicenseV1 kLicense = {sizeof(LicenseV1), &fake_seats};
//   fake.provide_api("license.v1", 2, &kLicense);      // what api_use returns
//   fake.declare_export("queue.v1", 0);                 // as exports = ["queue.v1.0"]
//   ...create...
//   const QueueV1& queue = fake.exported_api("queue.v1")->as<QueueV1>();
//
// Status facts are kept as the node keeps them, with its bounds: fake.facts(), fake.fact("seats").
//
// Needs nothing but the C++17 standard library and the SDK headers.
#pragma once

#include <emsnode/plugin_abi.h>
#include <emsnode/plugin.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <istream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace emsnode::sdk::testing {

/// Key=value pairs as captured from a log record or a metric's labels, in call order.
using Fields = std::vector<std::pair<std::string, std::string>>;

/// One record a plugin wrote through the host's log.
struct LogRecord {
  emsnode_log_level level;  ///< the record's level
  std::string event;        ///< the stable event name, e.g. "echo.listening"
  Fields fields;            ///< its key=value fields, in the order given

  /// The value of field `key`, or nullopt when the record has no such field.
  std::optional<std::string> field(std::string_view key) const {
    for (const auto& [name, value] : fields) {
      if (name == key) {
        return value;
      }
    }
    return std::nullopt;
  }
};

/// A metric a plugin registered, with what it has recorded so far.
struct MetricRecord {
  emsnode_metric_kind kind;          ///< counter, gauge or histogram
  std::string name;                  ///< the name given to metric_register
  std::string help;                  ///< its help text
  Fields labels;                     ///< its labels, in the order given
  std::vector<double> buckets;       ///< histogram bucket bounds as given (empty: default)
  double value = 0;                  ///< counter or gauge value
  std::vector<double> observations;  ///< every histogram observation, in order
};

/// An in-memory emsnode host for one plugin instance. Not copyable or movable: the plugin holds
/// its address as the host context. Thread-safe where the ABI says "THREAD: any"; the executor
/// (run_posted, run_due, advance) and the lifecycle calls belong to the test's thread.
class FakeHost {
 public:
  /// A host with node id "fake-node", epoch 1, every log level captured, the clock at 0.
  FakeHost() {
    api_.struct_size = sizeof(emsnode_host_api);
    api_.abi_major = EMSNODE_ABI_MAJOR;
    api_.abi_minor = EMSNODE_ABI_MINOR;
    api_.set_error = &FakeHost::on_set_error;
    api_.log = &FakeHost::on_log;
    api_.log_enabled = &FakeHost::on_log_enabled;
    api_.config_string = &FakeHost::on_config_string;
    api_.config_int = &FakeHost::on_config_int;
    api_.config_float = &FakeHost::on_config_float;
    api_.config_bool = &FakeHost::on_config_bool;
    api_.config_duration_ms = &FakeHost::on_config_duration_ms;
    api_.config_array_size = &FakeHost::on_config_array_size;
    api_.config_array_string = &FakeHost::on_config_array_string;
    api_.node_id = &FakeHost::on_node_id;
    api_.current_epoch = &FakeHost::on_current_epoch;
    api_.post = &FakeHost::on_post;
    api_.timer_start = &FakeHost::on_timer_start;
    api_.timer_cancel = &FakeHost::on_timer_cancel;
    api_.metric_register = &FakeHost::on_metric_register;
    api_.metric_add = &FakeHost::on_metric_add;
    api_.metric_set = &FakeHost::on_metric_set;
    api_.metric_observe = &FakeHost::on_metric_observe;
    api_.health_report = &FakeHost::on_health_report;
    api_.last_error = &FakeHost::on_last_error;
    api_.db_query = &FakeHost::on_db_query;
    api_.db_write = &FakeHost::on_db_write;
    api_.db_exec = &FakeHost::on_db_exec;
    api_.db_migrate = &FakeHost::on_db_migrate;
    api_.store_put = &FakeHost::on_store_put;
    api_.store_get = &FakeHost::on_store_get;
    api_.store_stat = &FakeHost::on_store_stat;
    api_.store_list = &FakeHost::on_store_list;
    api_.store_remove = &FakeHost::on_store_remove;
    api_.command_handle = &FakeHost::on_command_handle;
    api_.command_arg = &FakeHost::on_command_arg;
    api_.command_reply = &FakeHost::on_command_reply;
    api_.command_fail = &FakeHost::on_command_fail;
    api_.api_export = &FakeHost::on_api_export;
    api_.api_use = &FakeHost::on_api_use;
    api_.status_fact = &FakeHost::on_status_fact;
  }

  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  /// As the node does at shutdown: stops the plugin if it is started, then destroys it.
  ~FakeHost() {
    if (plugin_ == nullptr) {
      return;
    }
    if (started()) {
      stop();
    }
    destroy();
  }

  /// The host table handed to the plugin. A test may copy it, e.g. to shrink struct_size.
  const emsnode_host_api* api() const noexcept { return &api_; }
  /// The context handed to the plugin.
  emsnode_host_ctx* ctx() noexcept { return reinterpret_cast<emsnode_host_ctx*>(this); }

  // ---- identity ----

  /// Sets what node_id returns (default "fake-node"). Call before create: the plugin may keep
  /// the view.
  FakeHost& set_node_id(std::string id) {
    std::lock_guard<std::mutex> lock(mutex_);
    node_id_ = std::move(id);
    return *this;
  }
  /// Sets what current_epoch returns (default 1).
  FakeHost& set_epoch(std::uint64_t epoch) {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_ = epoch;
    return *this;
  }

  // ---- config ----

  /// A config value of one of the types the ABI's getters read.
  using ConfigValue = std::variant<std::string, std::int64_t, double, bool,
                                   std::chrono::milliseconds, std::vector<std::string>>;

  /// Sets a string (also: secret, path, address) value. Strings handed to the plugin stay valid
  /// until the key is set again or erased.
  FakeHost& config(std::string key, std::string value) { return put(std::move(key), value); }
  /// Sets a string value from a literal.
  FakeHost& config(std::string key, const char* value) {
    return put(std::move(key), std::string(value));
  }
  /// Sets an integer value.
  FakeHost& config(std::string key, std::int64_t value) { return put(std::move(key), value); }
  /// Sets an integer value from an int literal.
  FakeHost& config(std::string key, int value) {
    return put(std::move(key), static_cast<std::int64_t>(value));
  }
  /// Sets a float value.
  FakeHost& config(std::string key, double value) { return put(std::move(key), value); }
  /// Sets a boolean value.
  FakeHost& config(std::string key, bool value) { return put(std::move(key), value); }
  /// Sets a duration value (read back in milliseconds).
  FakeHost& config(std::string key, std::chrono::milliseconds value) {
    return put(std::move(key), value);
  }
  /// Sets an array of strings.
  FakeHost& config(std::string key, std::vector<std::string> value) {
    return put(std::move(key), std::move(value));
  }
  /// Sets an array of strings from a braced list: config("peers", {"a", "b"}).
  FakeHost& config(std::string key, std::initializer_list<std::string> value) {
    return put(std::move(key), std::vector<std::string>(value));
  }
  /// Removes a key, as if the config did not have it.
  FakeHost& erase_config(std::string_view key) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto found = config_.find(key); found != config_.end()) {
      config_.erase(found);
    }
    return *this;
  }

  /// Reads the config schema of the plugin's manifest (its `[config.<key>]` tables) so that
  /// create() hands the plugin what a node would: a key the test did not set takes its
  /// `default`, and create fails before the plugin's create runs, last_error() saying which key
  /// and why, as a node refuses to boot, when a `required` key is not set or a key is unknown,
  /// of the wrong type, outside `min`..`max` or not among `choices`. A key with neither
  /// `default` nor `required` stays absent unless set. Durations (`"500ms"`, `"2s"`) are set and
  /// read in milliseconds; an integer set for a float key is read as a float. Unlike a node, the
  /// fake does not resolve `env:NAME` secrets or relative paths: set what the node would pass.
  /// Without a manifest the fake checks nothing and fills in nothing. Throws std::runtime_error
  /// naming FILE:LINE when the file cannot be read or its schema is malformed.
  FakeHost& manifest(const std::string& plugin_toml) {
    std::ifstream in(plugin_toml);
    if (!in) throw std::runtime_error(plugin_toml + ": cannot read the plugin's manifest");
    std::map<std::string, SchemaKey, std::less<>> schema;
    SchemaKey* current = nullptr;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      const auto fail = [&](const std::string& what) {
        return std::runtime_error(plugin_toml + ":" + std::to_string(number) + ": " + what);
      };
      std::size_t at = skip_space(line, 0);
      if (at >= line.size() || line[at] == '#') continue;
      if (line[at] == '[') {
        const std::size_t close = line.find(']', at);
        if (close == std::string::npos) throw fail("a table header without ']'");
        const std::string header = trim(line.substr(at + 1, close - at - 1));
        current = nullptr;
        if (header.rfind("config.", 0) == 0) current = &schema[header.substr(7)];
        continue;
      }
      const std::size_t equals = line.find('=', at);
      if (equals == std::string::npos) throw fail("expected key = value");
      const std::string key = trim(line.substr(at, equals - at));
      std::string text = line.substr(equals + 1);
      // An array may run over several lines.
      while (open_brackets(text) > 0 && std::getline(in, line)) {
        ++number;
        text += "\n" + line;
      }
      if (current == nullptr) continue;  // the manifest's own keys: the node checks those
      std::size_t pos = 0;
      const ManifestValue value = parse_manifest_value(text, pos, fail);
      if (key == "type") {
        current->type = std::get<std::string>(value);
      } else if (key == "default") {
        current->default_value = value;
      } else if (key == "required") {
        current->required = std::get<bool>(value);
      } else if (key == "min") {
        current->min = value;
      } else if (key == "max") {
        current->max = value;
      } else if (key == "choices") {
        current->choices = std::get<std::vector<std::string>>(value);
      }
    }
    for (auto& [key, spec] : schema) {
      if (spec.type.empty()) {
        throw std::runtime_error(plugin_toml + ": [config." + key + "] has no type");
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    schema_ = std::move(schema);
    has_schema_ = true;
    return *this;
  }

  // ---- log ----

  /// Records below `level` are dropped and log_enabled says so (default: trace, keep all).
  FakeHost& set_log_level(emsnode_log_level level) {
    std::lock_guard<std::mutex> lock(mutex_);
    log_level_ = level;
    return *this;
  }
  /// Every record captured so far, in order.
  std::vector<LogRecord> logs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return logs_;
  }
  /// The records with event name `event`, in order.
  std::vector<LogRecord> logs(std::string_view event) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<LogRecord> found;
    std::copy_if(logs_.begin(), logs_.end(), std::back_inserter(found),
                 [&](const LogRecord& record) { return record.event == event; });
    return found;
  }
  /// The latest record with event name `event`, or nullopt.
  std::optional<LogRecord> last_log(std::string_view event) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = logs_.rbegin(); it != logs_.rend(); ++it) {
      if (it->event == event) {
        return *it;
      }
    }
    return std::nullopt;
  }
  /// Forgets the records captured so far.
  void clear_logs() {
    std::lock_guard<std::mutex> lock(mutex_);
    logs_.clear();
  }

  // ---- metrics and health ----

  /// Every metric registered so far, in registration order.
  std::vector<MetricRecord> metrics() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<MetricRecord> all;
    for (const auto& metric : metrics_) {
      all.push_back(metric->record);
    }
    return all;
  }
  /// The metric registered as `name` with exactly `labels`, or nullopt.
  std::optional<MetricRecord> metric(std::string_view name, const Fields& labels = {}) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& metric : metrics_) {
      if (metric->record.name == name && metric->record.labels == labels) {
        return metric->record;
      }
    }
    return std::nullopt;
  }
  /// The health the plugin reported last (OK after each start).
  emsnode_health health() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return health_;
  }
  /// The detail of the last health report.
  std::string health_detail() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return health_detail_;
  }

  // ---- shared database ----
  // Each hook stands for the node's database in one db_* call. It runs on the plugin's calling
  // thread, without the fake's lock held, and throws to fail: sdk::FencedError makes db_write and
  // db_migrate return EMSNODE_FENCED, any other exception EMSNODE_ERROR; either way its what()
  // becomes the host's last_error. Without a hook the call fails with "the fake host has no
  // database; set one with FakeHost::set_db_...".

  /// What a db_exec hook returns: the rows of a statement that returns rows, and how many rows
  /// an INSERT, UPDATE or DELETE changed.
  struct DbExecResult {
    std::vector<Row> rows;      ///< passed to the plugin's row callback, in order
    std::uint64_t changes = 0;  ///< reported when the plugin gives no row callback
  };
  /// db_query: the rows of the read `sql` with `params`.
  using DbQueryHook = std::function<std::vector<Row>(std::string_view sql, const Params& params)>;
  /// db_exec: runs one statement of the transaction of the db_write that is running.
  using DbExecHook = std::function<DbExecResult(std::string_view sql, const Params& params)>;
  /// db_write: `run_body()` runs the plugin's body once (its statements reach the db_exec hook)
  /// and returns true when the body asks to commit, false when the transaction rolls back; the
  /// hook decides what commit and rollback mean for its model. Throw sdk::FencedError before
  /// running the body to play a node that lost the lease.
  using DbWriteHook = std::function<void(const std::function<bool()>& run_body)>;
  /// db_migrate: the plugin's migration steps, as given.
  using DbMigrateHook = std::function<void(const std::vector<std::string>& steps)>;

  /// Sets what db_query does.
  FakeHost& set_db_query(DbQueryHook hook) { return set_hook(db_query_, std::move(hook)); }
  /// Sets what db_exec does.
  FakeHost& set_db_exec(DbExecHook hook) { return set_hook(db_exec_, std::move(hook)); }
  /// Sets what db_write does.
  FakeHost& set_db_write(DbWriteHook hook) { return set_hook(db_write_, std::move(hook)); }
  /// Sets what db_migrate does.
  FakeHost& set_db_migrate(DbMigrateHook hook) { return set_hook(db_migrate_, std::move(hook)); }

  // ---- shared file store ----
  // Each hook stands for the node's file store in one store_* call, with the key or prefix as the
  // plugin gave it. It runs on the plugin's calling thread, without the fake's lock held, and
  // throws to fail: sdk::FencedError makes store_put and store_remove return EMSNODE_FENCED,
  // sdk::FileNotFoundError makes store_get and store_remove return EMSNODE_NOT_FOUND, any other
  // exception EMSNODE_ERROR; its what() becomes the host's last_error. Without a hook the call
  // fails with "the fake host has no file store; set one with FakeHost::set_store_...".

  /// store_put: stores what `content` holds, to its end, as the node does. `content` reads the
  /// plugin's read callback; when that aborts the put, reading throws (let it through).
  using StorePutHook = std::function<void(std::string_view key, std::istream& content)>;
  /// store_get: writes the file at `key` to `out`, which passes it to the plugin's write
  /// callback; when that aborts the get, writing throws (let it through).
  using StoreGetHook = std::function<void(std::string_view key, std::ostream& out)>;
  /// store_stat: the file at `key`, or nullopt when there is none.
  using StoreStatHook = std::function<std::optional<FileInfo>(std::string_view key)>;
  /// store_list: the files whose keys start with `prefix`, in the order the plugin sees them.
  using StoreListHook = std::function<std::vector<FileInfo>(std::string_view prefix)>;
  /// store_remove: removes the file at `key`.
  using StoreRemoveHook = std::function<void(std::string_view key)>;

  /// Sets what store_put does.
  FakeHost& set_store_put(StorePutHook hook) { return set_hook(store_put_, std::move(hook)); }
  /// Sets what store_get does.
  FakeHost& set_store_get(StoreGetHook hook) { return set_hook(store_get_, std::move(hook)); }
  /// Sets what store_stat does.
  FakeHost& set_store_stat(StoreStatHook hook) { return set_hook(store_stat_, std::move(hook)); }
  /// Sets what store_list does.
  FakeHost& set_store_list(StoreListHook hook) { return set_hook(store_list_, std::move(hook)); }
  /// Sets what store_remove does.
  FakeHost& set_store_remove(StoreRemoveHook hook) {
    return set_hook(store_remove_, std::move(hook));
  }

  // ---- executor and timers ----

  /// The fake clock: starts at 0 and moves only through run_due and advance.
  std::chrono::milliseconds now() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return now_;
  }
  /// Runs, on this thread, the tasks posted before the call, in order; tasks they post wait for
  /// the next call. Returns how many ran.
  std::size_t run_posted() {
    std::size_t pending = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending = posts_.size();
    }
    std::size_t ran = 0;
    for (; ran < pending; ++ran) {
      Task task;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (posts_.empty()) {
          break;  // stop() dropped them
        }
        task = posts_.front();
        posts_.pop_front();
      }
      task.fn(task.user_data);
    }
    return ran;
  }
  /// Moves the clock to `now` (never backwards) and runs, on this thread, every timer due by
  /// then, earliest first; a periodic timer runs once per period that elapsed. The clock reads
  /// each timer's due time while its callback runs. Returns how many callbacks ran.
  std::size_t run_due(std::chrono::milliseconds now) {
    std::size_t ran = 0;
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        auto next = timers_.end();
        for (auto it = timers_.begin(); it != timers_.end(); ++it) {
          const bool due = it->second.due <= now;
          if (due && (next == timers_.end() || it->second.due < next->second.due)) {
            next = it;
          }
        }
        if (next == timers_.end()) {
          now_ = std::max(now_, now);
          return ran;
        }
        now_ = std::max(now_, next->second.due);
        task = next->second.task;
        running_timer_ = next->first;
        running_thread_ = std::this_thread::get_id();
        if (next->second.period.count() > 0) {
          next->second.due += next->second.period;
        } else {
          timers_.erase(next);
        }
      }
      task.fn(task.user_data);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        running_timer_ = 0;
      }
      timer_done_.notify_all();
      ++ran;
    }
  }
  /// Moves the clock forward by `by` and runs what is due: run_due(now() + by).
  std::size_t advance(std::chrono::milliseconds by) { return run_due(now() + by); }
  /// How many posted tasks wait for run_posted.
  std::size_t posted() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return posts_.size();
  }
  /// How many timers are armed.
  std::size_t armed_timers() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return timers_.size();
  }
  /// How many timers were still armed when a stop returned, over the host's life. A plugin
  /// should cancel its timers in stop: the node logs each of these as leaked.
  std::size_t leaked_timers() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return leaked_timers_;
  }
  /// Whether post and timer_start are accepted: what start and stop set around the plugin's
  /// calls. Set it directly to use emsnode::sdk::Host on this fake without a plugin table.
  FakeHost& set_started(bool started) {
    std::lock_guard<std::mutex> lock(mutex_);
    started_ = started;
    return *this;
  }
  /// Whether the plugin is started (between start and stop).
  bool started() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_;
  }

  // ---- shared APIs (ABI 1.3) ----

  /// Offers the plugin the table of the shared API `name` ("license.v1", without the minor) at
  /// `minor`, as its exporter would: what api_use returns. `table` must outlive the plugin.
  template <typename Table>
  FakeHost& provide_api(std::string name, std::uint32_t minor, const Table* table) {
    static_assert(std::is_same_v<decltype(Table::struct_size), std::uint32_t>,
                  "provide_api: a shared table starts with uint32_t struct_size");
    std::lock_guard<std::mutex> lock(mutex_);
    provided_[std::move(name)] = ExportedApi{table, minor};
    return *this;
  }
  /// Declares, as plugin.toml's `exports` does, that the plugin exports `name` at `minor`. Once
  /// one is declared, api_export refuses any other name or minor, and create fails when a
  /// declared API is left unexported, as on the node. Without any, every export is accepted.
  FakeHost& declare_export(std::string name, std::uint32_t minor) {
    std::lock_guard<std::mutex> lock(mutex_);
    declared_exports_[std::move(name)] = minor;
    return *this;
  }

  /// A table the plugin exported with api_export, and its minor.
  struct ExportedApi {
    const void* table = nullptr;
    std::uint32_t minor = 0;
    /// The table as the API's struct; check struct_size before touching a member a user needs.
    template <typename Table>
    const Table& as() const {
      return *static_cast<const Table*>(table);
    }
  };
  /// What the plugin exported under `name`, or nullopt.
  std::optional<ExportedApi> exported_api(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = exported_.find(name);
    return found == exported_.end() ? std::nullopt : std::optional<ExportedApi>(found->second);
  }
  /// Whether api_export is accepted: what create sets around the plugin's call. Set it directly
  /// to use emsnode::sdk::Host on this fake without a plugin table.
  FakeHost& set_creating(bool creating) {
    std::lock_guard<std::mutex> lock(mutex_);
    creating_ = creating;
    return *this;
  }

  // ---- status facts (ABI 1.3) ----

  /// One fact of the plugin's status panel.
  struct Fact {
    std::string name;
    std::string value;
    emsnode_severity severity = EMSNODE_SEVERITY_INFO;
  };
  /// The facts the plugin set, in the order first set (removed ones are gone).
  std::vector<Fact> facts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return facts_;
  }
  /// The fact `name`, or nullopt.
  std::optional<Fact> fact(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Fact& fact : facts_) {
      if (fact.name == name) {
        return fact;
      }
    }
    return std::nullopt;
  }

  // ---- the plugin's lifecycle ----

  /// Checks `plugin` as the node does (ABI major and minor, table size) and calls its create.
  /// Pass the result of the entry point, emsnode_plugin_entry(EMSNODE_ABI_MAJOR,
  /// EMSNODE_ABI_MINOR); a NULL there fails here. On failure last_error() says why.
  emsnode_status create(const emsnode_plugin_api* plugin) {
    if (plugin_ != nullptr) {
      throw std::logic_error("FakeHost::create: a plugin is already created; destroy it first");
    }
    clear_error();
    if (plugin == nullptr) {
      return refuse("the plugin's entry point returned NULL");
    }
    if (plugin->abi_major != EMSNODE_ABI_MAJOR || plugin->abi_minor > EMSNODE_ABI_MINOR) {
      return refuse("the plugin was built for ABI " + std::to_string(plugin->abi_major) + "." +
                    std::to_string(plugin->abi_minor) + "; this host speaks " +
                    std::to_string(EMSNODE_ABI_MAJOR) + "." + std::to_string(EMSNODE_ABI_MINOR));
    }
    if (!fits(*plugin, &emsnode_plugin_api::destroy) || !plugin->create || !plugin->start ||
        !plugin->stop) {
      return refuse("the plugin's table lacks an entry point");
    }
    if (std::string refusal = apply_schema(); !refusal.empty()) {
      return refuse(std::move(refusal));
    }
    void* instance = nullptr;
    handlers_.clear();
    set_creating(true);
    const emsnode_status status = plugin->create(&api_, ctx(), &instance);
    set_creating(false);
    if (status != EMSNODE_OK) {
      return explained(status, "create");
    }
    if (instance == nullptr) {
      return refuse("create returned OK but no instance");
    }
    for (const auto& [name, declared] : commands_) {
      if (handlers_.count(name) == 0) {
        plugin->destroy(instance);
        return refuse("command '" + name + "' is declared but has no handler");
      }
    }
    if (const std::string missing = missing_exports(); !missing.empty()) {
      plugin->destroy(instance);
      return refuse("plugin.toml declares exports " + missing +
                    ", which create did not hand over with api_export");
    }
    plugin_ = plugin;
    instance_ = instance;
    return EMSNODE_OK;
  }

  /// Marks the plugin started (post and timers accepted, health reset to OK) and calls start.
  /// After a failed start call stop(), as the node does.
  emsnode_status start() {
    require_created("start");
    clear_error();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      started_ = true;
      health_ = EMSNODE_HEALTH_OK;
      health_detail_.clear();
    }
    return explained(plugin_->start(instance_), "start");
  }

  /// Calls stop with `deadline`, timing it (last_stop_duration). Then, as the node does, refuses
  /// further posts and timers, drops posted tasks that did not run, and cancels the timers still
  /// armed, counting them in leaked_timers().
  emsnode_status stop(std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    require_created("stop");
    clear_error();
    const auto begin = std::chrono::steady_clock::now();
    const emsnode_status status =
        plugin_->stop(instance_, static_cast<std::uint64_t>(deadline.count()));
    const auto took = std::chrono::steady_clock::now() - begin;
    std::lock_guard<std::mutex> lock(mutex_);
    last_stop_duration_ = std::chrono::duration_cast<std::chrono::milliseconds>(took);
    started_ = false;
    leaked_timers_ += timers_.size();
    timers_.clear();
    posts_.clear();
    return explained_locked(status, "stop");
  }

  /// Calls destroy; the plugin table can then be created again.
  void destroy() {
    require_created("destroy");
    plugin_->destroy(instance_);
    plugin_ = nullptr;
    instance_ = nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    started_ = false;
    timers_.clear();
    posts_.clear();
  }

  // ---- control commands (ABI 1.3) ----

  /// The type of a command argument, as plugin.toml declares it (string, path, address and
  /// secret are all text).
  enum class ArgType { text, integer, floating, boolean, duration };

  /// One argument of a declared command: what the fake checks before calling the handler.
  struct CommandArg {
    std::string name;
    ArgType type = ArgType::text;
    bool required = false;
    std::optional<ConfigValue> default_value;  // used when the call does not give it
  };

  /// Declares the command `name` as the plugin's plugin.toml does, before create: command_handle
  /// refuses an undeclared name, and create fails when a declared one gets no handler.
  FakeHost& declare_command(std::string name, std::vector<CommandArg> args = {},
                            bool active_only = true) {
    commands_[std::move(name)] = DeclaredCommand{std::move(args), active_only};
    return *this;
  }

  /// What a command call returned: the handler's status, its JSON answer ("{}" without one)
  /// and its command_fail message.
  struct CommandResult {
    emsnode_status status = EMSNODE_ERROR;
    std::string reply;
    std::string error;
  };

  /// Calls the command `name` on this thread, after the node's checks: an unknown or missing
  /// required argument, or one of another type, is EMSNODE_INVALID naming it (the handler does
  /// not run); an active_only command while not started is EMSNODE_ERROR. Defaults are filled in.
  CommandResult call_command(std::string_view name,
                             std::map<std::string, ConfigValue, std::less<>> args = {}) {
    require_created("call_command");
    const auto declared = commands_.find(name);
    const auto handler = handlers_.find(name);
    if (declared == commands_.end() || handler == handlers_.end()) {
      return {EMSNODE_NOT_FOUND, {}, "no command '" + std::string(name) + "'"};
    }
    if (declared->second.active_only && !started()) {
      return {EMSNODE_ERROR, {}, std::string(name) + " runs only while the plugin is started"};
    }
    for (const auto& [arg, value] : args) {
      const auto spec = std::find_if(declared->second.args.begin(), declared->second.args.end(),
                                     [&](const CommandArg& a) { return a.name == arg; });
      if (spec == declared->second.args.end()) {
        return {EMSNODE_INVALID, {}, "unknown argument '" + arg + "'"};
      }
      if (!fits_type(spec->type, value)) {
        return {EMSNODE_INVALID, {}, "argument '" + arg + "' is not of its declared type"};
      }
    }
    Call call;
    call.args = std::move(args);
    for (const CommandArg& spec : declared->second.args) {
      if (call.args.count(spec.name) != 0) {
        continue;
      }
      if (spec.default_value) {
        call.args[spec.name] = *spec.default_value;
      } else if (spec.required) {
        return {EMSNODE_INVALID, {}, "missing required argument '" + spec.name + "'"};
      }
    }
    const emsnode_status status = handler->second.fn(
        handler->second.user_data, reinterpret_cast<emsnode_command_call*>(&call));
    if (status == EMSNODE_OK) {
      return {status, call.reply.value_or("{}"), {}};
    }
    return {status, {}, call.failure};
  }

  /// Why the last create, start or stop failed: the plugin's set_error message, or the fake's
  /// own reason. Empty after a success.
  std::string last_error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_error_;
  }
  /// How long the last stop took, to compare with its deadline.
  std::chrono::milliseconds last_stop_duration() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_stop_duration_;
  }

 private:
  struct Task {
    emsnode_task_fn fn = nullptr;
    void* user_data = nullptr;
  };
  struct ArmedTimer {
    std::chrono::milliseconds due;
    std::chrono::milliseconds period;
    Task task;
  };
  struct Metric {
    FakeHost* owner;
    MetricRecord record;
  };
  // The transaction behind an emsnode_db_txn*: one running db_write body.
  struct Txn {
    FakeHost* owner;
    std::thread::id thread;  // the thread running the body
    bool spoiled = false;    // a statement failed: the transaction rolls back
    std::string first_error;
  };

  struct DeclaredCommand {
    std::vector<CommandArg> args;
    bool active_only = true;
  };
  struct Handler {
    emsnode_command_fn fn = nullptr;
    void* user_data = nullptr;
  };
  // What an emsnode_command_call* points to.
  struct Call {
    std::map<std::string, ConfigValue, std::less<>> args;
    std::optional<std::string> reply;
    std::string failure;
  };

  static bool fits_type(ArgType type, const ConfigValue& value) {
    switch (type) {
      case ArgType::text:
        return std::holds_alternative<std::string>(value);
      case ArgType::integer:
        return std::holds_alternative<std::int64_t>(value);
      case ArgType::floating:
        return std::holds_alternative<double>(value) || std::holds_alternative<std::int64_t>(value);
      case ArgType::boolean:
        return std::holds_alternative<bool>(value);
      case ArgType::duration:
        return std::holds_alternative<std::chrono::milliseconds>(value);
    }
    return false;
  }

  static emsnode_status on_command_handle(emsnode_host_ctx* ctx, emsnode_str name,
                                          emsnode_command_fn fn, void* user_data) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    const std::string key(view(name));
    if (!host.creating_) {
      return host.fail_call("command_handle: only valid while create runs");
    }
    if (fn == nullptr) {
      return host.fail_call("command_handle: the handler is NULL");
    }
    if (host.commands_.count(key) == 0) {
      return host.fail_call("command_handle: no command '" + key +
                            "' is declared (FakeHost::declare_command)");
    }
    if (!host.handlers_.emplace(key, Handler{fn, user_data}).second) {
      return host.fail_call("command_handle: command '" + key + "' already has a handler");
    }
    return EMSNODE_OK;
  }

  static emsnode_status on_command_arg(emsnode_command_call* handle, emsnode_str name,
                                       emsnode_db_value* out) {
    Call& call = *reinterpret_cast<Call*>(handle);
    const auto found = call.args.find(view(name));
    if (found == call.args.end() || out == nullptr) {
      return EMSNODE_NOT_FOUND;
    }
    emsnode_db_value value{};
    const ConfigValue& given = found->second;
    if (const auto* text = std::get_if<std::string>(&given)) {
      value.type = EMSNODE_DB_TEXT;
      value.bytes = detail::to_str(*text);
    } else if (const auto* n = std::get_if<std::int64_t>(&given)) {
      value.type = EMSNODE_DB_INTEGER;
      value.integer = *n;
    } else if (const auto* f = std::get_if<double>(&given)) {
      value.type = EMSNODE_DB_FLOAT;
      value.floating = *f;
    } else if (const auto* b = std::get_if<bool>(&given)) {
      value.type = EMSNODE_DB_INTEGER;
      value.integer = *b ? 1 : 0;
    } else if (const auto* d = std::get_if<std::chrono::milliseconds>(&given)) {
      value.type = EMSNODE_DB_INTEGER;
      value.integer = d->count();
    } else {
      return EMSNODE_NOT_FOUND;
    }
    *out = value;
    return EMSNODE_OK;
  }

  static emsnode_status on_command_reply(emsnode_command_call* handle, emsnode_str json) {
    const std::string_view text = view(json);
    // The fake checks the size and that something was given; the node also parses the JSON.
    if (text.empty() || text.size() > 1024 * 1024) {
      return EMSNODE_ERROR;
    }
    reinterpret_cast<Call*>(handle)->reply = std::string(text);
    return EMSNODE_OK;
  }

  static void on_command_fail(emsnode_command_call* handle, emsnode_str message) {
    reinterpret_cast<Call*>(handle)->failure = std::string(view(message));
  }

  static FakeHost& self(emsnode_host_ctx* ctx) { return *reinterpret_cast<FakeHost*>(ctx); }
  static std::string_view view(emsnode_str text) { return detail::to_view(text); }

  static Fields copy_fields(const emsnode_field* fields, std::size_t count) {
    Fields copied;
    copied.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      copied.emplace_back(view(fields[i].key), view(fields[i].value));
    }
    return copied;
  }

  // ---- the manifest's config schema ----

  using ManifestValue =
      std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>>;
  struct SchemaKey {
    std::string type;
    std::optional<ManifestValue> default_value;
    bool required = false;
    std::optional<ManifestValue> min;
    std::optional<ManifestValue> max;
    std::vector<std::string> choices;
  };

  static std::size_t skip_space(const std::string& text, std::size_t at) {
    while (at < text.size() &&
           (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) {
      ++at;
    }
    return at;
  }
  static std::string trim(const std::string& text) {
    const std::size_t begin = skip_space(text, 0);
    std::size_t end = text.size();
    while (end > begin &&
           (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r')) {
      --end;
    }
    return text.substr(begin, end - begin);
  }
  // '[' minus ']' outside strings and comments.
  static int open_brackets(const std::string& text) {
    int depth = 0;
    char quote = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (quote != 0) {
        if (c == '\\' && quote == '"') {
          ++i;
        } else if (c == quote) {
          quote = 0;
        }
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#') {
        while (i < text.size() && text[i] != '\n') ++i;
      } else if (c == '[') {
        ++depth;
      } else if (c == ']') {
        --depth;
      }
    }
    return depth;
  }
  // One TOML value of the kinds a config schema uses: a string, an integer, a float, a boolean
  // or an array of strings.
  template <typename Fail>
  static ManifestValue parse_manifest_value(const std::string& text, std::size_t& at,
                                            const Fail& fail) {
    at = skip_space(text, at);
    if (at >= text.size()) throw fail("a key without a value");
    const char c = text[at];
    if (c == '"' || c == '\'') {
      std::string out;
      for (++at; at < text.size() && text[at] != c; ++at) {
        if (c == '"' && text[at] == '\\' && at + 1 < text.size()) {
          const char escaped = text[++at];
          out += escaped == 'n' ? '\n' : escaped == 't' ? '\t' : escaped;
        } else {
          out += text[at];
        }
      }
      if (at >= text.size()) throw fail("a string without its closing quote");
      ++at;
      return out;
    }
    if (c == '[') {
      std::vector<std::string> items;
      ++at;
      for (;;) {
        at = skip_space(text, at);
        while (at < text.size() && text[at] == '#') {
          at = skip_space(
              text, text.find('\n', at) == std::string::npos ? text.size() : text.find('\n', at));
        }
        if (at < text.size() && text[at] == ']') {
          ++at;
          return items;
        }
        const ManifestValue item = parse_manifest_value(text, at, fail);
        if (!std::holds_alternative<std::string>(item)) throw fail("an array of non-strings");
        items.push_back(std::get<std::string>(item));
        at = skip_space(text, at);
        if (at < text.size() && text[at] == ',') ++at;
      }
    }
    std::size_t end = at;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != ',' &&
           text[end] != ']' && text[end] != '#' && text[end] != '\r' && text[end] != '\n') {
      ++end;
    }
    std::string word = text.substr(at, end - at);
    at = end;
    if (word == "true" || word == "false") return word == "true";
    word.erase(std::remove(word.begin(), word.end(), '_'), word.end());
    const bool is_float = word.find_first_of(".eE") != std::string::npos;
    try {
      std::size_t used = 0;
      if (is_float) {
        const double value = std::stod(word, &used);
        if (used == word.size()) return value;
      } else {
        const long long value = std::stoll(word, &used, 10);
        if (used == word.size()) return static_cast<std::int64_t>(value);
      }
    } catch (const std::exception&) {
      // Reported below.
    }
    throw fail("\"" + word + "\" is not a value a config schema uses");
  }

  // "500ms", "2s", "1.5m", "1h" in milliseconds (rounded up), or nullopt.
  static std::optional<std::chrono::milliseconds> parse_duration_text(std::string_view text) {
    std::size_t i = 0;
    double number = 0;
    bool digits = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      number = number * 10 + (text[i++] - '0');
      digits = true;
    }
    if (i < text.size() && text[i] == '.') {
      double scale = 0.1;
      for (++i; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, scale /= 10) {
        number += (text[i] - '0') * scale;
      }
    }
    if (!digits) return std::nullopt;
    const std::string_view unit = text.substr(i);
    const double ms = unit == "us"   ? number / 1000
                      : unit == "ms" ? number
                      : unit == "s"  ? number * 1000
                      : unit == "m"  ? number * 60000
                      : unit == "h"  ? number * 3600000
                                     : -1;
    if (ms < 0) return std::nullopt;
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(ms)));
  }

  // A manifest value (a default or a bound) as the config value of a key of type `type`.
  static std::optional<ConfigValue> typed(const std::string& type, const ManifestValue& value) {
    if (type == "integer") {
      if (const auto* i = std::get_if<std::int64_t>(&value)) return ConfigValue(*i);
    } else if (type == "float") {
      if (const auto* d = std::get_if<double>(&value)) return ConfigValue(*d);
      if (const auto* i = std::get_if<std::int64_t>(&value)) {
        return ConfigValue(static_cast<double>(*i));
      }
    } else if (type == "boolean") {
      if (const auto* b = std::get_if<bool>(&value)) return ConfigValue(*b);
    } else if (type == "duration") {
      if (const auto* text = std::get_if<std::string>(&value)) {
        if (auto ms = parse_duration_text(*text)) return ConfigValue(*ms);
      }
    } else if (type == "strings") {
      if (const auto* items = std::get_if<std::vector<std::string>>(&value)) {
        return ConfigValue(*items);
      }
    } else if (const auto* text = std::get_if<std::string>(&value)) {
      return ConfigValue(*text);  // string, secret, path, address
    }
    return std::nullopt;
  }

  // A number of an integer, float or duration config value, for its bounds.
  static std::optional<double> magnitude(const ConfigValue& value) {
    if (const auto* i = std::get_if<std::int64_t>(&value)) return static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&value)) return *d;
    if (const auto* ms = std::get_if<std::chrono::milliseconds>(&value)) {
      return static_cast<double>(ms->count());
    }
    return std::nullopt;
  }

  // Applies the manifest's schema to the config as a node does before create: why it refuses,
  // or empty (defaults filled in).
  std::string apply_schema() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!has_schema_) return std::string();
    for (const auto& [key, value] : config_) {
      if (schema_.find(key) == schema_.end()) {
        return "config key '" + key + "': unknown key (plugin.toml declares no [config." + key +
               "])";
      }
    }
    for (const auto& [key, spec] : schema_) {
      const std::string label = "config key '" + key + "': ";
      auto found = config_.find(key);
      if (found == config_.end()) {
        if (spec.default_value) {
          const auto value = typed(spec.type, *spec.default_value);
          if (!value) return label + "the manifest's default is not a " + spec.type;
          config_[key] = *value;
        } else if (spec.required) {
          return label + "missing required key";
        }
        continue;
      }
      ConfigValue& value = found->second;
      if (spec.type == "float") {
        if (const auto* i = std::get_if<std::int64_t>(&value)) value = static_cast<double>(*i);
      }
      const bool type_ok =
          spec.type == "integer"    ? std::holds_alternative<std::int64_t>(value)
          : spec.type == "float"    ? std::holds_alternative<double>(value)
          : spec.type == "boolean"  ? std::holds_alternative<bool>(value)
          : spec.type == "duration" ? std::holds_alternative<std::chrono::milliseconds>(value)
          : spec.type == "strings"  ? std::holds_alternative<std::vector<std::string>>(value)
                                    : std::holds_alternative<std::string>(value);
      if (!type_ok) return label + "not a " + spec.type;
      const std::optional<double> number = magnitude(value);
      for (const auto& [bound, is_min] :
           {std::make_pair(&spec.min, true), std::make_pair(&spec.max, false)}) {
        if (!*bound || !number) continue;
        const auto limit = typed(spec.type, **bound);
        const std::optional<double> limit_number = limit ? magnitude(*limit) : std::nullopt;
        if (!limit_number) return label + "the manifest's bound is not a " + spec.type;
        if (is_min ? *number < *limit_number : *number > *limit_number) {
          return label + "out of range (" + (is_min ? "less than min" : "more than max") + ")";
        }
      }
      if (!spec.choices.empty()) {
        const auto* text = std::get_if<std::string>(&value);
        if (text == nullptr ||
            std::find(spec.choices.begin(), spec.choices.end(), *text) == spec.choices.end()) {
          return label + "not one of the manifest's choices";
        }
      }
    }
    return std::string();
  }

  FakeHost& put(std::string key, ConfigValue value) {
    std::lock_guard<std::mutex> lock(mutex_);
    config_[std::move(key)] = std::move(value);
    return *this;
  }

  template <typename T>
  static const T* config_value(emsnode_host_ctx* ctx, emsnode_str key) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    auto found = host.config_.find(view(key));
    return found == host.config_.end() ? nullptr : std::get_if<T>(&found->second);
  }

  void require_created(const char* call) const {
    if (plugin_ == nullptr) {
      throw std::logic_error(std::string("FakeHost::") + call + ": no plugin is created");
    }
  }

  void clear_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    last_error_.clear();
  }

  emsnode_status refuse(std::string reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    last_error_ = std::move(reason);
    return EMSNODE_ERROR;
  }

  emsnode_status explained(emsnode_status status, const char* call) {
    std::lock_guard<std::mutex> lock(mutex_);
    return explained_locked(status, call);
  }

  // A plugin must explain every failure: flag one that does not, so its test sees it.
  emsnode_status explained_locked(emsnode_status status, const char* call) {
    if (status != EMSNODE_OK && last_error_.empty()) {
      last_error_ = std::string(call) + " failed without calling set_error";
    }
    return status;
  }

  // A host's complaint about a plugin's call, logged as the node would.
  void host_log_locked(std::string event, Fields fields) {
    logs_.push_back(LogRecord{EMSNODE_LOG_ERROR, std::move(event), std::move(fields)});
  }

  template <typename Hook>
  FakeHost& set_hook(Hook& slot, Hook hook) {
    std::lock_guard<std::mutex> lock(mutex_);
    slot = std::move(hook);
    return *this;
  }

  // ---- last_error: one message per thread, as the node keeps it ----

  // Called first by every host function that reports through last_error.
  void clear_call_error() { record_call_error(std::string()); }
  void record_call_error(std::string message) {
    std::lock_guard<std::mutex> lock(mutex_);
    call_errors_[std::this_thread::get_id()] = std::move(message);
  }
  emsnode_status fail_call(std::string message, emsnode_status status = EMSNODE_ERROR) {
    record_call_error(std::move(message));
    return status;
  }
  std::string missing_exports() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string missing;
    for (const auto& [name, minor] : declared_exports_) {
      if (exported_.count(name) == 0) {
        missing += (missing.empty() ? "" : ", ") + name;
      }
    }
    return missing;
  }

  // Well-formed UTF-8 (no overlong form, surrogate or code point past U+10FFFF) without a C0,
  // DEL or C1 control character: what the node accepts in a fact.
  static bool is_fact_text(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x80) {
        if (c < 0x20 || c == 0x7F) return false;
        ++i;
        continue;
      }
      std::size_t n = 0;
      std::uint32_t point = 0;
      if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        point = c & 0x1Fu;
      } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        point = c & 0x0Fu;
      } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        point = c & 0x07u;
      } else {
        return false;
      }
      if (i + n > text.size()) return false;
      for (std::size_t k = 1; k < n; ++k) {
        const auto next = static_cast<unsigned char>(text[i + k]);
        if ((next & 0xC0) != 0x80) return false;
        point = (point << 6) | (next & 0x3Fu);
      }
      const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
      if (point < least[n] || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF) ||
          (point >= 0x80 && point <= 0x9F)) {
        return false;
      }
      i += n;
    }
    return true;
  }

  static std::string no_database(const char* setter) {
    return std::string("the fake host has no database; set one with FakeHost::") + setter;
  }
  // Runs a database or store hook, turning what it throws into the status and message a node
  // gives.
  emsnode_status run_hook(const std::function<void()>& hook) {
    try {
      hook();
      return EMSNODE_OK;
    } catch (const FencedError& e) {
      return fail_call(e.what(), EMSNODE_FENCED);
    } catch (const FileNotFoundError& e) {
      return fail_call(e.what(), EMSNODE_NOT_FOUND);
    } catch (const std::exception& e) {
      return fail_call(e.what());
    } catch (...) {
      return fail_call("a hook threw something that is not a std::exception");
    }
  }
  // What the node says when db_write or db_migrate is called at the wrong time; empty when the
  // call may go ahead. Takes the lock.
  std::string write_refusal(const char* call) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!started_) {
      return std::string(call) + " refused: the plugin is not started (writes are allowed from " +
             "start until stop returns)";
    }
    if (txn_ != nullptr) {
      return std::string(call) + " refused inside a db_write body: use db_exec with its txn";
    }
    return std::string();
  }

  // ---- the file store's rules and streams ----

  // Why the node would refuse `key`, relative to the plugin's folder; empty when it would not.
  // The node's rule (store::check_key on "plugins/<id>/" + key) less UTF-8 validity, and the
  // 1024 bytes counted without the folder's name, which the fake does not know.
  static std::string key_refusal(std::string_view key) {
    if (key.empty()) return "it is empty";
    if (key.size() > 1024) return "it is longer than 1024 bytes";
    if (key.front() == '/') return "it is absolute (starts with '/')";
    for (const char c : key) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '\\' || byte < 0x20 || byte == 0x7f) {
        return "it contains a NUL, a backslash or a control character";
      }
    }
    for (std::size_t start = 0;;) {
      const std::size_t end = std::min(key.find('/', start), key.size());
      const std::string_view segment = key.substr(start, end - start);
      if (segment.empty() || segment == "." || segment == "..") {
        return "it has an empty, \".\" or \"..\" segment";
      }
      if (end == key.size()) return std::string();
      start = end + 1;
    }
  }

  // What the node says when store call `call` may not run now; empty when it may. Takes the lock.
  std::string store_refusal(const char* call, std::string_view key, bool writes) const {
    if (std::string why = key_refusal(key); !why.empty()) {
      return std::string(call) + ": key \"" + std::string(key) +
             "\" refused (keys are relative to the plugin's folder and stay in it): " + why;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (txn_ != nullptr) {
      return std::string(call) + " refused inside a db_write body";
    }
    if (writes && !started_) {
      return std::string(call) + " refused: the plugin is not started (writes are allowed from " +
             "start until stop returns)";
    }
    return std::string();
  }

  // The plugin's read callback as the stream a put hook reads.
  class ReadCallbackBuffer final : public std::streambuf {
   public:
    ReadCallbackBuffer(emsnode_store_read_fn read, void* user_data)
        : read_(read), user_data_(user_data) {}

   protected:
    int_type underflow() override {
      const std::int64_t got = read_(user_data_, buffer_, sizeof buffer_);
      if (got < 0) {
        throw std::runtime_error("the plugin's read callback returned " + std::to_string(got) +
                                 ": nothing was published");
      }
      if (got > static_cast<std::int64_t>(sizeof buffer_)) {
        throw std::runtime_error("the plugin's read callback returned " + std::to_string(got) +
                                 " for a buffer of " + std::to_string(sizeof buffer_) + " bytes");
      }
      if (got == 0) return traits_type::eof();
      setg(buffer_, buffer_, buffer_ + got);
      return traits_type::to_int_type(buffer_[0]);
    }

   private:
    emsnode_store_read_fn read_;
    void* user_data_;
    char buffer_[16 * 1024];
  };

  // The plugin's write callback as the stream a get hook writes.
  class WriteCallbackBuffer final : public std::streambuf {
   public:
    WriteCallbackBuffer(emsnode_store_write_fn write, void* user_data)
        : write_(write), user_data_(user_data) {}

   protected:
    std::streamsize xsputn(const char* data, std::streamsize count) override {
      const int result = write_(user_data_, data, static_cast<std::size_t>(count));
      if (result != 0) {
        throw std::runtime_error("the plugin's write callback returned " + std::to_string(result) +
                                 ": the get was aborted");
      }
      return count;
    }
    int_type overflow(int_type c) override {
      if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
      const char byte = traits_type::to_char_type(c);
      xsputn(&byte, 1);
      return c;
    }

   private:
    emsnode_store_write_fn write_;
    void* user_data_;
  };

  // The ABI's catalog entry of `file`: the fields that fit in `out.struct_size`.
  static void fill_info(const FileInfo& file, emsnode_store_info& out) {
    const auto fits = [&](std::size_t offset, std::size_t size) {
      return offset + size <= out.struct_size;
    };
    if (fits(offsetof(emsnode_store_info, size), sizeof out.size)) out.size = file.size;
    if (fits(offsetof(emsnode_store_info, modified_at_ms), sizeof out.modified_at_ms)) {
      out.modified_at_ms = file.modified_at_ms;
    }
    if (fits(offsetof(emsnode_store_info, epoch), sizeof out.epoch)) out.epoch = file.epoch;
    if (fits(offsetof(emsnode_store_info, sha256), sizeof out.sha256)) {
      const std::size_t n = std::min(file.sha256.size(), sizeof out.sha256 - 1);
      std::copy_n(file.sha256.data(), n, out.sha256);
      std::fill(out.sha256 + n, out.sha256 + sizeof out.sha256, '\0');
    }
  }

  template <typename Hook>
  Hook store_hook(const Hook& slot) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return slot;
  }
  static std::string no_store(const char* setter) {
    return std::string("the fake host has no file store; set one with FakeHost::") + setter;
  }

  static Params copy_params(const emsnode_db_value* params, std::size_t count) {
    Params copied;
    copied.reserve(count);
    for (std::size_t i = 0; i < count; ++i) copied.push_back(detail::from_db_value(params[i]));
    return copied;
  }

  // Passes `rows` to the plugin's row callback as the node does, until it asks to stop.
  static void deliver(const std::vector<Row>& rows, emsnode_db_row_fn on_row, void* user_data) {
    if (on_row == nullptr) return;
    std::vector<emsnode_db_value> columns;
    for (const Row& row : rows) {
      columns.clear();
      for (const Value& value : row.columns()) columns.push_back(detail::to_db_value(value));
      if (on_row(user_data, columns.data(), columns.size()) != 0) return;
    }
  }

  // The tables, indexes and views a CREATE, ALTER or DROP statement names (lower case, without a
  // schema qualifier), as the node reads them to keep a plugin's migrations to its own names;
  // empty for any other statement. Quoted identifiers count as names; string literals and
  // comments are skipped.
  static std::vector<std::string> ddl_names(std::string_view sql) {
    std::vector<std::string> tokens;
    const auto is_word = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '$' || static_cast<unsigned char>(c) >= 0x80;
    };
    for (std::size_t i = 0; i < sql.size();) {
      const char c = sql[i];
      if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
        while (i < sql.size() && sql[i] != '\n') ++i;
      } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
        const std::size_t end = sql.find("*/", i + 2);
        i = end == std::string_view::npos ? sql.size() : end + 2;
      } else if (c == '\'') {
        const std::size_t end = sql.find('\'', i + 1);
        i = end == std::string_view::npos ? sql.size() : end + 1;
      } else if (c == '"' || c == '`' || c == '[') {
        const char close = c == '[' ? ']' : c;
        const std::size_t end = sql.find(close, i + 1);
        const std::size_t stop = end == std::string_view::npos ? sql.size() : end;
        tokens.emplace_back(sql.substr(i + 1, stop - i - 1));
        i = stop + 1;
      } else if (is_word(c)) {
        const std::size_t begin = i;
        while (i < sql.size() && is_word(sql[i])) ++i;
        tokens.emplace_back(sql.substr(begin, i - begin));
      } else {
        if (c == '.' || c == '(') tokens.emplace_back(1, c);
        ++i;
      }
    }
    for (std::string& token : tokens) {
      std::transform(token.begin(), token.end(), token.begin(), [](char ch) {
        return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch;
      });
    }
    std::size_t at = 0;
    const auto next_is = [&](std::initializer_list<const char*> words) {
      return at < tokens.size() && std::any_of(words.begin(), words.end(),
                                               [&](const char* w) { return tokens[at] == w; });
    };
    const auto skip = [&](std::initializer_list<const char*> words) {
      while (next_is(words)) ++at;
    };
    std::vector<std::string> names;
    const auto take_name = [&] {
      if (at >= tokens.size()) return;
      std::string name = tokens[at++];
      while (at + 1 < tokens.size() && tokens[at] == ".") {
        name = tokens[at + 1];
        at += 2;
      }
      names.push_back(name);
    };
    if (next_is({"create"})) {
      ++at;
      skip({"unique", "temp", "temporary"});
      if (!next_is({"table", "index", "view"})) return names;
      const bool index = tokens[at++] == "index";
      skip({"if", "not", "exists"});
      take_name();
      if (index && next_is({"on"})) {
        ++at;
        take_name();
      }
    } else if (next_is({"drop"})) {
      ++at;
      if (!next_is({"table", "index", "view"})) return names;
      ++at;
      skip({"if", "exists"});
      take_name();
    } else if (next_is({"alter"})) {
      ++at;
      if (!next_is({"table"})) return names;
      ++at;
      skip({"if", "exists", "only"});
      take_name();
      for (; at + 1 < tokens.size(); ++at) {
        if (tokens[at] == "rename" && tokens[at + 1] == "to") {
          at += 2;
          take_name();
          break;
        }
      }
    }
    return names;
  }

  static bool valid_metric_name(std::string_view name) {
    if (name.empty() || !(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z'))) {
      return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
      return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
  }

  // ---- the emsnode_host_api functions ----

  static void on_set_error(emsnode_host_ctx* ctx, emsnode_str message) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    host.last_error_ = std::string(view(message));
  }

  static void on_log(emsnode_host_ctx* ctx, emsnode_log_level level, emsnode_str event,
                     const emsnode_field* fields, std::size_t field_count) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    if (level >= host.log_level_) {
      host.logs_.push_back(
          LogRecord{level, std::string(view(event)), copy_fields(fields, field_count)});
    }
  }

  static int on_log_enabled(emsnode_host_ctx* ctx, emsnode_log_level level) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    return level >= host.log_level_ ? 1 : 0;
  }

  static emsnode_status on_config_string(emsnode_host_ctx* ctx, emsnode_str key, emsnode_str* out) {
    const auto* value = config_value<std::string>(ctx, key);
    if (value == nullptr) return EMSNODE_NOT_FOUND;
    *out = detail::to_str(*value);
    return EMSNODE_OK;
  }
  static emsnode_status on_config_int(emsnode_host_ctx* ctx, emsnode_str key, std::int64_t* out) {
    const auto* value = config_value<std::int64_t>(ctx, key);
    if (value == nullptr) return EMSNODE_NOT_FOUND;
    *out = *value;
    return EMSNODE_OK;
  }
  static emsnode_status on_config_float(emsnode_host_ctx* ctx, emsnode_str key, double* out) {
    const auto* value = config_value<double>(ctx, key);
    if (value == nullptr) return EMSNODE_NOT_FOUND;
    *out = *value;
    return EMSNODE_OK;
  }
  static emsnode_status on_config_bool(emsnode_host_ctx* ctx, emsnode_str key, int* out) {
    const auto* value = config_value<bool>(ctx, key);
    if (value == nullptr) return EMSNODE_NOT_FOUND;
    *out = *value ? 1 : 0;
    return EMSNODE_OK;
  }
  static emsnode_status on_config_duration_ms(emsnode_host_ctx* ctx, emsnode_str key,
                                              std::uint64_t* out) {
    const auto* value = config_value<std::chrono::milliseconds>(ctx, key);
    if (value == nullptr || value->count() < 0) return EMSNODE_NOT_FOUND;
    *out = static_cast<std::uint64_t>(value->count());
    return EMSNODE_OK;
  }
  static emsnode_status on_config_array_size(emsnode_host_ctx* ctx, emsnode_str key,
                                             std::size_t* out) {
    const auto* value = config_value<std::vector<std::string>>(ctx, key);
    if (value == nullptr) return EMSNODE_NOT_FOUND;
    *out = value->size();
    return EMSNODE_OK;
  }
  static emsnode_status on_config_array_string(emsnode_host_ctx* ctx, emsnode_str key,
                                               std::size_t index, emsnode_str* out) {
    const auto* value = config_value<std::vector<std::string>>(ctx, key);
    if (value == nullptr || index >= value->size()) return EMSNODE_NOT_FOUND;
    *out = detail::to_str((*value)[index]);
    return EMSNODE_OK;
  }

  static emsnode_str on_node_id(emsnode_host_ctx* ctx) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    return detail::to_str(host.node_id_);
  }

  static std::uint64_t on_current_epoch(emsnode_host_ctx* ctx) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    return host.epoch_;
  }

  static emsnode_status on_post(emsnode_host_ctx* ctx, emsnode_task_fn fn, void* user_data) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    if (!host.started_) {
      host.call_errors_[std::this_thread::get_id()] = "post refused: the plugin is not started";
      return EMSNODE_ERROR;
    }
    host.call_errors_[std::this_thread::get_id()].clear();
    host.posts_.push_back(Task{fn, user_data});
    return EMSNODE_OK;
  }

  static emsnode_timer_id on_timer_start(emsnode_host_ctx* ctx, std::uint64_t delay_ms,
                                         std::uint64_t period_ms, emsnode_task_fn fn,
                                         void* user_data) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    if (!host.started_) {
      host.call_errors_[std::this_thread::get_id()] =
          "timer_start refused: the plugin is not started";
      return 0;
    }
    host.call_errors_[std::this_thread::get_id()].clear();
    const emsnode_timer_id id = ++host.last_timer_id_;  // never reused
    const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(delay_ms));
    const auto period = std::chrono::milliseconds(static_cast<std::int64_t>(period_ms));
    host.timers_.emplace(id, ArmedTimer{host.now_ + delay, period, Task{fn, user_data}});
    return id;
  }

  // As the ABI requires: once this returns the callback is not running, unless this is called
  // from that very callback.
  static void on_timer_cancel(emsnode_host_ctx* ctx, emsnode_timer_id timer) {
    FakeHost& host = self(ctx);
    std::unique_lock<std::mutex> lock(host.mutex_);
    host.timers_.erase(timer);
    const auto caller = std::this_thread::get_id();
    host.timer_done_.wait(
        lock, [&] { return host.running_timer_ != timer || host.running_thread_ == caller; });
  }

  static emsnode_metric* on_metric_register(emsnode_host_ctx* ctx, emsnode_metric_kind kind,
                                            emsnode_str name, emsnode_str help,
                                            const emsnode_field* labels, std::size_t label_count,
                                            const double* buckets, std::size_t bucket_count) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    std::string& call_error = host.call_errors_[std::this_thread::get_id()];
    call_error.clear();
    const std::string metric_name(view(name));
    if (!valid_metric_name(metric_name)) {
      call_error = "metric \"" + metric_name + "\" refused: not [a-z_][a-z0-9_]*";
      host.host_log_locked("host.metric_refused",
                           {{"name", metric_name}, {"reason", "not [a-z_][a-z0-9_]*"}});
      return nullptr;
    }
    Fields label_fields = copy_fields(labels, label_count);
    for (const auto& metric : host.metrics_) {
      if (metric->record.name != metric_name) continue;
      if (metric->record.kind != kind) {
        call_error = "metric \"" + metric_name + "\" refused: registered with another kind";
        host.host_log_locked("host.metric_refused",
                             {{"name", metric_name}, {"reason", "registered with another kind"}});
        return nullptr;
      }
      if (metric->record.labels == label_fields) {
        return reinterpret_cast<emsnode_metric*>(metric.get());
      }
    }
    MetricRecord record{kind, metric_name, std::string(view(help)), std::move(label_fields), {},
                        0,    {}};
    if (buckets != nullptr) {
      record.buckets.assign(buckets, buckets + bucket_count);
    }
    host.metrics_.push_back(std::make_unique<Metric>(Metric{&host, std::move(record)}));
    return reinterpret_cast<emsnode_metric*>(host.metrics_.back().get());
  }

  // Updates one metric, or logs what the plugin did wrong (a misuse the node would also log).
  template <typename Update>
  static void update_metric(emsnode_metric* handle, const char* call,
                            std::initializer_list<emsnode_metric_kind> kinds, Update update) {
    auto& metric = *reinterpret_cast<Metric*>(handle);
    FakeHost& host = *metric.owner;
    std::lock_guard<std::mutex> lock(host.mutex_);
    if (std::find(kinds.begin(), kinds.end(), metric.record.kind) == kinds.end()) {
      host.host_log_locked("host.metric_misused", {{"name", metric.record.name}, {"call", call}});
      return;
    }
    update(metric.record);
  }

  static void on_metric_add(emsnode_metric* handle, double delta) {
    auto& metric = *reinterpret_cast<Metric*>(handle);
    if (metric.record.kind == EMSNODE_METRIC_COUNTER && delta < 0) {
      std::lock_guard<std::mutex> lock(metric.owner->mutex_);
      metric.owner->host_log_locked("host.metric_misused",
                                    {{"name", metric.record.name}, {"call", "metric_add < 0"}});
      return;
    }
    update_metric(handle, "metric_add", {EMSNODE_METRIC_COUNTER, EMSNODE_METRIC_GAUGE},
                  [&](MetricRecord& record) { record.value += delta; });
  }
  static void on_metric_set(emsnode_metric* handle, double value) {
    update_metric(handle, "metric_set", {EMSNODE_METRIC_GAUGE},
                  [&](MetricRecord& record) { record.value = value; });
  }
  static void on_metric_observe(emsnode_metric* handle, double value) {
    update_metric(handle, "metric_observe", {EMSNODE_METRIC_HISTOGRAM},
                  [&](MetricRecord& record) { record.observations.push_back(value); });
  }

  static void on_health_report(emsnode_host_ctx* ctx, emsnode_health health, emsnode_str detail) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    host.health_ = health;
    host.health_detail_ = std::string(view(detail));
  }

  static emsnode_str on_last_error(emsnode_host_ctx* ctx) {
    FakeHost& host = self(ctx);
    std::lock_guard<std::mutex> lock(host.mutex_);
    // The string stays in the map, unchanged until this thread's next call: the view is valid
    // as long as the ABI promises.
    return detail::to_str(host.call_errors_[std::this_thread::get_id()]);
  }

  static emsnode_status on_db_query(emsnode_host_ctx* ctx, emsnode_str sql,
                                    const emsnode_db_value* params, std::size_t param_count,
                                    emsnode_db_row_fn on_row, void* user_data) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    DbQueryHook hook;
    bool in_body = false;
    {
      std::lock_guard<std::mutex> lock(host.mutex_);
      in_body = host.txn_ != nullptr;
      hook = host.db_query_;
    }
    if (in_body) {
      return host.fail_call("db_query refused inside a db_write body: use db_exec with its txn");
    }
    if (!hook) return host.fail_call(no_database("set_db_query"));
    std::vector<Row> rows;
    const emsnode_status status =
        host.run_hook([&] { rows = hook(view(sql), copy_params(params, param_count)); });
    if (status != EMSNODE_OK) return status == EMSNODE_FENCED ? EMSNODE_ERROR : status;
    deliver(rows, on_row, user_data);
    return EMSNODE_OK;
  }

  static emsnode_status on_db_write(emsnode_host_ctx* ctx, emsnode_db_txn_fn body,
                                    void* user_data) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (std::string refusal = host.write_refusal("db_write"); !refusal.empty()) {
      return host.fail_call(std::move(refusal));
    }
    DbWriteHook hook;
    {
      std::lock_guard<std::mutex> lock(host.mutex_);
      hook = host.db_write_;
    }
    if (!hook) return host.fail_call(no_database("set_db_write"));

    Txn txn{&host, std::this_thread::get_id(), false, {}};
    bool ran = false;
    emsnode_status body_status = EMSNODE_OK;
    const std::function<bool()> run_body = [&] {
      if (ran) throw std::logic_error("FakeHost: a db_write hook ran the body twice");
      ran = true;
      {
        std::lock_guard<std::mutex> lock(host.mutex_);
        host.txn_ = &txn;
      }
      body_status = body(user_data, reinterpret_cast<emsnode_db_txn*>(&txn));
      std::lock_guard<std::mutex> lock(host.mutex_);
      host.txn_ = nullptr;
      return body_status == EMSNODE_OK && !txn.spoiled;
    };
    const emsnode_status status = host.run_hook([&] { hook(run_body); });
    if (status != EMSNODE_OK) return status;
    if (ran && txn.spoiled) return host.fail_call(txn.first_error);
    if (ran && body_status != EMSNODE_OK) {
      return host.fail_call("the transaction body returned " +
                            std::to_string(static_cast<int>(body_status)) + ": rolled back");
    }
    return EMSNODE_OK;
  }

  static emsnode_status on_db_exec(emsnode_db_txn* handle, emsnode_str sql,
                                   const emsnode_db_value* params, std::size_t param_count,
                                   emsnode_db_row_fn on_row, void* user_data,
                                   std::uint64_t* changes) {
    Txn& txn = *reinterpret_cast<Txn*>(handle);
    FakeHost& host = *txn.owner;
    host.clear_call_error();
    DbExecHook hook;
    bool running = false;
    {
      std::lock_guard<std::mutex> lock(host.mutex_);
      running = host.txn_ == &txn && txn.thread == std::this_thread::get_id();
      hook = host.db_exec_;
    }
    if (!running) {
      return host.fail_call(
          "db_exec refused: its txn belongs to a db_write body that is not "
          "running on this thread");
    }
    if (txn.spoiled) {
      return host.fail_call("db_exec refused: an earlier statement of this transaction failed (" +
                            txn.first_error + ")");
    }
    DbExecResult result;
    const emsnode_status status =
        hook ? host.run_hook([&] { result = hook(view(sql), copy_params(params, param_count)); })
             : host.fail_call(no_database("set_db_exec"));
    if (status != EMSNODE_OK) {
      // A failed statement spoils the transaction on every backend the node supports.
      txn.spoiled = true;
      std::lock_guard<std::mutex> lock(host.mutex_);
      txn.first_error = host.call_errors_[std::this_thread::get_id()];
      return EMSNODE_ERROR;
    }
    deliver(result.rows, on_row, user_data);
    if (changes != nullptr) *changes = on_row != nullptr ? result.rows.size() : result.changes;
    return EMSNODE_OK;
  }

  static emsnode_status on_db_migrate(emsnode_host_ctx* ctx, const emsnode_str* steps,
                                      std::size_t step_count) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (std::string refusal = host.write_refusal("db_migrate"); !refusal.empty()) {
      return host.fail_call(std::move(refusal));
    }
    DbMigrateHook hook;
    {
      std::lock_guard<std::mutex> lock(host.mutex_);
      hook = host.db_migrate_;
    }
    // The plugin's id, from its table; none when a test marked the fake started without one.
    std::string prefix;
    {
      std::lock_guard<std::mutex> lock(host.mutex_);
      if (host.plugin_ != nullptr) prefix = std::string(view(host.plugin_->id)) + "_";
    }
    std::replace(prefix.begin(), prefix.end(), '-', '_');
    std::vector<std::string> copied;
    copied.reserve(step_count);
    for (std::size_t i = 0; i < step_count; ++i) {
      copied.emplace_back(view(steps[i]));
      if (prefix.empty()) continue;
      for (const std::string& name : ddl_names(copied.back())) {
        if (name.compare(0, prefix.size(), prefix) != 0) {
          return host.fail_call("db_migrate: step " + std::to_string(i + 1) + " touches \"" + name +
                                "\", which is not this plugin's: its tables, indexes, " +
                                "views and triggers are named " + prefix + "...");
        }
      }
    }
    if (!hook) return host.fail_call(no_database("set_db_migrate"));
    return host.run_hook([&] { hook(copied); });
  }

  static emsnode_status on_store_put(emsnode_host_ctx* ctx, emsnode_str key,
                                     emsnode_store_read_fn read, void* user_data) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (std::string refusal = host.store_refusal("store_put", view(key), true); !refusal.empty()) {
      return host.fail_call(std::move(refusal));
    }
    const StorePutHook hook = host.store_hook(host.store_put_);
    if (!hook) return host.fail_call(no_store("set_store_put"));
    ReadCallbackBuffer buffer(read, user_data);
    std::istream content(&buffer);
    content.exceptions(std::ios::badbit);
    return host.run_hook([&] { hook(view(key), content); });
  }

  static emsnode_status on_store_get(emsnode_host_ctx* ctx, emsnode_str key,
                                     emsnode_store_write_fn write, void* user_data) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (std::string refusal = host.store_refusal("store_get", view(key), false); !refusal.empty()) {
      return host.fail_call(std::move(refusal));
    }
    const StoreGetHook hook = host.store_hook(host.store_get_);
    if (!hook) return host.fail_call(no_store("set_store_get"));
    WriteCallbackBuffer buffer(write, user_data);
    std::ostream out(&buffer);
    out.exceptions(std::ios::badbit);
    return host.run_hook([&] { hook(view(key), out); });
  }

  static emsnode_status on_store_stat(emsnode_host_ctx* ctx, emsnode_str key,
                                      emsnode_store_info* out) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (std::string refusal = host.store_refusal("store_stat", view(key), false);
        !refusal.empty()) {
      return host.fail_call(std::move(refusal));
    }
    const StoreStatHook hook = host.store_hook(host.store_stat_);
    if (!hook) return host.fail_call(no_store("set_store_stat"));
    std::optional<FileInfo> file;
    const emsnode_status status = host.run_hook([&] { file = hook(view(key)); });
    if (status != EMSNODE_OK) return status;
    if (!file) {
      return host.fail_call("store_stat: no such file: " + std::string(view(key)),
                            EMSNODE_NOT_FOUND);
    }
    fill_info(*file, *out);
    return EMSNODE_OK;
  }

  static emsnode_status on_store_list(emsnode_host_ctx* ctx, emsnode_str prefix,
                                      emsnode_store_entry_fn on_entry, void* user_data) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    // As the node: a prefix that no valid key can start with is refused.
    const std::string probe = std::string(view(prefix)) + "x";
    if (std::string refusal = host.store_refusal("store_list", probe, false); !refusal.empty()) {
      return host.fail_call("store_list: prefix \"" + std::string(view(prefix)) +
                            "\" refused: no key of the plugin's folder can start with it");
    }
    if (on_entry == nullptr) return host.fail_call("store_list: on_entry is NULL");
    const StoreListHook hook = host.store_hook(host.store_list_);
    if (!hook) return host.fail_call(no_store("set_store_list"));
    std::vector<FileInfo> files;
    const emsnode_status status = host.run_hook([&] { files = hook(view(prefix)); });
    if (status != EMSNODE_OK) return status;
    for (const FileInfo& file : files) {
      emsnode_store_info info{};
      info.struct_size = sizeof info;
      fill_info(file, info);
      if (on_entry(user_data, detail::to_str(file.key), &info) != 0) break;
    }
    return EMSNODE_OK;
  }

  static emsnode_status on_store_remove(emsnode_host_ctx* ctx, emsnode_str key) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (std::string refusal = host.store_refusal("store_remove", view(key), true);
        !refusal.empty()) {
      return host.fail_call(std::move(refusal));
    }
    const StoreRemoveHook hook = host.store_hook(host.store_remove_);
    if (!hook) return host.fail_call(no_store("set_store_remove"));
    return host.run_hook([&] { hook(view(key)); });
  }

  static emsnode_status on_api_export(emsnode_host_ctx* ctx, emsnode_str name, std::uint32_t minor,
                                      const void* table) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    const std::string api(view(name));
    std::lock_guard<std::mutex> lock(host.mutex_);
    std::string refusal;
    const auto declared = host.declared_exports_.find(api);
    if (!host.creating_) {
      refusal = "called outside create (export every API in create)";
    } else if (!host.declared_exports_.empty() && declared == host.declared_exports_.end()) {
      refusal = "\"" + api + "\" is not declared under exports in plugin.toml";
    } else if (declared != host.declared_exports_.end() && declared->second != minor) {
      refusal = api + " at minor " + std::to_string(minor) + ", but plugin.toml declares " + api +
                "." + std::to_string(declared->second);
    } else if (table == nullptr) {
      refusal = api + ": the table is NULL";
    } else if (host.exported_.count(api) != 0) {
      refusal = api + " is already exported";
    }
    if (!refusal.empty()) {
      host.call_errors_[std::this_thread::get_id()] = "api_export: " + refusal;
      return EMSNODE_ERROR;
    }
    host.exported_[api] = ExportedApi{table, minor};
    return EMSNODE_OK;
  }

  static emsnode_status on_api_use(emsnode_host_ctx* ctx, emsnode_str name, const void** table,
                                   std::uint32_t* minor) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    if (table == nullptr) return host.fail_call("api_use: table is NULL");
    std::optional<ExportedApi> provided;
    {
      std::lock_guard<std::mutex> lock(host.mutex_);
      const auto found = host.provided_.find(view(name));
      if (found != host.provided_.end()) provided = found->second;
    }
    if (!provided) {
      return host.fail_call("api_use: the fake host provides no shared API \"" +
                            std::string(view(name)) + "\"; provide one with FakeHost::provide_api");
    }
    *table = provided->table;
    if (minor != nullptr) *minor = provided->minor;
    return EMSNODE_OK;
  }

  static emsnode_status on_status_fact(emsnode_host_ctx* ctx, emsnode_str name, emsnode_str value,
                                       emsnode_severity severity) {
    FakeHost& host = self(ctx);
    host.clear_call_error();
    const std::string_view fact_name = view(name);
    const std::string_view fact_value = view(value);
    std::underlying_type_t<emsnode_severity> level;
    std::memcpy(&level, &severity, sizeof level);
    if (level != EMSNODE_SEVERITY_INFO && level != EMSNODE_SEVERITY_WARNING &&
        level != EMSNODE_SEVERITY_CRITICAL) {
      return host.fail_call("status_fact: severity " + std::to_string(level) +
                            " is none of EMSNODE_SEVERITY_INFO, _WARNING, _CRITICAL");
    }
    if (fact_name.empty() || fact_name.size() > 64) {
      return host.fail_call("status_fact: a fact's name is 1 to 64 bytes, not " +
                            std::to_string(fact_name.size()));
    }
    if (fact_value.size() > 256) {
      return host.fail_call("status_fact: the value of fact \"" + std::string(fact_name) +
                            "\" is over the 256 bytes allowed");
    }
    if (!is_fact_text(fact_name) || !is_fact_text(fact_value)) {
      return host.fail_call("status_fact: fact \"" + std::string(fact_name) +
                            "\" is not UTF-8 without control characters");
    }
    std::lock_guard<std::mutex> lock(host.mutex_);
    const auto found = std::find_if(host.facts_.begin(), host.facts_.end(),
                                    [&](const Fact& fact) { return fact.name == fact_name; });
    if (fact_value.empty()) {
      if (found != host.facts_.end()) host.facts_.erase(found);
    } else if (found != host.facts_.end()) {
      found->value = std::string(fact_value);
      found->severity = severity;
    } else if (host.facts_.size() >= 32) {
      host.call_errors_[std::this_thread::get_id()] =
          "status_fact: a plugin has at most 32 facts; remove one (set it to \"\") before adding "
          "\"" +
          std::string(fact_name) + "\"";
      return EMSNODE_ERROR;
    } else {
      host.facts_.push_back(Fact{std::string(fact_name), std::string(fact_value), severity});
    }
    return EMSNODE_OK;
  }

  emsnode_host_api api_{};
  const emsnode_plugin_api* plugin_ = nullptr;
  void* instance_ = nullptr;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable timer_done_;
  std::string last_error_;
  std::string node_id_ = "fake-node";
  std::uint64_t epoch_ = 1;
  std::map<std::string, ConfigValue, std::less<>> config_;
  std::map<std::string, SchemaKey, std::less<>> schema_;  // from manifest()
  bool has_schema_ = false;
  emsnode_log_level log_level_ = EMSNODE_LOG_TRACE;
  std::vector<LogRecord> logs_;
  std::vector<std::unique_ptr<Metric>> metrics_;
  emsnode_health health_ = EMSNODE_HEALTH_OK;
  std::string health_detail_;
  bool started_ = false;
  std::chrono::milliseconds now_{0};
  std::deque<Task> posts_;
  std::map<emsnode_timer_id, ArmedTimer> timers_;
  emsnode_timer_id last_timer_id_ = 0;
  emsnode_timer_id running_timer_ = 0;
  std::thread::id running_thread_;  // the thread running running_timer_
  std::size_t leaked_timers_ = 0;
  std::chrono::milliseconds last_stop_duration_{0};
  std::map<std::thread::id, std::string> call_errors_;  // last_error, per thread
  DbQueryHook db_query_;
  DbExecHook db_exec_;
  DbWriteHook db_write_;
  DbMigrateHook db_migrate_;
  StorePutHook store_put_;
  StoreGetHook store_get_;
  StoreStatHook store_stat_;
  StoreListHook store_list_;
  StoreRemoveHook store_remove_;
  Txn* txn_ = nullptr;  // the db_write body that is running
  // Control commands: declared by the test, attached by create, run on the test's thread.
  std::map<std::string, DeclaredCommand, std::less<>> commands_;
  std::map<std::string, Handler, std::less<>> handlers_;
  bool creating_ = false;
  std::map<std::string, ExportedApi, std::less<>> provided_;  // what api_use returns
  std::map<std::string, ExportedApi, std::less<>> exported_;  // what the plugin exported
  std::map<std::string, std::uint32_t, std::less<>> declared_exports_;
  std::vector<Fact> facts_;
};

}  // namespace emsnode::sdk::testing
