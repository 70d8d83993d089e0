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
 *   - Each table member appended after 1.0 is marked "since 1.x": check `struct_size` before using
 *     it (the C++ wrapper's fits() does), as a 1.0 host does not have it.
 *
 * HISTORY
 *   1.0  the lifecycle, errors, logging, config, identity, executor and timers, metrics, health.
 *   1.1  the shared database (db_query, db_write, db_exec, db_migrate), last_error, and the
 *        status EMSNODE_FENCED.
 *   1.2  the shared file store (store_put, store_get, store_stat, store_list, store_remove).
 *
 * CONVENTIONS
 *   - Strings cross as `emsnode_str` views (pointer + length, not NUL-terminated). A view passed
 *     into a call is valid for the duration of that call only, unless OWNERSHIP says otherwise.
 *   - No C++ type and no exception crosses this boundary. A function that can fail returns
 *     `emsnode_status`; the plugin explains a failure with `host->set_error` before returning,
 *     and the host explains a failed service call through `host->last_error` (since 1.1).
 *   - THREAD: says on which thread a function is called (plugin entry points) or from which
 *     threads it may be called (host services).
 *
 * SHARED DATABASE (since 1.1)
 *   The cluster's database (SQLite or PostgreSQL, chosen by the node's config) is shared by every
 *   node. Any node reads (db_query); only the active node writes, and only through db_write or
 *   db_migrate, which the host fences: inside the same transaction it checks that this node
 *   still holds the lease at its epoch, so a node that lost the lease writes nothing.
 *   SQL is written once, in the subset both backends run alike:
 *     - parameters are `?` placeholders, bound in order (never `$1`, `:name` or string pasting);
 *     - column types BIGINT (64-bit integer), DOUBLE PRECISION, TEXT (UTF-8) and BYTEA (bytes);
 *       no BOOLEAN (use BIGINT 0/1), no date types (store milliseconds since the Unix epoch), no
 *       AUTOINCREMENT/SERIAL (choose keys yourself);
 *     - SELECT/INSERT/UPDATE/DELETE, `INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING`,
 *       `RETURNING`, `LIMIT`, `CREATE TABLE/INDEX IF NOT EXISTS`; cast aggregates whose type the
 *       backends disagree on (`CAST(SUM(n) AS BIGINT)`);
 *     - unquoted lower-case identifiers. A plugin's tables and indexes are named `<id>_...`,
 *       with a '-' of the id written '_' (plugin "mq-bridge": `mq_bridge_sessions`); the host
 *       refuses a migration step that creates, alters or drops one under another name.
 *   A plugin owns its tables' schema through db_migrate; it never touches the core's tables or
 *   another plugin's.
 *
 * SHARED FILE STORE (since 1.2)
 *   Files every node must see (installers, policy files, uploaded content) live in the cluster's
 *   file store: a folder on a network share or a table of the shared database, as the node's
 *   config chooses. A plugin sees only its own folder, `plugins/<id>/`: every key it passes is
 *   relative to that folder, and the host refuses a key that could leave it or name no file
 *   (empty, absolute, an empty, "." or ".." segment, a NUL, a backslash, a control character,
 *   not UTF-8, or over 1024 bytes with the folder's name). Any node reads (store_get, store_stat,
 *   store_list); only the active node writes (store_put, store_remove), fenced as db_write is:
 *   the file is published by a transaction that checks the lease, so a node that lost the lease
 *   publishes nothing. Content streams through callbacks in bounded chunks, so neither side holds
 *   a whole file. A put becomes visible only once complete; a get verifies the SHA-256 as it
 *   streams.
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
#define EMSNODE_ABI_MINOR 2

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
  EMSNODE_FENCED = 3,    /* since 1.1, db_write and db_migrate: this node does not hold the
                          * lease at its epoch (another node is active, or the lease expired);
                          * nothing was written. Stop writing: the node is being demoted. */
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

/* ---- shared database types (since 1.1) ---- */

/* The type of a SQL parameter or column value: which field of emsnode_db_value holds it. */
typedef enum emsnode_db_type {
  EMSNODE_DB_NULL = 0,    /* SQL NULL; no field is read */
  EMSNODE_DB_INTEGER = 1, /* `integer` */
  EMSNODE_DB_FLOAT = 2,   /* `floating` */
  EMSNODE_DB_TEXT = 3,    /* `bytes`: UTF-8 text */
  EMSNODE_DB_BLOB = 4,    /* `bytes`: any bytes */
} emsnode_db_type;

