#include "host/host_services.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <istream>
#include <optional>
#include <ostream>
#include <streambuf>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/confinement.hpp"
#include "db/migrations.hpp"
#include "log/log.hpp"
#include "store/file_store.hpp"
#include "store/keys.hpp"

namespace emsnode::host {
namespace {

using std::chrono::milliseconds;

std::string_view view(emsnode_str text) {
  return text.len == 0 ? std::string_view() : std::string_view(text.ptr, text.len);
}

emsnode_str str(std::string_view text) {
  return emsnode_str{text.data(), text.size()};
}

log::Level to_level(emsnode_log_level level) {
  switch (level) {
    case EMSNODE_LOG_TRACE:
      return log::Level::trace;
    case EMSNODE_LOG_DEBUG:
      return log::Level::debug;
    case EMSNODE_LOG_INFO:
      return log::Level::info;
    case EMSNODE_LOG_WARNING:
      return log::Level::warning;
    case EMSNODE_LOG_ERROR:
      return log::Level::error;
  }
  return log::Level::error;  // a value this host does not know: better seen than dropped
}

// Longer delays are clamped so that "now + delay" cannot overflow the clock.
constexpr milliseconds kMaxDelay = std::chrono::hours(24 * 365 * 10);

milliseconds to_delay(std::uint64_t ms) {
  return ms >= static_cast<std::uint64_t>(kMaxDelay.count()) ? kMaxDelay : milliseconds(ms);
}

metrics::Series* series_of(emsnode_metric* metric) {
  return reinterpret_cast<metrics::Series*>(metric);
}

emsnode_metric* handle_of(metrics::Series& series) {
  return reinterpret_cast<emsnode_metric*>(&series);
}

void report_misuse(metrics::Series& series, std::string_view call, std::string_view reason) {
  if (!series.first_misuse()) return;
  log::write("host", log::Level::warning, "plugin.metric_misuse",
             {{"metric", series.name()},
              {"kind", std::string(kind_name(series.kind()))},
              {"call", std::string(call)},
              {"reason", std::string(reason)}});
}

// "emsnode_plugin_<id>_": plugin ids may hold '-', which metric names cannot.
std::string metric_prefix(const std::string& plugin_id) {
  std::string prefix = "emsnode_plugin_" + plugin_id + "_";
  std::replace(prefix.begin(), prefix.end(), '-', '_');
  return prefix;
}

bool is_plugin_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

template <typename T>
const T* config_value(emsnode_host_ctx* ctx, emsnode_str key) {
  return PluginContext::from(ctx).values().get<T>(view(key));
}

// ---- last_error: why this thread's latest failing host call failed ----

// Per thread, as the ABI promises: a plugin reads it right after the call that failed, on the
// same thread, while its other threads and the executor go on making calls of their own.
thread_local std::string t_call_error;

void clear_call_error() {
  t_call_error.clear();
}

emsnode_status fail_call(std::string message, emsnode_status status = EMSNODE_ERROR) {
  t_call_error = std::move(message);
  return status;
}

// ---- shared database ----

// What an emsnode_db_txn* points to: the transaction of one db_write body.
struct WriteTxn {
  db::Transaction* tx = nullptr;
  db::Confinement confinement;  // the plugin's whose body runs
  bool spoiled = false;  // a statement failed: the transaction rolls back whatever body returns
  std::string first_error;
};

// The body running on this thread, if any. db_exec accepts only its txn (a txn kept past its
// body, or used from another thread, is refused without being touched), and nothing else of the
// database may be called from a body: on PostgreSQL it would need a second connection while the
// body's transaction holds locks.
thread_local WriteTxn* t_running_txn = nullptr;

class RunningTxn {
 public:
  explicit RunningTxn(WriteTxn& txn) { t_running_txn = &txn; }
  RunningTxn(const RunningTxn&) = delete;
  RunningTxn& operator=(const RunningTxn&) = delete;
  ~RunningTxn() { t_running_txn = nullptr; }
};

emsnode_db_txn* handle_of(WriteTxn& txn) {
  return reinterpret_cast<emsnode_db_txn*>(&txn);
}

// Thrown through Database::fenced to roll back a body that failed; never leaves db_write.
struct RollBack {};

db::Value to_db(const emsnode_db_value& value, std::size_t index) {
  // A plugin may pass any number as the type: read it as a number, since loading a value outside
  // the enum's range through the enum type is undefined behaviour.
  std::underlying_type_t<emsnode_db_type> type;
  std::memcpy(&type, &value.type, sizeof type);
  switch (type) {
    case EMSNODE_DB_NULL:
      return nullptr;
    case EMSNODE_DB_INTEGER:
      return value.integer;
    case EMSNODE_DB_FLOAT:
      return value.floating;
    case EMSNODE_DB_TEXT:
      return std::string(view(value.bytes));
    case EMSNODE_DB_BLOB:
      return db::Blob{std::string(view(value.bytes))};
  }
  throw db::DbError("parameter " + std::to_string(index) + " has the unknown type " +
                    std::to_string(type));
}

db::Params to_params(const emsnode_db_value* params, std::size_t count) {
  if (params == nullptr && count > 0) {
    throw db::DbError("params is NULL but param_count is " + std::to_string(count));
  }
  db::Params converted;
  converted.reserve(count);
  for (std::size_t i = 0; i < count; ++i) converted.push_back(to_db(params[i], i));
  return converted;
}

// A view of `value` for the plugin; it points into `value`.
emsnode_db_value to_abi(const db::Value& value) {
  emsnode_db_value out{};
  if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    out.type = EMSNODE_DB_INTEGER;
    out.integer = *integer;
  } else if (const auto* real = std::get_if<double>(&value)) {
    out.type = EMSNODE_DB_FLOAT;
    out.floating = *real;
  } else if (const auto* text = std::get_if<std::string>(&value)) {
    out.type = EMSNODE_DB_TEXT;
    out.bytes = str(*text);
  } else if (const auto* blob = std::get_if<db::Blob>(&value)) {
    out.type = EMSNODE_DB_BLOB;
    out.bytes = str(blob->bytes);
  } else {
    out.type = EMSNODE_DB_NULL;
  }
  return out;
}

void deliver(const db::Rows& rows, emsnode_db_row_fn on_row, void* user_data) {
  if (on_row == nullptr) return;
  std::vector<emsnode_db_value> columns;
  for (const db::Row& row : rows) {
    columns.clear();
    for (const db::Value& value : row.columns()) columns.push_back(to_abi(value));
    if (on_row(user_data, columns.data(), columns.size()) != 0) return;
  }
}

// Runs a database or store call; no exception crosses the ABI. A fenced write is EMSNODE_FENCED
// with the lease's holder and epoch, a missing file EMSNODE_NOT_FOUND; any other failure
// EMSNODE_ERROR, its message prefixed with `call`.
template <typename Fn>
emsnode_status guarded(std::string_view call, Fn&& fn) {
  try {
    fn();
    return EMSNODE_OK;
  } catch (const db::FencedError& e) {
    return fail_call(e.what(), EMSNODE_FENCED);
  } catch (const store::NotFound& e) {
    return fail_call(std::string(call) + ": " + e.what(), EMSNODE_NOT_FOUND);
  } catch (const std::exception& e) {
    return fail_call(std::string(call) + ": " + e.what());
  } catch (...) {
    // A plugin callback built without the SDK's wrapper may throw anything at us.
    return fail_call(std::string(call) +
                     ": a callback threw something that is not a "
                     "std::exception (no exception may cross the C ABI)");
  }
}

// Why `call` may not run now, or nullopt when it may. Writes need a database, a started plugin,
// and must not be nested in a body.
std::optional<std::string> write_refusal(PluginContext& context, std::string_view call) {
  const std::string name(call);
  if (t_running_txn != nullptr) {
    return name + " refused inside a db_write body: run statements with db_exec on its txn";
  }
  if (context.shared().database.load() == nullptr) return name + ": no shared database";
  if (!context.writable()) {
    return name +
           " refused: the plugin is not started (writes are allowed from start until "
           "stop returns)";
  }
  return std::nullopt;
}

// ---- shared file store ----

// The plugin's own folder of the store; every key it passes is relative to it.
std::string store_folder(const PluginContext& context) {
  return "plugins/" + context.plugin_id() + "/";
}

// A plugin callback asked to abort a transfer; never leaves the store_* call that ran it.
class CallbackAborted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The content of store_put as the store reads it: pulled from the plugin's read callback, straight
// into the store's buffer. A negative return aborts the put by an exception, which the stream
// rethrows (badbit is in its exception mask) so that the store publishes nothing; 0 is the end.
class CallbackSource final : public std::streambuf {
 public:
  CallbackSource(emsnode_store_read_fn read, void* user_data)
      : read_(read), user_data_(user_data) {}

