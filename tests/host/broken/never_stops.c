/* Failure mode: stop does not return (a thread that ignores its shutdown flag). The host must
 * fault the plugin at the stop deadline and go on. Stop returns once `release_file` exists (30s
 * at most, so a test process never hangs on it); it then uses host services and writes
 * <release_file>.done, showing that an abandoned call can still finish safely after the host is
 * gone. Instances are static, because a faulted plugin is never destroyed, and one each: the
 * stop left running keeps reading its own while the host creates another (emsnode-plugin-check
 * does). */
#include <sys/stat.h>

#include "test_plugin.h"

static tp_host hosts[8];
static unsigned created;  // create is never called concurrently

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  tp_host* host = &hosts[created++ % 8];
  host->api = api;
  host->ctx = ctx;
  *instance = host;
  return EMSNODE_OK;
}

static emsnode_status stop(void* instance, uint64_t deadline_ms) {
  (void)deadline_ms;
  tp_host* host = (tp_host*)instance;
  char release[4096];
  if (!tp_config_text(*host, "release_file", release, sizeof release)) return EMSNODE_ERROR;
  struct stat st;
  for (int waited_ms = 0; waited_ms < 30000 && stat(release, &st) != 0; waited_ms += 10) {
    tp_sleep_ms(10);
  }
  host->api->log(host->ctx, EMSNODE_LOG_INFO, tp_str("never_stops.released"), NULL, 0);
  host->api->set_error(host->ctx, tp_str("released late"));
  char done[4200];
  snprintf(done, sizeof done, "%s.done", release);
  FILE* file = fopen(done, "w");
  if (file != NULL) fclose(file);
  return EMSNODE_OK;
}

static void destroy(void* instance) {
  (void)instance;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-never-stops", "1.0.0", create, tp_start, stop,
          destroy)
