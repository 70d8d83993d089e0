#include "host/host_services.hpp"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "log/log.hpp"

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
  return PluginContext::from(ctx).tasks().post(fn, user_data) ? EMSNODE_OK : EMSNODE_ERROR;
}

emsnode_timer_id timer_start(emsnode_host_ctx* ctx, uint64_t delay_ms, uint64_t period_ms,
                             emsnode_task_fn fn, void* user_data) {
  return PluginContext::from(ctx).tasks().timer_start(to_delay(delay_ms), to_delay(period_ms), fn,
                                                      user_data);
}

void timer_cancel(emsnode_host_ctx* ctx, emsnode_timer_id timer) {
  PluginContext::from(ctx).tasks().timer_cancel(timer);
}

emsnode_metric* metric_register(emsnode_host_ctx* ctx, emsnode_metric_kind kind, emsnode_str name,
                                emsnode_str help, const emsnode_field* labels, size_t label_count,
                                const double* buckets, size_t bucket_count) {
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

PluginContext::PluginContext(std::string plugin_id, config::Values values,
                             std::shared_ptr<HostShared> shared, std::shared_ptr<TaskGroup> tasks)
    : plugin_id_(std::move(plugin_id)),
      log_component_("plugin." + plugin_id_),
      values_(std::move(values)),
      shared_(std::move(shared)),
      tasks_(std::move(tasks)) {}

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