 protected:
  std::streamsize xsgetn(char* out, std::streamsize count) override {
    std::streamsize total = 0;
    if (count > 0 && gptr() != egptr()) {  // the byte underflow() fetched for a peek
      *out = *gptr();
      gbump(1);
      total = 1;
    }
    while (total < count) {
      const std::streamsize got = pull(out + total, count - total);
      if (got == 0) break;
      total += got;
    }
    return total;
  }

  int_type underflow() override {
    const std::streamsize got = pull(&one_, 1);
    if (got == 0) return traits_type::eof();
    setg(&one_, &one_, &one_ + 1);
    return traits_type::to_int_type(one_);
  }

 private:
  std::streamsize pull(char* buffer, std::streamsize capacity) {
    const std::int64_t got = read_(user_data_, buffer, static_cast<std::size_t>(capacity));
    if (got < 0) {
      throw CallbackAborted("the plugin's read callback returned " + std::to_string(got) +
                            ": nothing was published");
    }
    if (got > capacity) {
      throw CallbackAborted("the plugin's read callback returned " + std::to_string(got) +
                            " for a buffer of " + std::to_string(capacity) + " bytes");
    }
    return static_cast<std::streamsize>(got);
  }

  emsnode_store_read_fn read_;
  void* user_data_;
  char one_ = 0;  // underflow's get area; the store reads through xsgetn
};

// The content of store_get as the store writes it: each chunk goes to the plugin's write callback
// as it is verified. A non-zero return aborts the get by an exception, rethrown by the stream.
class CallbackSink final : public std::streambuf {
 public:
  CallbackSink(emsnode_store_write_fn write, void* user_data)
      : write_(write), user_data_(user_data) {}

