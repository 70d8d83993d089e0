/* Failure mode: start arms a periodic timer and stop forgets to cancel it. The host must cancel
 * it when stop returns (so the callback never runs on freed state) and report the leak. */
#include "test_plugin.h"

static void tick(void* user_data) {
  (void)user_data;
}

static emsnode_status start(void* instance) {
  tp_host* host = (tp_host*)instance;
  if (host->api->timer_start(host->ctx, 10, 10, tick, host) == 0) {
    return tp_fail(*host, "timer_start refused during start");
  }
  return EMSNODE_OK;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-timer-leak", "1.0.0", tp_create, start, tp_stop,
          tp_destroy)
