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
      // The shared file store (core/store). `store_blob_chunks.data` is BLOB, SQLite's name; the
      // PostgreSQL backend rewrites it to BYTEA, as it rewrites placeholders.
      {2,
       "shared file store: catalog, blob chunks, change journal",
       {
           // One row per published file; `location` names the content within `backend`: the
           // object's path relative to the share, or the blob id.
           "CREATE TABLE store_files ("
           "key TEXT PRIMARY KEY, "
           "size BIGINT NOT NULL, "
           "sha256 TEXT NOT NULL, "
           "modified_at_ms BIGINT NOT NULL, "
           "writer_node TEXT NOT NULL, "
           "epoch BIGINT NOT NULL, "
           "backend TEXT NOT NULL, "
           "location TEXT NOT NULL)",
           // Garbage collection and cleanup ask "does any row still name this content?".
           "CREATE INDEX store_files_location ON store_files (backend, location)",
           // A blob is written unfenced and invisibly, then published by pointing a catalog row
           // at it. released_at_ms is set when the catalog stops pointing at it: readers that
           // started before may still be streaming it, so it is deleted only a grace period
           // later.
           "CREATE TABLE store_blobs ("
           "blob_id TEXT PRIMARY KEY, "
           "created_at_ms BIGINT NOT NULL, "
           "complete INTEGER NOT NULL, "
           "released_at_ms BIGINT)",
           "CREATE TABLE store_blob_chunks ("
           "blob_id TEXT NOT NULL, "
           "seq BIGINT NOT NULL, "
           "data BLOB NOT NULL, "
           "PRIMARY KEY (blob_id, seq))",
           // store_id: the identity written into the share's marker file. change_seq: bumped by
           // every publishing write, in the same transaction; watchers poll it.
           "CREATE TABLE store_state ("
           "id INTEGER PRIMARY KEY CHECK (id = 1), "
           "store_id TEXT, "
           "change_seq BIGINT NOT NULL)",
           "INSERT INTO store_state (id, store_id, change_seq) VALUES (1, NULL, 0)",
           // The last changes (bounded: each write trims the oldest), read by watchers.
           "CREATE TABLE store_changes ("
           "seq BIGINT PRIMARY KEY, "
           "key TEXT NOT NULL, "
           "kind TEXT NOT NULL, "
           "at_ms BIGINT NOT NULL)",
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