 protected:
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    const int result = write_(user_data_, data, static_cast<std::size_t>(count));
    if (result != 0) {
      throw CallbackAborted("the plugin's write callback returned " + std::to_string(result) +
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

// Why `call` may not use `store` (the node's, loaded once for the call) now, or nullopt when it
// may. Store calls need a store, and may not run in a db_write body: the catalog needs the
// connection the body's transaction holds.
std::optional<std::string> store_refusal(const PluginContext& context,
                                         const store::FileStore* store, std::string_view call,
                                         bool writes) {
  const std::string name(call);
  if (t_running_txn != nullptr) {
    return name +
           " refused inside a db_write body: the store's catalog needs the database "
           "connection the transaction holds";
  }
  if (store == nullptr) return name + ": no shared file store";
  if (writes && !context.writable()) {
    return name +
           " refused: the plugin is not started (writes are allowed from start until stop "
           "returns)";
  }
  return std::nullopt;
}

// The store key of a plugin's `key`: under its folder, and refused (InvalidKey) when it would
// leave it. check_key refuses "..", empty segments and absolute paths anywhere in the result.
std::string store_key(const PluginContext& context, std::string_view key) {
  const std::string full = store_folder(context) + std::string(key);
  try {
    store::check_key(full);
  } catch (const store::InvalidKey& e) {
    throw store::InvalidKey("key \"" + std::string(key) + "\" refused (keys are relative to " +
                            store_folder(context) + " and stay in it): " + e.what());
  }
  return full;
}

// Fills the fields of `out` that fit in its struct_size, which stays as it is.
void fill_info(const store::FileInfo& file, emsnode_store_info& out) {
  const auto fits = [&](std::size_t offset, std::size_t size) {
    return offset + size <= out.struct_size;
  };
  if (fits(offsetof(emsnode_store_info, size), sizeof out.size)) out.size = file.size;
  if (fits(offsetof(emsnode_store_info, modified_at_ms), sizeof out.modified_at_ms)) {
    out.modified_at_ms = file.modified_at_ms;
  }
  if (fits(offsetof(emsnode_store_info, epoch), sizeof out.epoch)) out.epoch = file.epoch;
  if (fits(offsetof(emsnode_store_info, sha256), sizeof out.sha256)) {
    std::memset(out.sha256, 0, sizeof out.sha256);
    std::memcpy(out.sha256, file.sha256.data(),
                std::min(file.sha256.size(), sizeof out.sha256 - 1));
  }
}

// ---- what a plugin's SQL may touch ----

// "<id>_" with the id's '-' as '_', which an unquoted SQL name cannot hold.
std::string table_prefix(const std::string& plugin_id) {
  std::string prefix = plugin_id + "_";
  std::replace(prefix.begin(), prefix.end(), '-', '_');
  return prefix;
}

// Every statement a plugin sends runs under this: its own tables only, never the core's, and
// nothing that changes the connection the node shares with its lease, registry and store.
db::Confinement confinement_of(const PluginContext& context) {
  return db::Confinement{"this plugin", table_prefix(context.plugin_id())};
}

// One line for logs and the schema history: the step's text with its whitespace folded.
std::string step_description(std::string_view sql) {
  constexpr std::size_t kMax = 72;
  std::string text;
  for (const char c : sql) {
    const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (space && (text.empty() || text.back() == ' ')) continue;
    text += space ? ' ' : c;
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text.size() > kMax ? text.substr(0, kMax - 3) + "..." : text;
}

// ---- the table's functions ----

void set_error(emsnode_host_ctx* ctx, emsnode_str message) {
  PluginContext::from(ctx).set_error(std::string(view(message)));
}

void write_log(emsnode_host_ctx* ctx, emsnode_log_level level, emsnode_str event,
               const emsnode_field* fields, size_t field_count) {
  const PluginContext& context = PluginContext::from(ctx);
  const log::Level host_level = to_level(level);
  if (!log::enabled(context.log_component(), host_level)) return;
  log::Fields copied;
  copied.reserve(field_count);
  for (size_t i = 0; i < field_count; ++i) {
    copied.push_back({std::string(view(fields[i].key)), std::string(view(fields[i].value))});
  }
  log::write(context.log_component(), host_level, view(event), copied);
}

int log_enabled(emsnode_host_ctx* ctx, emsnode_log_level level) {
  return log::enabled(PluginContext::from(ctx).log_component(), to_level(level)) ? 1 : 0;
}

emsnode_status config_string(emsnode_host_ctx* ctx, emsnode_str key, emsnode_str* out) {
  // Strings, paths and addresses are stored as text; a secret is handed over revealed.
  if (const auto* text = config_value<std::string>(ctx, key)) {
    *out = str(*text);
    return EMSNODE_OK;
  }
  if (const auto* secret = config_value<config::Secret>(ctx, key)) {
    *out = str(secret->reveal());
    return EMSNODE_OK;
  }
  return EMSNODE_NOT_FOUND;
}

emsnode_status config_int(emsnode_host_ctx* ctx, emsnode_str key, int64_t* out) {
  const auto* value = config_value<std::int64_t>(ctx, key);
  if (value == nullptr) return EMSNODE_NOT_FOUND;
  *out = *value;
  return EMSNODE_OK;
}

emsnode_status config_float(emsnode_host_ctx* ctx, emsnode_str key, double* out) {
  const auto* value = config_value<double>(ctx, key);
  if (value == nullptr) return EMSNODE_NOT_FOUND;
  *out = *value;
  return EMSNODE_OK;
}

emsnode_status config_bool(emsnode_host_ctx* ctx, emsnode_str key, int* out) {
  const auto* value = config_value<bool>(ctx, key);
  if (value == nullptr) return EMSNODE_NOT_FOUND;
  *out = *value ? 1 : 0;
  return EMSNODE_OK;
}

emsnode_status config_duration_ms(emsnode_host_ctx* ctx, emsnode_str key, uint64_t* out) {
  const auto* value = config_value<milliseconds>(ctx, key);
  if (value == nullptr || value->count() < 0) return EMSNODE_NOT_FOUND;
  *out = static_cast<std::uint64_t>(value->count());
  return EMSNODE_OK;
}

emsnode_status config_array_size(emsnode_host_ctx* ctx, emsnode_str key, size_t* out) {
  const auto* value = config_value<std::vector<std::string>>(ctx, key);
  if (value == nullptr) return EMSNODE_NOT_FOUND;
  *out = value->size();
  return EMSNODE_OK;
}

emsnode_status config_array_string(emsnode_host_ctx* ctx, emsnode_str key, size_t index,
                                   emsnode_str* out) {
  const auto* value = config_value<std::vector<std::string>>(ctx, key);
  if (value == nullptr || index >= value->size()) return EMSNODE_NOT_FOUND;
  *out = str((*value)[index]);
  return EMSNODE_OK;
}

emsnode_str node_id(emsnode_host_ctx* ctx) {
  return str(PluginContext::from(ctx).shared().node_id);
}

uint64_t current_epoch(emsnode_host_ctx* ctx) {
  return PluginContext::from(ctx).shared().epoch.load(std::memory_order_acquire);
}

emsnode_status post(emsnode_host_ctx* ctx, emsnode_task_fn fn, void* user_data) {
  clear_call_error();
  if (PluginContext::from(ctx).tasks().post(fn, user_data)) return EMSNODE_OK;
  return fail_call(
      "post refused: the plugin is not started (work is accepted from start "
      "until stop begins)");
}

emsnode_timer_id timer_start(emsnode_host_ctx* ctx, uint64_t delay_ms, uint64_t period_ms,
                             emsnode_task_fn fn, void* user_data) {
  clear_call_error();
  const emsnode_timer_id id = PluginContext::from(ctx).tasks().timer_start(
      to_delay(delay_ms), to_delay(period_ms), fn, user_data);
  if (id == 0) {
    fail_call(
        "timer_start refused: the plugin is not started (timers are accepted from "
        "start until stop begins)");
  }
  return id;
}

void timer_cancel(emsnode_host_ctx* ctx, emsnode_timer_id timer) {
  PluginContext::from(ctx).tasks().timer_cancel(timer);
}

emsnode_metric* metric_register(emsnode_host_ctx* ctx, emsnode_metric_kind kind, emsnode_str name,
                                emsnode_str help, const emsnode_field* labels, size_t label_count,
                                const double* buckets, size_t bucket_count) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  const std::string plugin_name(view(name));
  const std::string full_name = metric_prefix(context.plugin_id()) + plugin_name;
  try {
    if (!is_plugin_metric_name(plugin_name)) {
      throw metrics::MetricError("name \"" + plugin_name + "\" is not [a-z_][a-z0-9_]*");
    }
    metrics::Labels all{{"plugin", context.plugin_id()}};
    for (size_t i = 0; i < label_count; ++i) {
      metrics::Label label{std::string(view(labels[i].key)), std::string(view(labels[i].value))};
      if (label.name == "plugin") throw metrics::MetricError("the label \"plugin\" is the host's");
      all.push_back(std::move(label));
    }
    metrics::MetricsRegistry& registry = *context.shared().metrics;
    switch (kind) {
      case EMSNODE_METRIC_COUNTER:
        return handle_of(registry.counter(full_name, view(help), std::move(all)));
      case EMSNODE_METRIC_GAUGE:
        return handle_of(registry.gauge(full_name, view(help), std::move(all)));
      case EMSNODE_METRIC_HISTOGRAM: {
        std::vector<double> bounds;
        if (buckets != nullptr) bounds.assign(buckets, buckets + bucket_count);
        return handle_of(
            registry.histogram(full_name, view(help), std::move(all), std::move(bounds)));
      }
    }
    throw metrics::MetricError("unknown metric kind " + std::to_string(static_cast<int>(kind)));
  } catch (const metrics::MetricError& e) {
    log::write("host", log::Level::warning, "plugin.metric_refused",
               {{"id", context.plugin_id()}, {"metric", full_name}, {"reason", e.what()}});
    fail_call("metric " + full_name + " refused: " + e.what());
    return nullptr;
  }
}

// A NULL metric (a refused registration, already logged) is accepted and ignored, so that a
// plugin need not guard every update.
void metric_add(emsnode_metric* metric, double delta) {
  if (metric == nullptr) return;
  metrics::Series& series = *series_of(metric);
  switch (series.kind()) {
    case metrics::MetricKind::counter:
      if (!static_cast<metrics::Counter&>(series).add(delta)) {
        report_misuse(series, "metric_add", "a counter only grows: delta must be >= 0");
      }
      return;
    case metrics::MetricKind::gauge:
      static_cast<metrics::Gauge&>(series).add(delta);
      return;
    case metrics::MetricKind::histogram:
      report_misuse(series, "metric_add", "a histogram takes metric_observe");
      return;
  }
}

void metric_set(emsnode_metric* metric, double value) {
  if (metric == nullptr) return;
  metrics::Series& series = *series_of(metric);
  if (series.kind() != metrics::MetricKind::gauge) {
    report_misuse(series, "metric_set", "only a gauge can be set");
    return;
  }
  static_cast<metrics::Gauge&>(series).set(value);
}

void metric_observe(emsnode_metric* metric, double value) {
  if (metric == nullptr) return;
  metrics::Series& series = *series_of(metric);
  if (series.kind() != metrics::MetricKind::histogram) {
    report_misuse(series, "metric_observe", "only a histogram takes observations");
    return;
  }
  if (!static_cast<metrics::Histogram&>(series).observe(value)) {
    report_misuse(series, "metric_observe", "NaN is not an observation");
  }
}

void health_report(emsnode_host_ctx* ctx, emsnode_health health, emsnode_str detail) {
  Health value = Health::failed;  // an unknown value is not a claim of health
  if (health == EMSNODE_HEALTH_OK) value = Health::ok;
  if (health == EMSNODE_HEALTH_DEGRADED) value = Health::degraded;
  PluginContext::from(ctx).report_health(value, std::string(view(detail)));
}

emsnode_str last_error(emsnode_host_ctx* /*ctx: the message is the thread's*/) {
  return str(t_call_error);
}

emsnode_status db_query(emsnode_host_ctx* ctx, emsnode_str sql, const emsnode_db_value* params,
                        size_t param_count, emsnode_db_row_fn on_row, void* user_data) {
  clear_call_error();
  if (t_running_txn != nullptr) {
    return fail_call("db_query refused inside a db_write body: read with db_exec on its txn");
  }
  db::Database* database = PluginContext::from(ctx).shared().database.load();
  if (database == nullptr) return fail_call("db_query: no shared database");
  return guarded("db_query", [&] {
    const db::Rows rows = database->confined_query(confinement_of(PluginContext::from(ctx)),
                                                   view(sql), to_params(params, param_count));
    deliver(rows, on_row, user_data);
  });
}

emsnode_status db_write(emsnode_host_ctx* ctx, emsnode_db_txn_fn body, void* user_data) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  if (auto refusal = write_refusal(context, "db_write")) return fail_call(std::move(*refusal));
  if (body == nullptr) return fail_call("db_write: body is NULL");
  db::Database& database = *context.shared().database.load();
  const std::uint64_t epoch = context.shared().epoch.load(std::memory_order_acquire);

  WriteTxn txn;
  txn.confinement = confinement_of(context);
  emsnode_status body_status = EMSNODE_OK;
  bool rolled_back = false;
  const emsnode_status status = guarded("db_write", [&] {
    try {
      database.fenced(context.shared().node_id, epoch, [&](db::Transaction& tx) {
        txn.tx = &tx;
        const RunningTxn running(txn);
        body_status = body(user_data, handle_of(txn));
        if (body_status != EMSNODE_OK || txn.spoiled) throw RollBack{};
      });
    } catch (const RollBack&) {
      rolled_back = true;
    }
  });
  if (status != EMSNODE_OK || !rolled_back) return status;
  if (txn.spoiled) return fail_call(txn.first_error);
  return fail_call("db_write: the transaction body returned " +
                   std::to_string(static_cast<int>(body_status)) + ": rolled back");
}

emsnode_status db_exec(emsnode_db_txn* handle, emsnode_str sql, const emsnode_db_value* params,
                       size_t param_count, emsnode_db_row_fn on_row, void* user_data,
                       uint64_t* changes) {
  clear_call_error();
  WriteTxn* txn = t_running_txn;
  if (txn == nullptr || handle != handle_of(*txn)) {
    return fail_call(
        "db_exec refused: its txn is not that of a db_write body running on "
        "this thread");
  }
  if (txn->spoiled) {
    return fail_call("db_exec refused: an earlier statement of this transaction failed (" +
                     txn->first_error + "); return from the body to roll back");
  }
  const emsnode_status status = guarded("db_exec", [&] {
    const db::Params converted = to_params(params, param_count);
    if (on_row != nullptr) {
      const db::Rows rows = txn->tx->confined_query(txn->confinement, view(sql), converted);
      deliver(rows, on_row, user_data);
      if (changes != nullptr) *changes = rows.size();
    } else {
      const std::int64_t changed = txn->tx->confined_exec(txn->confinement, view(sql), converted);
      if (changes != nullptr) *changes = static_cast<std::uint64_t>(changed);  // never < 0
    }
  });
  if (status == EMSNODE_OK) return EMSNODE_OK;
  // PostgreSQL aborts a transaction at its first failed statement; SQLite would go on. Spoiling
  // it on both keeps a plugin tested on one backend correct on the other.
  txn->spoiled = true;
  txn->first_error = t_call_error;
  return EMSNODE_ERROR;
}

emsnode_status db_migrate(emsnode_host_ctx* ctx, const emsnode_str* steps, size_t step_count) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  if (auto refusal = write_refusal(context, "db_migrate")) return fail_call(std::move(*refusal));
  if (steps == nullptr && step_count > 0) {
    return fail_call("db_migrate: steps is NULL but step_count is " + std::to_string(step_count));
  }
  const db::Confinement confinement = confinement_of(context);
  std::vector<db::Migration> migrations;
  migrations.reserve(step_count);
  for (size_t i = 0; i < step_count; ++i) {
    const std::string_view step = view(steps[i]);
    // Judged before any step runs, so that a refused step leaves the schema as it was; the
    // runner confines each statement again as it runs it.
    if (auto refusal = db::confinement_refusal(confinement, step)) {
      return fail_call("db_migrate: step " + std::to_string(i + 1) + " (" + step_description(step) +
                       ") " + *refusal);
    }
    migrations.push_back(
        db::Migration{static_cast<int>(i) + 1, step_description(step), {std::string(step)}});
  }

  db::Database& database = *context.shared().database.load();
  const HostShared& shared = context.shared();
  const std::uint64_t epoch = shared.epoch.load(std::memory_order_acquire);
  const std::string component = "plugin." + context.plugin_id();
  return guarded("db_migrate", [&] {
    // The core's runner applies each step in a transaction of its own, so the lease is checked
    // first, in a fenced transaction of its own. That is enough: each step re-reads the version
    // under the write lock, so a node that loses the lease in between can at most apply a step
    // the new active would have applied, once, identically.
    database.fenced(shared.node_id, epoch, [](db::Transaction&) {});
    const db::SchemaState state =
        db::inspect(database, component, static_cast<int>(migrations.size()));
    if (state.status == db::SchemaStatus::newer) {
      throw db::DbError("the database holds schema version " + std::to_string(state.db_version) +
                        " of " + component + ", newer than the " +
                        std::to_string(migrations.size()) +
                        " steps this build of the plugin knows: the plugin is older than its "
                        "data (upgrade it; a plugin never downgrades its schema)");
    }
    db::migrate(database, component, migrations, shared.node_id, &confinement);
  });
}

emsnode_status store_put(emsnode_host_ctx* ctx, emsnode_str key, emsnode_store_read_fn read,
                         void* user_data) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  store::FileStore* const store = context.shared().store.load();
  if (auto refusal = store_refusal(context, store, "store_put", true)) {
    return fail_call(std::move(*refusal));
  }
  if (read == nullptr) return fail_call("store_put: read is NULL");
  const store::Writer writer{context.shared().node_id,
                             context.shared().epoch.load(std::memory_order_acquire)};
  return guarded("store_put", [&] {
    const std::string full = store_key(context, view(key));
    CallbackSource source(read, user_data);
    std::istream in(&source);
    in.exceptions(std::ios::badbit);
    store->put(full, in, writer);
  });
}

emsnode_status store_get(emsnode_host_ctx* ctx, emsnode_str key, emsnode_store_write_fn write,
                         void* user_data) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  store::FileStore* const store = context.shared().store.load();
  if (auto refusal = store_refusal(context, store, "store_get", false)) {
    return fail_call(std::move(*refusal));
  }
  if (write == nullptr) return fail_call("store_get: write is NULL");
  return guarded("store_get", [&] {
    const std::string full = store_key(context, view(key));
    CallbackSink sink(write, user_data);
    std::ostream out(&sink);
    out.exceptions(std::ios::badbit);
    store->get(full, out);
  });
}