/* A SQL parameter or column value; only the field that `type` names is read.
 * It has no struct_size, on purpose: it travels in arrays, whose stride both sides must agree on
 * without asking, and it is passed by the thousand, so a size per element would be paid on every
 * row. Its layout is therefore frozen for the whole major: a new kind of value is added as a new
 * emsnode_db_type that reuses these fields (a reader refuses a type it does not know, and the host
 * never hands a plugin a type newer than the minor it was built for), and should a value ever
 * need more room, a later minor appends new functions taking a new struct, while these functions
 * and this struct stay as they are.
 * OWNERSHIP: `bytes` is a view; see the function that passes the value. */
typedef struct emsnode_db_value {
  emsnode_db_type type;
  int64_t integer;
  double floating;
  emsnode_str bytes; /* text (UTF-8) or blob; `ptr` may be NULL only when `len` is 0 */
} emsnode_db_value;

/* Receives one result row of db_query or db_exec: `column_count` values in the statement's column
 * order. Returns 0 for the next row, non-zero to stop: the remaining rows are skipped and the
 * call still succeeds.
 * THREAD: the thread that called db_query or db_exec, before that call returns.
 * OWNERSHIP: `columns` and the views in them are host-owned and valid during this call only. */
typedef int (*emsnode_db_row_fn)(void* user_data, const emsnode_db_value* columns,
                                 size_t column_count);

/* One write transaction of db_write, passed to its body. Opaque.
 * OWNERSHIP: host-owned; valid only until the body that received it returns. */
typedef struct emsnode_db_txn emsnode_db_txn;

/* The body of db_write: runs its statements with db_exec(txn, ...). Returns EMSNODE_OK to commit;
 * anything else rolls the transaction back.
 * THREAD: the thread that called db_write, before db_write returns. */
typedef emsnode_status (*emsnode_db_txn_fn)(void* user_data, emsnode_db_txn* txn);

/* ---- shared file store types (since 1.2) ---- */

/* Supplies the content of store_put: copies at most `capacity` bytes into `buffer` and returns how
 * many (fewer is fine), 0 at the end of the content, or a negative value to abort the put, which
 * then publishes nothing.
 * THREAD: the thread that called store_put, before store_put returns.
 * OWNERSHIP: `buffer` is the host's and valid during this call only. */
typedef int64_t (*emsnode_store_read_fn)(void* user_data, char* buffer, size_t capacity);

/* Receives the content of store_get, in order, `size` bytes at a time. Returns 0 to go on,
 * non-zero to abort the get (store_get then returns EMSNODE_ERROR).
 * THREAD: the thread that called store_get, before store_get returns.
 * OWNERSHIP: `data` is the host's and valid during this call only. */
typedef int (*emsnode_store_write_fn)(void* user_data, const char* data, size_t size);

/* What the store's catalog says about one file. It carries its size so that a later minor can
 * append fields: whoever fills one writes only the fields that fit in `struct_size`, and whoever
 * reads one reads only those (the C++ wrapper's fits() checks). For store_stat the plugin sets
 * `struct_size` to sizeof(emsnode_store_info) before the call; in store_list the host passes one
 * with its own size. */
typedef struct emsnode_store_info {
  uint32_t struct_size;   /* sizeof(emsnode_store_info) as the filler was compiled */
  uint64_t size;          /* the content's length in bytes */
  int64_t modified_at_ms; /* when it was published: ms since the Unix epoch, database clock */
  uint64_t epoch;         /* the lease epoch of the node that published it */
  char sha256[65];        /* SHA-256 of the content: 64 lowercase hex digits and a NUL */
} emsnode_store_info;

/* Receives one file of store_list: its key, relative to the plugin's folder, and its catalog
 * entry. Returns 0 for the next file, non-zero to stop: the call still succeeds.
 * THREAD: the thread that called store_list, before store_list returns.
 * OWNERSHIP: `key` and `info` are the host's and valid during this call only. */
