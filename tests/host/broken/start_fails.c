/* Failure mode: start fails (say, its port is taken). The host must report it, call stop (valid
 * after a failed start: the journal shows it) and keep the other plugins running. */
#include "test_plugin.h"

static emsnode_status start(void* instance) {
  tp_host* host = (tp_host*)instance;
  tp_journal(*host, "start t-start-fails");
  return tp_fail(*host, "cannot listen on 127.0.0.1:1: address already in use");
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  tp_journal(*(tp_host*)instance, "stop t-start-fails");
  return EMSNODE_OK;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-start-fails", "1.0.0", tp_create, start, stop,
          tp_destroy)
