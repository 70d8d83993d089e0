/* Uses the API "seats.v1" in create: checks the minor and the table's size before it touches a
 * member, shows the seats as a status fact, and journals every lifecycle call and what the table
 * said. Built as t-api-user (USER_ID). */
#include "seats_api.h"
#include "test_plugin.h"

typedef struct user {
  tp_host host;
  const tp_seats_v1* seats;
} user;

static void journal(tp_host host, const char* what) {
  char line[160];
  snprintf(line, sizeof line, "%s %s", what, USER_ID);
  tp_journal(host, line);
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  tp_host host = {api, ctx};
  const void* table = NULL;
  uint32_t minor = 0;
  if (api->api_use(ctx, tp_str(USED_API), &table, &minor) != EMSNODE_OK) {
    emsnode_str why = api->last_error(ctx);
    api->set_error(ctx, why);
    return EMSNODE_ERROR;
  }
  const tp_seats_v1* seats = (const tp_seats_v1*)table;
  /* started() is since 1.1: both the minor and the size must cover it. */
  if (minor < 1 || seats->struct_size < offsetof(tp_seats_v1, started) + sizeof seats->started) {
    return tp_fail(host, "the exporter's table predates seats.v1.1");
  }
  user* self = (user*)calloc(1, sizeof *self);
  if (self == NULL) return EMSNODE_ERROR;
  self->host = host;
  self->seats = seats;
  char line[128];
  snprintf(line, sizeof line, "create minor=%u seats=%lld started=%d", (unsigned)minor,
           (long long)seats->seats(), seats->started());
  journal(host, line);
  snprintf(line, sizeof line, "%lld seats", (long long)seats->seats());
  if (api->status_fact(ctx, tp_str("seats"), tp_str(line), EMSNODE_SEVERITY_INFO) != EMSNODE_OK ||
      api->status_fact(ctx, tp_str("exporter"), tp_str("not started"), EMSNODE_SEVERITY_WARNING) !=
          EMSNODE_OK) {
    free(self);
    return tp_fail(host, "status_fact refused a fact");
  }
  *instance = self;
  return EMSNODE_OK;
}

static emsnode_status start(void* instance) {
  user* self = (user*)instance;
  char line[64];
  snprintf(line, sizeof line, "start exporter_started=%d", self->seats->started());
  journal(self->host, line);
  /* Set from start, a thread of the host's: facts may be set from any thread. */
  self->host.api->status_fact(
      self->host.ctx, tp_str("exporter"),
      tp_str(self->seats->started() ? "started" : "not started"),
      self->seats->started() ? EMSNODE_SEVERITY_INFO : EMSNODE_SEVERITY_CRITICAL);
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  user* self = (user*)instance;
  char line[64];
  snprintf(line, sizeof line, "stop exporter_started=%d", self->seats->started());
  journal(self->host, line);
  return EMSNODE_OK;
}

static void destroy(void* instance) {
  user* self = (user*)instance;
  journal(self->host, "destroy");
  free(self);
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, USER_ID, "1.0.0", create, start, stop, destroy)
