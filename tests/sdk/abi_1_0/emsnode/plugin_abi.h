/*
 * emsnode plugin ABI: the C contract between the emsnode host and a plugin library.
 *
 * VERSION POLICY (what a plugin author can rely on)
 *   - EMSNODE_ABI_MAJOR changes only when an existing declaration changes meaning or layout.
 *     The host refuses a plugin built against a different major.
 *   - EMSNODE_ABI_MINOR grows when something is appended: a function at the end of a table, a
 *     field at the end of a struct, a new enum value. The host refuses a plugin built against a
 *     newer minor than its own, and accepts any older one.
 *   - Every table starts with `struct_size`. A reader touches only the fields that fit inside the
 *     size the writer declared, so old plugins keep working on newer hosts.
 *   - `struct_size`, `abi_major` and `abi_minor` open both tables in every major, so either side
 *     can read the other's version before refusing it.
 *   - Nothing is ever removed or reordered within a major. This header is pinned by a hash in the
 *     emsnode test suite: editing it without bumping the version fails the build's tests.
 *
 * CONVENTIONS
 *   - Strings cross as `emsnode_str` views (pointer + length, not NUL-terminated). A view passed
 *     into a call is valid for the duration of that call only, unless OWNERSHIP says otherwise.
 *   - No C++ type and no exception crosses this boundary. A function that can fail returns
 *     `emsnode_status`; the plugin explains a failure with `host->set_error` before returning.
 *   - THREAD: says on which thread a function is called (plugin entry points) or from which
 *     threads it may be called (host services).
 *
 * LIFECYCLE (driven by the host, never by the plugin)
 *   emsnode_plugin_entry -> create (every node, at boot: validate config, allocate)
 *     -> start (when the node becomes active) -> stop (when it stops being active)
 *     -> start -> stop ... -> destroy (at shutdown)
 *   stop is idempotent and is also called after a failed start.
 */
#ifndef EMSNODE_PLUGIN_ABI_H
#define EMSNODE_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMSNODE_ABI_MAJOR 1
#define EMSNODE_ABI_MINOR 0

#if defined(_WIN32)
#define EMSNODE_PLUGIN_EXPORT __declspec(dllexport)
#else
#define EMSNODE_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* A borrowed UTF-8 string view. `ptr` may be NULL only when `len` is 0. */
typedef struct emsnode_str {
  const char* ptr;
  size_t len;
} emsnode_str;

/* A key=value pair of strings, used for structured log fields and metric labels. */
typedef struct emsnode_field {
  emsnode_str key;
  emsnode_str value;
} emsnode_field;

typedef enum emsnode_status {
  EMSNODE_OK = 0,
  EMSNODE_ERROR = 1,     /* the call failed; the reason was given with set_error */
  EMSNODE_NOT_FOUND = 2, /* config getters: no such key, or not of the requested type */
} emsnode_status;

typedef enum emsnode_log_level {
  EMSNODE_LOG_TRACE = 0,
  EMSNODE_LOG_DEBUG = 1,
  EMSNODE_LOG_INFO = 2,
  EMSNODE_LOG_WARNING = 3,
  EMSNODE_LOG_ERROR = 4,
} emsnode_log_level;

typedef enum emsnode_metric_kind {
  EMSNODE_METRIC_COUNTER = 0,   /* only grows: metric_add with a value >= 0 */
  EMSNODE_METRIC_GAUGE = 1,     /* goes up and down: metric_set or metric_add */
  EMSNODE_METRIC_HISTOGRAM = 2, /* distribution: metric_observe */
} emsnode_metric_kind;

typedef enum emsnode_health {
  EMSNODE_HEALTH_OK = 0,
  EMSNODE_HEALTH_DEGRADED = 1, /* serving, but something needs an operator's attention */
  EMSNODE_HEALTH_FAILED = 2,   /* not serving */
} emsnode_health;

/* The host's per-plugin context. Opaque; passed back into every host service.
 * OWNERSHIP: owned by the host; valid from create until destroy returns. */
typedef struct emsnode_host_ctx emsnode_host_ctx;

/* A metric registered by a plugin. OWNERSHIP: owned by the host; valid until destroy returns. */
typedef struct emsnode_metric emsnode_metric;

/* A timer identifier; 0 is never a valid timer. The host never reuses an id within the life of
 * one plugin instance, so a stale id cannot cancel another timer. */
typedef uint64_t emsnode_timer_id;

