/* Exports the API EXPORTED_API ("seats.v1" at minor 1, as its plugin.toml declares) in create and
 * journals every lifecycle call, so that the tests see the order in which the host drives it and
 * its users. Built as t-api-exporter and t-api-rival (EXPORTER_ID), two exporters of one name. */
#include "seats_api.h"
#include "test_plugin.h"

static volatile int g_started;

static int64_t seats(void) {
  return 500;
}

static int started(void) {
  return g_started;
}

static const tp_seats_v1 kSeats = {sizeof(tp_seats_v1), seats, started};

static void journal(tp_host host, const char* what) {
  char line[128];
  snprintf(line, sizeof line, "%s %s", what, EXPORTER_ID);
  tp_journal(host, line);
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  tp_host host = {api, ctx};
  if (api->api_export(ctx, tp_str("seats.v1"), 1, &kSeats) != EMSNODE_OK) {
    emsnode_str why = api->last_error(ctx);
    api->set_error(ctx, why);
    return EMSNODE_ERROR;
  }
  journal(host, "create");
  return tp_create(api, ctx, instance);
}

static emsnode_status start(void* instance) {
  g_started = 1;
  journal(*(tp_host*)instance, "start");
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  g_started = 0;
  journal(*(tp_host*)instance, "stop");
  return EMSNODE_OK;
}

static void destroy(void* instance) {
  journal(*(tp_host*)instance, "destroy");
  tp_destroy(instance);
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, EXPORTER_ID, "1.0.0", create, start, stop, destroy)