emsnode_status store_stat(emsnode_host_ctx* ctx, emsnode_str key, emsnode_store_info* out) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  store::FileStore* const store = context.shared().store.load();
  if (auto refusal = store_refusal(context, store, "store_stat", false)) {
    return fail_call(std::move(*refusal));
  }
  if (out == nullptr) return fail_call("store_stat: out is NULL");
  return guarded("store_stat", [&] {
    const std::string full = store_key(context, view(key));
    const std::optional<store::FileInfo> file = store->stat(full);
    if (!file) throw store::NotFound("no such file: " + full);
    fill_info(*file, *out);
  });
}

emsnode_status store_list(emsnode_host_ctx* ctx, emsnode_str prefix,
                          emsnode_store_entry_fn on_entry, void* user_data) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  store::FileStore* const store = context.shared().store.load();
  if (auto refusal = store_refusal(context, store, "store_list", false)) {
    return fail_call(std::move(*refusal));
  }
  if (on_entry == nullptr) return fail_call("store_list: on_entry is NULL");
  return guarded("store_list", [&] {
    const std::string folder = store_folder(context);
    // A prefix is worth listing when some valid key starts with it, as "x" appended shows; any
    // other ("../", "a//") could only match by escaping the folder, and is refused.
    store_key(context, std::string(view(prefix)) + "x");
    const std::vector<store::FileInfo> files = store->list(folder + std::string(view(prefix)));
    for (const store::FileInfo& file : files) {
      emsnode_store_info info{};
      info.struct_size = sizeof info;
      fill_info(file, info);
      const std::string_view relative = std::string_view(file.key).substr(folder.size());
      if (on_entry(user_data, str(relative), &info) != 0) return;
    }
  });
}

