/* Failure mode: start takes longer than the host's start timeout. The host must give up on it,
 * and call stop only once start has returned (never both at once: the journal shows the order),
 * or fault the plugin if start outlives the stop deadline too. The instance is static, because a
 * faulted plugin is never destroyed. */
#include "test_plugin.h"

static tp_host the_host;

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  the_host.api = api;
  the_host.ctx = ctx;
  *instance = &the_host;
  return EMSNODE_OK;
}

static emsnode_status start(void* instance) {
  tp_host* host = (tp_host*)instance;
  uint64_t hang_ms = 1000;
  host->api->config_duration_ms(host->ctx, tp_str("hang"), &hang_ms);
  tp_journal(*host, "start begins");
  tp_sleep_ms((long)hang_ms);
  tp_journal(*host, "start returns");
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  tp_journal(*(tp_host*)instance, "stop");
  return EMSNODE_OK;
}

static void destroy(void* instance) {
  (void)instance;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-start-hangs", "1.0.0", create, start, stop,
          destroy)
