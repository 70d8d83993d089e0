/* A well-behaved plugin that uses every host service: config getters of every type, logging,
 * identity, the epoch, timers, post, metrics and health. It writes what it read and saw to its
 * journal, so the tests check each service end to end, through the C ABI. */
#include <inttypes.h>
#include <stdatomic.h>

#include "test_plugin.h"

typedef struct healthy {
  tp_host host;
  uint64_t interval_ms;
  emsnode_timer_id timer;
  emsnode_metric* ticks;   /* counter, labelled */
  emsnode_metric* posted;  /* gauge */
  emsnode_metric* latency; /* histogram, own buckets */
  atomic_int tick_count;
} healthy;

static void on_tick(void* user_data) {
  healthy* self = (healthy*)user_data;
  const emsnode_host_api* api = self->host.api;
  api->metric_add(self->ticks, 1);
  api->metric_observe(self->latency, 0.02);
  if (atomic_fetch_add(&self->tick_count, 1) == 0) {
    api->health_report(self->host.ctx, EMSNODE_HEALTH_OK, tp_str("serving"));
  }
}

static void on_posted(void* user_data) {
  healthy* self = (healthy*)user_data;
  self->host.api->metric_set(self->posted, 42);
}

/* Reads every type of config value and journals them on one line. */
static emsnode_status read_config(healthy* self) {
  const emsnode_host_api* api = self->host.api;
  emsnode_host_ctx* ctx = self->host.ctx;
  char greeting[256], token[256], data_dir[1024], listen[256], tags[512] = "", line[4096];
  int64_t count;
  double ratio;
  int flag;
  size_t tag_count;
  if (!tp_config_text(self->host, "token", token, sizeof token)) strcpy(token, "(none)");
  if (!tp_config_text(self->host, "greeting", greeting, sizeof greeting) ||
      !tp_config_text(self->host, "data_dir", data_dir, sizeof data_dir) ||
      !tp_config_text(self->host, "listen", listen, sizeof listen) ||
      api->config_int(ctx, tp_str("count"), &count) != EMSNODE_OK ||
      api->config_float(ctx, tp_str("ratio"), &ratio) != EMSNODE_OK ||
      api->config_bool(ctx, tp_str("flag"), &flag) != EMSNODE_OK ||
      api->config_duration_ms(ctx, tp_str("interval"), &self->interval_ms) != EMSNODE_OK ||
      api->config_array_size(ctx, tp_str("tags"), &tag_count) != EMSNODE_OK) {
    return tp_fail(self->host, "a config key of the schema is missing");
  }
  for (size_t i = 0; i < tag_count; ++i) {
    emsnode_str tag;
    if (api->config_array_string(ctx, tp_str("tags"), i, &tag) != EMSNODE_OK) {
      return tp_fail(self->host, "tags[i] is missing");
    }
    snprintf(tags + strlen(tags), sizeof tags - strlen(tags), "%s%.*s", i ? "," : "", (int)tag.len,
             tag.ptr);
  }
  /* Wrong type and unknown key must both be NOT_FOUND. */
  int64_t wrong;
  if (api->config_int(ctx, tp_str("greeting"), &wrong) != EMSNODE_NOT_FOUND ||
      api->config_int(ctx, tp_str("no_such_key"), &wrong) != EMSNODE_NOT_FOUND) {
    return tp_fail(self->host, "a getter of the wrong type or key did not say NOT_FOUND");
  }
  snprintf(line, sizeof line,
           "config greeting=%s count=%" PRId64 " ratio=%g flag=%d interval_ms=%" PRIu64
           " token=%s data_dir=%s listen=%s tags=%s",
           greeting, count, ratio, flag, self->interval_ms, token, data_dir, listen, tags);
  tp_journal(self->host, line);
  return EMSNODE_OK;
}