/* A callback the host runs on its executor thread.
 * THREAD: the host's executor thread for this plugin; callbacks of one plugin never run
 * concurrently with each other. They may run concurrently with the plugin's own threads. */
typedef void (*emsnode_task_fn)(void* user_data);

/* Services the host offers to a plugin. Appended to at the end only (see VERSION POLICY). */
typedef struct emsnode_host_api {
  uint32_t struct_size; /* sizeof(emsnode_host_api) as the host was compiled */
  uint16_t abi_major;   /* the host's EMSNODE_ABI_MAJOR */
  uint16_t abi_minor;   /* the host's EMSNODE_ABI_MINOR */

  /* ---- errors ---- */

  /* Explains why the entry point that is running failed; call it before returning
   * EMSNODE_ERROR from create, start or stop. The last message wins.
   * THREAD: the thread running create, start or stop. OWNERSHIP: the host copies `message`. */
  void (*set_error)(emsnode_host_ctx* ctx, emsnode_str message);

  /* ---- logging ---- */

  /* Writes one log record into the host's sinks, tagged with the plugin id. `event` is a stable
   * dotted name an operator can search for ("session.expired"); `fields` add key=value context.
   * Records below the configured level for this plugin are dropped cheaply.
   * THREAD: any. OWNERSHIP: the host copies everything before returning. */
  void (*log)(emsnode_host_ctx* ctx, emsnode_log_level level, emsnode_str event,
              const emsnode_field* fields, size_t field_count);

  /* Whether a record at `level` would be written; lets a plugin skip building costly fields.
   * THREAD: any. */
  int (*log_enabled)(emsnode_host_ctx* ctx, emsnode_log_level level);

  /* ---- configuration ----
   * The plugin's `[plugins.<id>]` table, already validated by the host against the schema in
   * plugin.toml, with defaults filled in. Keys are the schema's names; a key of type `secret` is
   * already resolved from `env:NAME` or `<key>_file`. A getter returns EMSNODE_NOT_FOUND when the
   * key is absent or has another type.
   * THREAD: any. OWNERSHIP: returned strings are owned by the host and valid until destroy. */
  emsnode_status (*config_string)(emsnode_host_ctx* ctx, emsnode_str key, emsnode_str* out);
  emsnode_status (*config_int)(emsnode_host_ctx* ctx, emsnode_str key, int64_t* out);
  /* A float key also reads an integer value. */
  emsnode_status (*config_float)(emsnode_host_ctx* ctx, emsnode_str key, double* out);
  emsnode_status (*config_bool)(emsnode_host_ctx* ctx, emsnode_str key, int* out);
  /* Durations are given in the config as strings such as "500ms" or "2s". */
  emsnode_status (*config_duration_ms)(emsnode_host_ctx* ctx, emsnode_str key, uint64_t* out);
  /* Arrays of strings: the count, then each element by index. */
  emsnode_status (*config_array_size)(emsnode_host_ctx* ctx, emsnode_str key, size_t* out);
  emsnode_status (*config_array_string)(emsnode_host_ctx* ctx, emsnode_str key, size_t index,
                                        emsnode_str* out);

  /* ---- identity ---- */

  /* This node's id from the node config. THREAD: any. OWNERSHIP: host-owned, valid until
   * destroy. */
  emsnode_str (*node_id)(emsnode_host_ctx* ctx);

  /* The fencing epoch under which this node is active, or 0 while it is not active. A plugin
   * stamps durable writes with it. THREAD: any. */
  uint64_t (*current_epoch)(emsnode_host_ctx* ctx);

  /* ---- executor and timers ---- */

  /* Runs `fn(user_data)` once, soon, on the host's executor.
   * Returns EMSNODE_ERROR when the plugin is not started. THREAD: any. OWNERSHIP: `user_data`
   * stays the plugin's; it must stay valid until the callback has run or the plugin is stopped. */
  emsnode_status (*post)(emsnode_host_ctx* ctx, emsnode_task_fn fn, void* user_data);

  /* Starts a timer that fires after `delay_ms`, then every `period_ms` if that is not 0.
   * Returns its id, or 0 when the plugin is not started. Timers are bound to the active period:
   * the host cancels, and reports as leaked, every timer still armed when stop returns.
   * THREAD: any. OWNERSHIP: as for post. */
  emsnode_timer_id (*timer_start)(emsnode_host_ctx* ctx, uint64_t delay_ms, uint64_t period_ms,
                                  emsnode_task_fn fn, void* user_data);

  /* Cancels a timer. After it returns the callback is not running and will not run again,
   * unless called from within that same callback. Cancelling an unknown or fired one-shot timer
   * is harmless. THREAD: any. */
  void (*timer_cancel)(emsnode_host_ctx* ctx, emsnode_timer_id timer);

  /* ---- metrics ----
   * Registered metrics appear on the node's Prometheus endpoint, named
   * `emsnode_plugin_<id>_<name>` with the given labels plus `plugin="<id>"`.
   * `name` is [a-z_][a-z0-9_]*. Registering the same name and labels twice returns the same
   * metric; the same name with another kind fails (NULL, reason in the host log).
   * `buckets` (histograms only; NULL for the default buckets) are ascending upper bounds.
   * THREAD: any. OWNERSHIP: the host copies the arguments; the metric is host-owned. */
  emsnode_metric* (*metric_register)(emsnode_host_ctx* ctx, emsnode_metric_kind kind,
                                     emsnode_str name, emsnode_str help,
                                     const emsnode_field* labels, size_t label_count,
                                     const double* buckets, size_t bucket_count);
  /* Adds to a counter or gauge; a negative delta on a counter is ignored.
   * THREAD: any; lock-free on the fast path. */
  void (*metric_add)(emsnode_metric* metric, double delta);
  /* Sets a gauge. THREAD: any. */
  void (*metric_set)(emsnode_metric* metric, double value);
  /* Records one observation in a histogram. THREAD: any. */
  void (*metric_observe)(emsnode_metric* metric, double value);

  /* ---- health ---- */

  /* Reports the plugin's own view of its health, shown in the node's status. Starts as OK at
   * each start. THREAD: any. OWNERSHIP: the host copies `detail`. */
  void (*health_report)(emsnode_host_ctx* ctx, emsnode_health health, emsnode_str detail);
} emsnode_host_api;