emsnode_status store_remove(emsnode_host_ctx* ctx, emsnode_str key) {
  clear_call_error();
  PluginContext& context = PluginContext::from(ctx);
  store::FileStore* const store = context.shared().store.load();
  if (auto refusal = store_refusal(context, store, "store_remove", true)) {
    return fail_call(std::move(*refusal));
  }
  const store::Writer writer{context.shared().node_id,
                             context.shared().epoch.load(std::memory_order_acquire)};
  return guarded("store_remove", [&] { store->remove(store_key(context, view(key)), writer); });
}

// ---- control commands ----

emsnode_status command_handle(emsnode_host_ctx* ctx, emsnode_str name, emsnode_command_fn fn,
                              void* user_data) {
  clear_call_error();
  if (fn == nullptr) return fail_call("command_handle: the handler is NULL");
  const std::string refusal =
      PluginContext::from(ctx).attach_command(view(name), CommandHandler{fn, user_data});
  if (!refusal.empty()) return fail_call(refusal);
  return EMSNODE_OK;
}

emsnode_status command_arg(emsnode_command_call* handle, emsnode_str name, emsnode_db_value* out) {
  clear_call_error();
  if (handle == nullptr || out == nullptr) return fail_call("command_arg: call or out is NULL");
  const CommandCall& call = CommandCall::from(handle);
  const config::Value* value = call.args.find(view(name));
  if (value == nullptr) {
    return fail_call("command " + call.command + " has no argument " + config::quote(view(name)) +
                         " in this call",
                     EMSNODE_NOT_FOUND);
  }
  emsnode_db_value result{};
  const auto text = [&](const std::string& s) {
    result.type = EMSNODE_DB_TEXT;
    result.bytes = str(s);
  };
  const auto integer = [&](std::int64_t n) {
    result.type = EMSNODE_DB_INTEGER;
    result.integer = n;
  };
  if (const auto* s = std::get_if<std::string>(value)) {
    text(*s);
  } else if (const auto* secret = std::get_if<config::Secret>(value)) {
    text(secret->reveal());
  } else if (const auto* n = std::get_if<std::int64_t>(value)) {
    integer(*n);
  } else if (const auto* b = std::get_if<bool>(value)) {
    integer(*b ? 1 : 0);
  } else if (const auto* d = std::get_if<milliseconds>(value)) {
    integer(d->count());
  } else if (const auto* f = std::get_if<double>(value)) {
    result.type = EMSNODE_DB_FLOAT;
    result.floating = *f;
  } else {
    // The manifest refuses strings arguments: the ABI has no array value.
    return fail_call("command_arg: the argument has no ABI value", EMSNODE_NOT_FOUND);
  }
  *out = result;
  return EMSNODE_OK;
}

