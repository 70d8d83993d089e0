/* One plugin built three times (t-order-a, t-order-b, t-order-c: ORDERED_ID), so that the tests
 * can watch the order in which the host starts and stops plugins that require one another. */
#include "test_plugin.h"

static void journal(void* instance, const char* what) {
  char line[128];
  snprintf(line, sizeof line, "%s %s", what, ORDERED_ID);
  tp_journal(*(tp_host*)instance, line);
}

static emsnode_status start(void* instance) {
  journal(instance, "start");
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  journal(instance, "stop");
  return EMSNODE_OK;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, ORDERED_ID, "1.0.0", tp_create, start, stop,
          tp_destroy)
