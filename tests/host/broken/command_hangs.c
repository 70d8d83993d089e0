/* Failure mode: a command handler that does not return within the command timeout. The caller
 * must be told (504) at the timeout, the late answer dropped, the next call refused while it
 * still runs, and destroy must wait for it. */
#include "test_plugin.h"

static emsnode_status hang(void* user_data, emsnode_command_call* call) {
  const tp_host* host = (const tp_host*)user_data;
  tp_sleep_ms(1500);
  host->api->command_reply(call, tp_str("{\"late\":true}"));
  return EMSNODE_OK;
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  if (tp_create(api, ctx, instance) != EMSNODE_OK) return EMSNODE_ERROR;
  return api->command_handle(ctx, tp_str("hang"), hang, *instance);
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-command-hangs", "1.0.0", create, tp_start,
          tp_stop, tp_destroy)