emsnode_status command_reply(emsnode_command_call* handle, emsnode_str json) {
  clear_call_error();
  if (handle == nullptr) return fail_call("command_reply: call is NULL");
  const std::string_view text = view(json);
  if (text.size() > kCommandReplyLimit) {
    return fail_call("command_reply: the answer has " + std::to_string(text.size()) +
                     " bytes, more than the admin endpoint answers (" +
                     std::to_string(kCommandReplyLimit) + ")");
  }
  if (!nlohmann::json::accept(text)) {
    return fail_call("command_reply: the answer is not one JSON value");
  }
  CommandCall::from(handle).reply = std::string(text);
  return EMSNODE_OK;
}

void command_fail(emsnode_command_call* handle, emsnode_str message) {
  if (handle == nullptr) return;
  CommandCall::from(handle).failure = std::string(view(message));
}

// ---- shared APIs between plugins ----

emsnode_status api_export(emsnode_host_ctx* ctx, emsnode_str name, uint32_t minor,
                          const void* table) {
  clear_call_error();
  std::string refusal = PluginContext::from(ctx).export_api(view(name), minor, table);
  return refusal.empty() ? EMSNODE_OK : fail_call("api_export: " + std::move(refusal));
}

emsnode_status api_use(emsnode_host_ctx* ctx, emsnode_str name, const void** table,
                       uint32_t* minor) {
  clear_call_error();
  std::string refusal = PluginContext::from(ctx).use_api(view(name), table, minor);
  return refusal.empty() ? EMSNODE_OK : fail_call("api_use: " + std::move(refusal));
}