typedef int (*emsnode_store_entry_fn)(void* user_data, emsnode_str key,
                                      const emsnode_store_info* info);

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

  /* ---- why a host call failed (since 1.1) ---- */

  /* Why the latest host service call made on this thread failed: one line for an operator, to
   * pass to set_error or to log. Every db_* function sets it when it returns anything but
   * EMSNODE_OK, as do post (EMSNODE_ERROR), timer_start (0) and metric_register (NULL); each of
   * those calls clears it first, so it is empty after a success. Read it right after the call
   * that failed, on the same thread.
   * THREAD: any; each thread reads its own. OWNERSHIP: host-owned, valid until this thread's next
   * call of a host service. */
  emsnode_str (*last_error)(emsnode_host_ctx* ctx);

  /* ---- shared database (since 1.1; see SHARED DATABASE at the top) ----
   * Every db_* function returns EMSNODE_ERROR with the reason in last_error when this node has no
   * shared database (e.g. under emsnode-plugin-check), for a statement the backend rejects, for a
   * value of an unknown type, or when the database cannot be reached. No db_* function may be
   * called from inside a db_write body except db_exec: the transaction holds the connection. */

  /* Runs one reading statement outside any transaction, binding `params[0..param_count)` to its
   * `?` placeholders in order, and passes the result rows to `on_row` (may be NULL) in order
   * until it returns non-zero. Allowed on every node, active or passive, from create until
   * destroy. A statement that could write is refused (write through db_write, which fences), as
   * is more than one statement in `sql`, here and in db_exec.
   * THREAD: any; on_row runs on the calling thread. OWNERSHIP: `sql` and `params` (may be NULL
   * when `param_count` is 0) are read during the call only. */
  emsnode_status (*db_query)(emsnode_host_ctx* ctx, emsnode_str sql, const emsnode_db_value* params,
                             size_t param_count, emsnode_db_row_fn on_row, void* user_data);

  /* Runs `body(user_data, txn)` inside ONE write transaction, fenced: in that same transaction,
   * before body runs, the host checks that this node holds the lease at the epoch that
   * current_epoch returns. Transactions are serialised across the node: keep body short, with
   * no network I/O. No retry: body runs at most once per call. Returns
   *   EMSNODE_OK      body returned EMSNODE_OK and the transaction committed;
   *   EMSNODE_FENCED  the lease check failed: body did not run, nothing was written, last_error
   *                   names the lease's holder and epoch;
   *   EMSNODE_ERROR   body returned anything else, a db_exec in it failed, the commit failed, or
   *                   the call was refused: nothing was written. last_error has the first failed
   *                   db_exec's reason, else the host's.
   * Refused unless the plugin is started: from the moment the host calls start until stop
   * returns (so start may write, and stop may flush).
   * THREAD: any; body runs on the calling thread before db_write returns. OWNERSHIP: `user_data`
   * stays the plugin's. */
  emsnode_status (*db_write)(emsnode_host_ctx* ctx, emsnode_db_txn_fn body, void* user_data);

  /* Runs one statement in the transaction `txn` of a running db_write body, binding params as
   * db_query does, and passes any rows it returns (a SELECT, or `... RETURNING`) to `on_row`
   * (may be NULL). `*changes` (may be NULL) receives, when on_row is NULL, the number of rows an
   * INSERT, UPDATE or DELETE changed; when on_row is set the statement runs as a query and it
   * receives the number of rows returned. After a failed db_exec the transaction is spoiled
   * (PostgreSQL aborts it; the host makes SQLite behave alike): later db_exec calls fail, and
   * db_write rolls back whatever body returns.
   * THREAD: the thread running the body that received `txn`. OWNERSHIP: as for db_query; `txn`
   * must not be kept past the body. */
  emsnode_status (*db_exec)(emsnode_db_txn* txn, emsnode_str sql, const emsnode_db_value* params,
                            size_t param_count, emsnode_db_row_fn on_row, void* user_data,
                            uint64_t* changes);

  /* Brings this plugin's tables to schema version `step_count`. `steps[i]` is ONE SQL statement
   * (no `;` between two statements) that takes the schema from version i to version i + 1: a
   * table of three columns and its index are two steps. The host records the version under the
   * component "plugin.<id>" with the core's migration runner and applies only the steps above
   * the version recorded, each with its version record in one transaction, so calling it at every
   * start is cheap and idempotent. Steps are append-only, as this header is: never edit a step
   * that has shipped, append a new one. Returns EMSNODE_OK when the schema is at `step_count`;
   * EMSNODE_ERROR when a step fails (the steps before it stay applied), a step creates, alters
   * or drops a table, index or view not named `<id>_...`, or the database is at a version above
   * `step_count`: this plugin is older than its data and must not run against it (fail start);
   * EMSNODE_FENCED when this node does not hold the lease at its epoch (checked before the first
   * step; as each step re-reads the version under the write lock, a step is applied once in the
   * cluster even by a node that loses the lease meanwhile). Like db_write, refused unless the
   * plugin is started: call it at the top of start.
   * THREAD: any. OWNERSHIP: `steps` and their text are read during the call only. */
  emsnode_status (*db_migrate)(emsnode_host_ctx* ctx, const emsnode_str* steps, size_t step_count);

  /* ---- shared file store (since 1.2; see SHARED FILE STORE at the top) ----
   * `key` is relative to the plugin's folder `plugins/<id>/`. Every store_* function clears
   * last_error first and sets it when it returns anything but EMSNODE_OK. Each returns
   * EMSNODE_ERROR when this node has no file store (e.g. under emsnode-plugin-check), for a key
   * the host refuses, when the store cannot be reached (share not mounted, database down) or is
   * full, and when called from inside a db_write body (the body holds the database connection
   * that the store's catalog needs). */

  /* Streams a file into the store at `key`, replacing the file there if any: calls `read` until
   * it returns 0, then publishes the file in ONE fenced transaction (as db_write: this node must
   * hold the lease at the epoch current_epoch returns). Readers see the previous file or the new
   * one, never a part. Returns
   *   EMSNODE_OK      the file is published;
   *   EMSNODE_FENCED  the lease check failed: nothing was published, last_error names the lease's
   *                   holder and epoch;
   *   EMSNODE_ERROR   `read` returned a negative value, the put was refused, or the store failed:
   *                   nothing was published.
   * Refused unless the plugin is started, as db_write is (from the moment the host calls start
   * until stop returns).
   * THREAD: any; `read` runs on the calling thread. OWNERSHIP: `user_data` stays the plugin's. */
  emsnode_status (*store_put)(emsnode_host_ctx* ctx, emsnode_str key, emsnode_store_read_fn read,
                              void* user_data);

  /* Streams the file at `key` to `write`, verifying its size and SHA-256 as it goes. Returns
   * EMSNODE_OK when every byte was passed and matched the catalog; EMSNODE_NOT_FOUND when there is
   * no such file (write was not called); EMSNODE_ERROR when `write` returned non-zero, the store
   * failed, or the content does not match its catalog entry. A mismatch may be found only after
   * the last byte: whatever `write` received is trustworthy only if the call returns EMSNODE_OK.
   * Allowed on every node, active or passive, from create until destroy.
   * THREAD: any; `write` runs on the calling thread. OWNERSHIP: `user_data` stays the plugin's. */
  emsnode_status (*store_get)(emsnode_host_ctx* ctx, emsnode_str key, emsnode_store_write_fn write,
                              void* user_data);

  /* Fills `*out` with the catalog entry of the file at `key`: only the fields that fit in
   * `out->struct_size`, which the caller sets first; struct_size itself is left as it is.
   * Returns EMSNODE_OK, EMSNODE_NOT_FOUND when there is no such file (`*out` is untouched), or
   * EMSNODE_ERROR. Allowed on every node from create until destroy.
   * THREAD: any. OWNERSHIP: `out` is the plugin's. */
  emsnode_status (*store_stat)(emsnode_host_ctx* ctx, emsnode_str key, emsnode_store_info* out);

  /* Passes every file of the plugin's folder whose key starts with `prefix` (empty: all of them)
   * to `on_entry`, ordered by key, until it returns non-zero. A prefix no valid key can start
   * with ("../", "/x") is refused. Returns EMSNODE_OK, also when no file matches, or
   * EMSNODE_ERROR. Allowed on every node from create until destroy.
   * THREAD: any; `on_entry` runs on the calling thread. OWNERSHIP: `user_data` stays the
   * plugin's. */
  emsnode_status (*store_list)(emsnode_host_ctx* ctx, emsnode_str prefix,
                               emsnode_store_entry_fn on_entry, void* user_data);

  /* Removes the file at `key`, fenced as store_put is. Returns EMSNODE_OK, EMSNODE_NOT_FOUND when
   * there is no such file, EMSNODE_FENCED (nothing removed; last_error names the lease's holder
   * and epoch), or EMSNODE_ERROR. Refused unless the plugin is started, as store_put.
   * THREAD: any. */
  emsnode_status (*store_remove)(emsnode_host_ctx* ctx, emsnode_str key);
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
