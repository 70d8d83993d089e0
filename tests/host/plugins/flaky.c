/* A plugin that fails when told to, for the supervision tests: files in its `control` folder say
 * what to do, so a test (or an operator of a test cluster) steers it from outside the process.
 *   fail_start     start fails
 *   report_failed  while running, it reports EMSNODE_HEALTH_FAILED (checked every 20 ms)
 *   hang_stop      stop does not return until `release` exists (30 s at most): the host faults it
 * It journals "start", "start_failed" and "stop", one line each.
 * Built also as t-flaky-exporter (FLAKY_EXPORT), which exports "flaky.v1" at minor 1 (the table
 * of seats_api.h), so that the supervision tests see its users restarted with it; and as
 * t-hanging-user (FLAKY_USES), which takes "seats.v1" in create, so that a test sees what the
 * host does with an exporter whose user is faulted. */
#include <sys/stat.h>

#include "seats_api.h"
#include "test_plugin.h"

#ifndef FLAKY_ID
#define FLAKY_ID "t-flaky"
#endif

#ifdef FLAKY_EXPORT
static volatile int g_started;
static int64_t seats(void) {
  return 7;
}
static int started(void) {
  return g_started;
}
static const tp_seats_v1 kTable = {sizeof(tp_seats_v1), seats, started};
#define FLAKY_STARTED(value) (g_started = (value))
#else
#define FLAKY_STARTED(value) ((void)0)
#endif

typedef struct flaky {
  tp_host host;
  char control[4096];
  emsnode_timer_id timer;
} flaky;

static int told(const flaky* self, const char* what) {
  char path[4200];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", self->control, what);
  return stat(path, &st) == 0;
}

static void on_tick(void* user_data) {
  flaky* self = (flaky*)user_data;
  if (told(self, "report_failed")) {
    self->host.api->health_report(self->host.ctx, EMSNODE_HEALTH_FAILED,
                                  tp_str("told to report failed"));
  } else {
    self->host.api->health_report(self->host.ctx, EMSNODE_HEALTH_OK, tp_str("serving"));
  }
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  flaky* self = (flaky*)calloc(1, sizeof *self);
  if (self == NULL) return EMSNODE_ERROR;
  self->host.api = api;
  self->host.ctx = ctx;
  if (!tp_config_text(self->host, "control", self->control, sizeof self->control)) {
    free(self);
    return EMSNODE_ERROR;
  }
#ifdef FLAKY_USES
  const void* table = NULL;
  if (api->api_use(ctx, tp_str(FLAKY_USES), &table, NULL) != EMSNODE_OK) {
    free(self);
    api->set_error(ctx, api->last_error(ctx));
    return EMSNODE_ERROR;
  }
#endif
#ifdef FLAKY_EXPORT
  if (api->api_export(ctx, tp_str("flaky.v1"), 1, &kTable) != EMSNODE_OK) {
    free(self);
    api->set_error(ctx, api->last_error(ctx));
    return EMSNODE_ERROR;
  }
#endif
  *instance = self;
  return EMSNODE_OK;
}

static emsnode_status start(void* instance) {
  flaky* self = (flaky*)instance;
  if (told(self, "fail_start")) {
    tp_journal(self->host, "start_failed");
    return tp_fail(self->host, "told to fail its start");
  }
  self->timer = self->host.api->timer_start(self->host.ctx, 0, 20, on_tick, self);
  if (self->timer == 0) return tp_fail(self->host, "timer_start refused during start");
  tp_journal(self->host, "start");
  FLAKY_STARTED(1);
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  flaky* self = (flaky*)instance;
  if (self->timer != 0) self->host.api->timer_cancel(self->host.ctx, self->timer);
  self->timer = 0;
  FLAKY_STARTED(0);
  if (told(self, "hang_stop")) {
    for (int waited_ms = 0; waited_ms < 30000 && !told(self, "release"); waited_ms += 10) {
      tp_sleep_ms(10);
    }
  }
  tp_journal(self->host, "stop");
  return EMSNODE_OK;
}

static void destroy(void* instance) {
  free(instance);
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, FLAKY_ID, "1.0.0", create, start, stop, destroy)
