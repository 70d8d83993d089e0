/* Helpers shared by the host tests' plugins. They are written against the raw C ABI only, as the
 * most minimal third-party plugin would be, so they test the host and nothing else. */
#ifndef EMSNODE_TESTS_HOST_TEST_PLUGIN_H
#define EMSNODE_TESTS_HOST_TEST_PLUGIN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emsnode/plugin_abi.h"

#define TP_STR(literal) \
  { (literal), sizeof(literal) - 1 }

/* What every test plugin keeps from create. */
typedef struct tp_host {
  const emsnode_host_api* api;
  emsnode_host_ctx* ctx;
} tp_host;

static inline emsnode_str tp_str(const char* text) {
  emsnode_str s = {text, strlen(text)};
  return s;
}

static inline void tp_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static inline emsnode_status tp_fail(tp_host host, const char* message) {
  host.api->set_error(host.ctx, tp_str(message));
  return EMSNODE_ERROR;
}

/* Copies the text of config key `key` into `out` (NUL-terminated); 0 when there is none. */
static inline int tp_config_text(tp_host host, const char* key, char* out, size_t size) {
  emsnode_str value;
  if (host.api->config_string(host.ctx, tp_str(key), &value) != EMSNODE_OK) return 0;
  snprintf(out, size, "%.*s", (int)value.len, value.ptr ? value.ptr : "");
  return 1;
}

/* Appends `line` to the file named by the config key "journal", when the plugin has one: lets a
 * test see what the host made the plugin do, and in which order. */
static inline void tp_journal(tp_host host, const char* line) {
  char path[4096];
  if (!tp_config_text(host, "journal", path, sizeof path)) return;
  FILE* file = fopen(path, "a");
  if (file == NULL) return;
  fprintf(file, "%s\n", line);
  fclose(file);
}

/* Entry points for plugins whose failure mode lies elsewhere. */
static inline emsnode_status tp_create(const emsnode_host_api* api, emsnode_host_ctx* ctx,
                                       void** instance) {
  tp_host* host = (tp_host*)malloc(sizeof *host);
  if (host == NULL) return EMSNODE_ERROR;
  host->api = api;
  host->ctx = ctx;
  *instance = host;
  return EMSNODE_OK;
}
static inline emsnode_status tp_start(void* instance) {
  (void)instance;
  return EMSNODE_OK;
}
static inline emsnode_status tp_stop(void* instance, uint64_t deadline_ms) {
  (void)instance;
  (void)deadline_ms;
  return EMSNODE_OK;
}
static inline void tp_destroy(void* instance) {
  free(instance);
}

/* Defines the plugin's table and its entry point, which hands the table to any host: each test
 * plugin states in one line what it claims to be, and the host must check it. */
#define TP_PLUGIN(abi_major, abi_minor, id, version, create, start, stop, destroy)            \
  static const emsnode_plugin_api kApi = {sizeof(emsnode_plugin_api),                         \
                                          (abi_major),                                        \
                                          (abi_minor),                                        \
                                          TP_STR(id),                                         \
                                          TP_STR(version),                                    \
                                          (create),                                           \
                                          (start),                                            \
                                          (stop),                                             \
                                          (destroy)};                                         \
  EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry(uint16_t host_major,   \
                                                                       uint16_t host_minor) { \
    (void)host_major;                                                                         \
    (void)host_minor;                                                                         \
    return &kApi;                                                                             \
  }

#endif