// ---- status facts ----

emsnode_status status_fact(emsnode_host_ctx* ctx, emsnode_str name, emsnode_str value,
                           emsnode_severity severity) {
  clear_call_error();
  // Read as a number: a value outside the enum's range is the plugin's to send, not UB to load.
  std::underlying_type_t<emsnode_severity> level;
  std::memcpy(&level, &severity, sizeof level);
  Severity parsed = Severity::info;
  switch (level) {
    case EMSNODE_SEVERITY_INFO:
      parsed = Severity::info;
      break;
    case EMSNODE_SEVERITY_WARNING:
      parsed = Severity::warning;
      break;
    case EMSNODE_SEVERITY_CRITICAL:
      parsed = Severity::critical;
      break;
    default:
      return fail_call("status_fact: severity " + std::to_string(level) +
                       " is none of EMSNODE_SEVERITY_INFO, _WARNING, _CRITICAL");
  }
  std::string refusal = PluginContext::from(ctx).set_fact(view(name), view(value), parsed);
  return refusal.empty() ? EMSNODE_OK : fail_call("status_fact: " + std::move(refusal));
}

// Why `text` cannot be shown as a fact's name or value: not UTF-8, or a control character (C0,
// DEL or C1: each could forge lines or move the cursor of a terminal showing the status).
std::string fact_text_refusal(std::string_view what, std::string_view text) {
  if (!store::is_valid_utf8(text)) return std::string(what) + " is not UTF-8";
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 =
        c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xA0;
    if (c < 0x20 || c == 0x7F || c1) {
      return std::string(what) + " holds a control character at byte " + std::to_string(i);
    }
  }
  return {};
}

const emsnode_host_api kHostApi = {
    sizeof(emsnode_host_api),
    EMSNODE_ABI_MAJOR,
    EMSNODE_ABI_MINOR,
    set_error,
    write_log,
    log_enabled,
    config_string,
    config_int,
    config_float,
    config_bool,
    config_duration_ms,
    config_array_size,
    config_array_string,
    node_id,
    current_epoch,
    post,
    timer_start,
    timer_cancel,
    metric_register,
    metric_add,
    metric_set,
    metric_observe,
    health_report,
    last_error,
    db_query,
    db_write,
    db_exec,
    db_migrate,
    store_put,
    store_get,
    store_stat,
    store_list,
    store_remove,
    command_handle,
    command_arg,
    command_reply,
    command_fail,
    api_export,
    api_use,
    status_fact,
};

}  // namespace

std::string_view health_name(Health health) {
  switch (health) {
    case Health::ok:
      return "ok";
    case Health::degraded:
      return "degraded";
    case Health::failed:
      return "failed";
  }
  return "failed";
}

std::string_view severity_name(Severity severity) {
  switch (severity) {
    case Severity::info:
      return "info";
    case Severity::warning:
      return "warning";
    case Severity::critical:
      return "critical";
  }
  return "critical";
}

PluginContext::PluginContext(std::string plugin_id, config::Values values,
                             std::shared_ptr<HostShared> shared, std::shared_ptr<TaskGroup> tasks,
                             std::vector<CommandSpec> commands, std::vector<ApiExport> exports,
                             std::vector<ApiUse> uses)
    : plugin_id_(std::move(plugin_id)),
      log_component_("plugin." + plugin_id_),
      values_(std::move(values)),
      shared_(std::move(shared)),
      tasks_(std::move(tasks)),
      commands_(std::move(commands)) {
  for (ApiExport& declared : exports) exports_.push_back({std::move(declared), nullptr});
  for (ApiUse& declared : uses) uses_.push_back({std::move(declared), nullptr});
}

emsnode_command_call* CommandCall::handle() {
  return reinterpret_cast<emsnode_command_call*>(this);
}

CommandCall& CommandCall::from(emsnode_command_call* call) {
  return *reinterpret_cast<CommandCall*>(call);
}

