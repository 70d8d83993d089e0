#include "db/schema.hpp"

namespace emsnode::db {

// Times are milliseconds since the Unix epoch on the database's clock, hence BIGINT (PostgreSQL's
// INTEGER has 32 bits; SQLite stores both as 64-bit integers). Booleans are INTEGER 0/1, which
// both backends compare the same way.
const std::vector<Migration>& core_migrations() {
  static const std::vector<Migration> migrations = {
      {1,
       "lease, node registry and cluster settings",
       {
           "CREATE TABLE lease ("
           "id INTEGER PRIMARY KEY CHECK (id = 1), "
           "holder TEXT, "
           "epoch BIGINT NOT NULL, "
           "expires_at_ms BIGINT NOT NULL, "
           "os_lock INTEGER NOT NULL DEFAULT 0, "
           "handover_to TEXT, "
           "handover_until_ms BIGINT, "
           "acquired_at_ms BIGINT)",
           "INSERT INTO lease (id, holder, epoch, expires_at_ms) VALUES (1, NULL, 0, 0)",
           "CREATE TABLE nodes ("
           "id TEXT PRIMARY KEY, "
           "instance TEXT NOT NULL, "
           "address TEXT NOT NULL, "
           "admin_address TEXT, "
           "version TEXT NOT NULL, "
           "backup_dir TEXT NOT NULL, "
           "role TEXT NOT NULL, "
           "reason TEXT, "
           "paused INTEGER NOT NULL DEFAULT 0, "
           "started_at_ms BIGINT, "
           "last_seen_ms BIGINT NOT NULL)",
           "CREATE TABLE settings ("
           "key TEXT PRIMARY KEY, "
           "value TEXT NOT NULL, "
           "updated_at_ms BIGINT NOT NULL, "
           "updated_by TEXT NOT NULL, "
           "epoch BIGINT NOT NULL)",
       }},
  };
  return migrations;
}

SchemaState inspect_core(Database& database) {
  return inspect(database, kCoreComponent, kCoreSchemaVersion);
}

void migrate_core(Database& database, std::string_view node_id) {
  migrate(database, kCoreComponent, core_migrations(), node_id);
}

}  // namespace emsnode::db