static emsnode_status register_metrics(healthy* self) {
  const emsnode_host_api* api = self->host.api;
  emsnode_host_ctx* ctx = self->host.ctx;
  const emsnode_field labels[] = {{TP_STR("kind"), TP_STR("timer")}};
  const double buckets[] = {0.01, 0.1, 1};
  self->ticks = api->metric_register(ctx, EMSNODE_METRIC_COUNTER, tp_str("ticks_total"),
                                     tp_str("Timer ticks."), labels, 1, NULL, 0);
  self->posted = api->metric_register(ctx, EMSNODE_METRIC_GAUGE, tp_str("posted"),
                                      tp_str("Set by a posted task."), NULL, 0, NULL, 0);
  self->latency = api->metric_register(ctx, EMSNODE_METRIC_HISTOGRAM, tp_str("tick_seconds"),
                                       tp_str("Tick latency."), NULL, 0, buckets, 3);
  if (self->ticks == NULL || self->posted == NULL || self->latency == NULL) {
    return tp_fail(self->host, "metric_register refused a valid metric");
  }
  if (api->metric_register(ctx, EMSNODE_METRIC_COUNTER, tp_str("ticks_total"), tp_str(""), labels,
                           1, NULL, 0) != self->ticks) {
    return tp_fail(self->host, "the same name and labels gave another metric");
  }
  if (api->metric_register(ctx, EMSNODE_METRIC_GAUGE, tp_str("ticks_total"), tp_str(""), NULL, 0,
                           NULL, 0) != NULL) {
    return tp_fail(self->host, "the same name as another kind was accepted");
  }
  return EMSNODE_OK;
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  healthy* self = (healthy*)calloc(1, sizeof *self);
  if (self == NULL) return EMSNODE_ERROR;
  self->host.api = api;
  self->host.ctx = ctx;
  if (read_config(self) != EMSNODE_OK || register_metrics(self) != EMSNODE_OK) {
    free(self);
    return EMSNODE_ERROR;
  }
  const emsnode_field fields[] = {{TP_STR("interval_ms"), TP_STR("from config")}};
  api->log(ctx, EMSNODE_LOG_INFO, tp_str("healthy.created"), fields, 1);
  if (api->log_enabled(ctx, EMSNODE_LOG_TRACE)) {
    api->log(ctx, EMSNODE_LOG_TRACE, tp_str("healthy.trace_enabled"), NULL, 0);
  }
  *instance = self;
  return EMSNODE_OK;
}

static emsnode_status start(void* instance) {
  healthy* self = (healthy*)instance;
  const emsnode_host_api* api = self->host.api;
  emsnode_str node = api->node_id(self->host.ctx);
  char line[512];
  snprintf(line, sizeof line, "start epoch=%" PRIu64 " node=%.*s",
           api->current_epoch(self->host.ctx), (int)node.len, node.ptr);
  tp_journal(self->host, line);
  atomic_store(&self->tick_count, 0);
  api->health_report(self->host.ctx, EMSNODE_HEALTH_DEGRADED, tp_str("warming up"));
  self->timer =
      api->timer_start(self->host.ctx, self->interval_ms, self->interval_ms, on_tick, self);
  if (self->timer == 0) return tp_fail(self->host, "timer_start refused during start");
  if (api->post(self->host.ctx, on_posted, self) != EMSNODE_OK) {
    return tp_fail(self->host, "post refused during start");
  }
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  healthy* self = (healthy*)instance;
  self->host.api->timer_cancel(self->host.ctx, self->timer);
  self->timer = 0;
  /* The host refuses new work once stop has begun. */
  const int post_refused = self->host.api->post(self->host.ctx, on_posted, self) != EMSNODE_OK;
  char line[128];
  snprintf(line, sizeof line, "stop post_refused=%d", post_refused);
  tp_journal(self->host, line);
  return EMSNODE_OK;
}

static void destroy(void* instance) {
  healthy* self = (healthy*)instance;
  tp_journal(self->host, "destroy");
  free(self);
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-healthy", "1.0.0", create, start, stop, destroy)