std::string PluginContext::attach_command(std::string_view name, CommandHandler handler) {
  if (!creating()) {
    return "command_handle: only valid while create runs";
  }
  const bool declared = std::any_of(commands_.begin(), commands_.end(),
                                    [&](const CommandSpec& spec) { return spec.name == name; });
  if (!declared) {
    return "command_handle: plugin.toml declares no command " + config::quote(name) +
           " (add a [commands." + std::string(name) + "] table)";
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (!handlers_.emplace(std::string(name), handler).second) {
    return "command_handle: command " + config::quote(name) + " already has a handler";
  }
  return {};
}

std::optional<CommandHandler> PluginContext::command_handler(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto found = handlers_.find(name);
  if (found == handlers_.end()) return std::nullopt;
  return found->second;
}

std::vector<std::string> PluginContext::unhandled_commands() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  for (const CommandSpec& spec : commands_) {
    if (handlers_.count(spec.name) == 0) names.push_back(spec.name);
  }
  return names;
}

void PluginContext::bind_use(std::string_view api, std::shared_ptr<PluginContext> exporter) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Used& use : uses_) {
    if (use.declared.api() == api) use.exporter = std::move(exporter);
  }
}

std::string PluginContext::export_api(std::string_view api, std::uint32_t minor,
                                      const void* table) {
  if (!creating()) return "called outside create (export every API in create)";
  std::lock_guard<std::mutex> lock(mutex_);
  const auto found = std::find_if(exports_.begin(), exports_.end(),
                                  [&](const Exported& e) { return e.declared.api() == api; });
  if (found == exports_.end()) {
    return "\"" + std::string(api) + "\" is not declared under exports in plugin.toml";
  }
  if (minor != found->declared.minor) {
    return found->declared.api() + " at minor " + std::to_string(minor) + ", but plugin.toml " +
           "declares " + found->declared.text();
  }
  if (table == nullptr) return found->declared.api() + ": the table is NULL";
  if (found->table != nullptr) return found->declared.api() + " is already exported";
  found->table = table;
  return {};
}

std::string PluginContext::use_api(std::string_view api, const void** table,
                                   std::uint32_t* minor) const {
  if (table == nullptr) return "table is NULL";
  // uses_ is bound before create and never changes afterwards.
  const auto found = std::find_if(uses_.begin(), uses_.end(),
                                  [&](const Used& u) { return u.declared.api() == api; });
  if (found == uses_.end()) {
    return "\"" + std::string(api) + "\" is not declared under uses in plugin.toml";
  }
  if (!found->exporter) {
    return found->declared.api() + ": no plugin that exports it is loaded beside this one";
  }
  PluginContext& exporter = *found->exporter;
  std::lock_guard<std::mutex> lock(exporter.mutex_);
  for (const Exported& e : exporter.exports_) {
    if (e.declared.api() != api) continue;
    if (e.table == nullptr) {
      return found->declared.api() + ": plugin " + exporter.plugin_id_ +
             ", which exports it, has not been created";
    }
    *table = e.table;
    if (minor != nullptr) *minor = e.declared.minor;
    return {};
  }
  return found->declared.api() + ": plugin " + exporter.plugin_id_ + " does not export it";
}

std::string PluginContext::missing_exports() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string missing;
  for (const Exported& e : exports_) {
    if (e.table != nullptr) continue;
    missing += (missing.empty() ? "" : ", ") + e.declared.api();
  }
  return missing;
}

std::string PluginContext::set_fact(std::string_view name, std::string_view value,
                                    Severity severity) {
  if (name.empty() || name.size() > kMaxFactName) {
    return "a fact's name is 1 to " + std::to_string(kMaxFactName) + " bytes, not " +
           std::to_string(name.size());
  }
  if (value.size() > kMaxFactValue) {
    return "the value of fact \"" + std::string(name) + "\" is " + std::to_string(value.size()) +
           " bytes, over the " + std::to_string(kMaxFactValue) + " allowed";
  }
  if (std::string why = fact_text_refusal("the name", name); !why.empty()) return why;
  if (std::string why = fact_text_refusal("the value of fact \"" + std::string(name) + "\"", value);
      !why.empty()) {
    return why;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const auto found = std::find_if(facts_.begin(), facts_.end(),
                                  [&](const StatusFact& f) { return f.name == name; });
  if (value.empty()) {
    if (found != facts_.end()) facts_.erase(found);
    return {};
  }
  if (found != facts_.end()) {
    found->value = std::string(value);
    found->severity = severity;
    return {};
  }
  if (facts_.size() >= kMaxFacts) {
    return "a plugin has at most " + std::to_string(kMaxFacts) + " facts; remove one (set it " +
           "to \"\") before adding \"" + std::string(name) + "\"";
  }
  facts_.push_back({std::string(name), std::string(value), severity});
  return {};
}

std::vector<StatusFact> PluginContext::facts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return facts_;
}

// The ABI's opaque context is this object; the casts live here and in from() only.
emsnode_host_ctx* PluginContext::handle() {
  return reinterpret_cast<emsnode_host_ctx*>(this);
}

PluginContext& PluginContext::from(emsnode_host_ctx* ctx) {
  return *reinterpret_cast<PluginContext*>(ctx);
}

void PluginContext::set_error(std::string message) {
  std::lock_guard<std::mutex> lock(mutex_);
  error_ = std::move(message);
}

std::string PluginContext::take_error() {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::exchange(error_, std::string());
}

void PluginContext::report_health(Health health, std::string detail) {
  std::lock_guard<std::mutex> lock(mutex_);
  health_ = HealthReport{health, std::move(detail)};
}

void PluginContext::reset_health() {
  report_health(Health::ok, std::string());
}

HealthReport PluginContext::health() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return health_;
}

const emsnode_host_api& host_api() {
  return kHostApi;
}

}  // namespace emsnode::host
