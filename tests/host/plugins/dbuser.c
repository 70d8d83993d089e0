/* A plugin of ABI 1.1 that uses the shared database through the raw C ABI, as the smallest third
 * party would: reads in create (where writes are still refused), then at each start migrates its
 * table, writes a row of every value type in one fenced transaction, and reads the table back.
 * It journals what each call returned, so the tests check the host end to end.
 *
 * Config: `steps` is how many migration steps this "build" of the plugin knows (a test lowers it
 * to play an older plugin binary against newer data). */
#include <inttypes.h>

#include "test_plugin.h"

typedef struct dbuser {
  tp_host host;
  int64_t steps;
  int64_t rows_in_txn; /* what the transaction saw after its insert */
} dbuser;

/* Each step takes the schema one version up; the table is named after the plugin, as required. */
static const emsnode_str kSteps[] = {
    TP_STR("CREATE TABLE t_dbuser_items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, "
           "ratio DOUBLE PRECISION, data BYTEA, note TEXT)"),
    TP_STR("CREATE INDEX t_dbuser_items_name ON t_dbuser_items (name)"),
    TP_STR("ALTER TABLE t_dbuser_items ADD COLUMN extra BIGINT"),
};

static int host_has_db(const emsnode_host_api* api) {
  return api->struct_size >= offsetof(emsnode_host_api, db_migrate) + sizeof(api->db_migrate);
}

/* Journals "<what>=<status> error=<last_error>" and returns the status. */
static emsnode_status journal_call(dbuser* self, const char* what, emsnode_status status) {
  emsnode_str error = self->host.api->last_error(self->host.ctx);
  char line[1024];
  snprintf(line, sizeof line, "%s=%d error=%.*s", what, (int)status, (int)error.len,
           error.ptr ? error.ptr : "");
  tp_journal(self->host, line);
  return status;
}

/* Passes the host's reason on as the reason start failed. */
static emsnode_status fail_start(dbuser* self, const char* what, emsnode_status status) {
  journal_call(self, what, status);
  self->host.api->set_error(self->host.ctx, self->host.api->last_error(self->host.ctx));
  return EMSNODE_ERROR;
}

static int read_integer(void* user_data, const emsnode_db_value* columns, size_t count) {
  if (count == 1 && columns[0].type == EMSNODE_DB_INTEGER)
    *(int64_t*)user_data = columns[0].integer;
  return 0;
}

static emsnode_status write_noop(void* user_data, emsnode_db_txn* txn) {
  (void)user_data;
  (void)txn;
  return EMSNODE_OK;
}

/* One row of every value type, keyed by the epoch it was written under. */
static emsnode_status write_row(void* user_data, emsnode_db_txn* txn) {
  dbuser* self = (dbuser*)user_data;
  const emsnode_host_api* api = self->host.api;
  const int64_t epoch = (int64_t)api->current_epoch(self->host.ctx);
  char name[64];
  snprintf(name, sizeof name, "epoch %" PRId64, epoch);
  static const char kData[] = {0, 1, (char)0xff};
  emsnode_db_value params[5];
  memset(params, 0, sizeof params);
  params[0].type = EMSNODE_DB_INTEGER;
  params[0].integer = epoch;
  params[1].type = EMSNODE_DB_TEXT;
  params[1].bytes = tp_str(name);
  params[2].type = EMSNODE_DB_FLOAT;
  params[2].floating = (double)epoch / 4;
  params[3].type = EMSNODE_DB_BLOB;
  params[3].bytes.ptr = kData;
  params[3].bytes.len = sizeof kData;
  params[4].type = EMSNODE_DB_NULL;
  uint64_t changes = 0;
  emsnode_status status = api->db_exec(
      txn,
      tp_str("INSERT INTO t_dbuser_items (id, name, ratio, data, note) VALUES (?, ?, ?, ?, ?)"),
      params, 5, NULL, NULL, &changes);
  if (status != EMSNODE_OK || changes != 1) return EMSNODE_ERROR;
  return api->db_exec(txn, tp_str("SELECT COUNT(*) FROM t_dbuser_items"), NULL, 0, read_integer,
                      &self->rows_in_txn, NULL);
}