/* What a plugin exports: its compiled-in facts and its entry points. */
typedef struct emsnode_plugin_api {
  uint32_t struct_size; /* sizeof(emsnode_plugin_api) as the plugin was compiled */
  uint16_t abi_major;   /* the EMSNODE_ABI_MAJOR the plugin was compiled against */
  uint16_t abi_minor;   /* the EMSNODE_ABI_MINOR the plugin was compiled against */
  emsnode_str id;       /* must equal `id` in plugin.toml */
  emsnode_str version;  /* must equal `version` in plugin.toml */

  /* Builds an instance from the validated config and checks everything that can be checked
   * without serving (addresses parse, files exist). Binds no port and starts no thread: it runs
   * on every node, active or not. On success stores the instance in `*instance`.
   * THREAD: the host's main thread. OWNERSHIP: `host` and `ctx` stay valid until destroy
   * returns; the instance is the plugin's until destroy. */
  emsnode_status (*create)(const emsnode_host_api* host, emsnode_host_ctx* ctx, void** instance);

  /* Starts serving: the node is active. Returns once serving (ports bound) or failed.
   * THREAD: a host thread; start and stop of one instance never run concurrently. */
  emsnode_status (*start)(void* instance);

  /* Stops serving within `deadline_ms`: closes listeners and connections, joins every thread
   * the plugin started, cancels its timers. Idempotent; also called after a failed start.
   * A plugin that has not returned by the deadline is marked faulted and abandoned: it is never
   * started again, never destroyed and its library never unloaded, since its code may still run.
   * THREAD: a host thread, as for start. */
  emsnode_status (*stop)(void* instance, uint64_t deadline_ms);

  /* Frees the instance. Called once, after the last stop.
   * THREAD: the host's main thread. */
  void (*destroy)(void* instance);
} emsnode_plugin_api;

/* The one symbol a plugin library exports. Returns the plugin's table, or NULL if the plugin
 * cannot work with this host (it may log nothing: the host reports the refusal).
 * THREAD: the host's main thread, once, right after the library is loaded.
 * OWNERSHIP: the returned table is static in the plugin and lives as long as the library. */
#define EMSNODE_PLUGIN_ENTRY_SYMBOL "emsnode_plugin_entry"
typedef const emsnode_plugin_api* (*emsnode_plugin_entry_fn)(uint16_t host_abi_major,
                                                             uint16_t host_abi_minor);
/* Declared here so that a plugin's definition with another signature fails to compile. */
EMSNODE_PLUGIN_EXPORT const emsnode_plugin_api* emsnode_plugin_entry(uint16_t host_abi_major,
                                                                     uint16_t host_abi_minor);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMSNODE_PLUGIN_ABI_H */
