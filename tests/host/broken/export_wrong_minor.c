/* Failure mode: create exports its API at another minor than plugin.toml declares (a table
 * built from an older header). The host refuses the export, and create fails with its reason. */
#include "seats_api.h"
#include "test_plugin.h"

static int64_t seats(void) {
  return 1;
}

static const tp_seats_v1 kSeats = {offsetof(tp_seats_v1, started), seats, NULL};

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  if (api->api_export(ctx, tp_str("seats.v1"), 0, &kSeats) != EMSNODE_OK) {
    api->set_error(ctx, api->last_error(ctx));
    return EMSNODE_ERROR;
  }
  return tp_create(api, ctx, instance);
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-export-wrong-minor", "1.0.0", create, tp_start,
          tp_stop, tp_destroy)