/* Journals one row of the table as "row id=.. name=.. ratio=.. data=<hex> note=NULL". */
static int journal_row(void* user_data, const emsnode_db_value* columns, size_t count) {
  dbuser* self = (dbuser*)user_data;
  char hex[64] = "";
  char line[512];
  if (count != 5 || columns[0].type != EMSNODE_DB_INTEGER || columns[1].type != EMSNODE_DB_TEXT ||
      columns[2].type != EMSNODE_DB_FLOAT || columns[3].type != EMSNODE_DB_BLOB) {
    tp_journal(self->host, "row of unexpected types");
    return 1;
  }
  for (size_t i = 0; i < columns[3].bytes.len && i < 16; ++i) {
    snprintf(hex + 2 * i, 3, "%02x", (unsigned char)columns[3].bytes.ptr[i]);
  }
  snprintf(line, sizeof line, "row id=%" PRId64 " name=%.*s ratio=%g data=%s note=%s",
           columns[0].integer, (int)columns[1].bytes.len, columns[1].bytes.ptr, columns[2].floating,
           hex, columns[4].type == EMSNODE_DB_NULL ? "NULL" : "not null");
  tp_journal(self->host, line);
  return 0;
}

static emsnode_status create(const emsnode_host_api* api, emsnode_host_ctx* ctx, void** instance) {
  dbuser* self = (dbuser*)calloc(1, sizeof *self);
  if (self == NULL) return EMSNODE_ERROR;
  self->host.api = api;
  self->host.ctx = ctx;
  if (!host_has_db(api)) {
    free(self);
    return tp_fail((tp_host){api, ctx}, "the host offers no shared database (ABI 1.0)");
  }
  if (api->config_int(ctx, tp_str("steps"), &self->steps) != EMSNODE_OK) {
    free(self);
    return tp_fail((tp_host){api, ctx}, "config key steps is missing");
  }
  /* Reads work on every node, already in create; writes do not. */
  int64_t one = 0;
  journal_call(self, "create query",
               api->db_query(ctx, tp_str("SELECT 1"), NULL, 0, read_integer, &one));
  if (one != 1) tp_journal(self->host, "create query returned no 1");
  journal_call(self, "create write", api->db_write(ctx, write_noop, self));
  *instance = self;
  return EMSNODE_OK;
}

static emsnode_status start(void* instance) {
  dbuser* self = (dbuser*)instance;
  const emsnode_host_api* api = self->host.api;
  emsnode_host_ctx* ctx = self->host.ctx;
  emsnode_status status = api->db_migrate(ctx, kSteps, (size_t)self->steps);
  if (status != EMSNODE_OK) return fail_start(self, "start migrate", status);
  status = api->db_write(ctx, write_row, self);
  if (status != EMSNODE_OK) return fail_start(self, "start write", status);
  status =
      api->db_query(ctx,
                    tp_str("SELECT id, name, ratio, data, note FROM t_dbuser_items "
                           "WHERE id >= ? ORDER BY id"),
                    &(emsnode_db_value){EMSNODE_DB_INTEGER, 0, 0, {NULL, 0}}, 1, journal_row, self);
  if (status != EMSNODE_OK) return fail_start(self, "start read", status);
  char line[64];
  snprintf(line, sizeof line, "start ok rows_in_txn=%" PRId64, self->rows_in_txn);
  tp_journal(self->host, line);
  return EMSNODE_OK;
}

TP_PLUGIN(EMSNODE_ABI_MAJOR, EMSNODE_ABI_MINOR, "t-dbuser", "1.0.0", create, start, tp_stop,
          tp_destroy)
