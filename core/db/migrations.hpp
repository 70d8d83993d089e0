// Versioned schema migrations, for the core ("core") and for each plugin ("plugin.<id>").
//
// Each component's schema version lives in one row of `schema_versions`. A component's
// migrations are numbered 1, 2, 3, ...; the binary's version is the last one. A node applies
// pending steps only when its config allows it (`[database] migrate = true`); each step runs in
// its own write transaction, which re-reads the version after taking the write lock, so when two
// nodes migrate at once each step is applied exactly once and the other node finds it done. A
// database newer than the binary is never touched: the node reports `newer` (the role manager's
// `schema_newer`) and migrate() refuses.
//
// Statements are written in the SQL subset SQLite and PostgreSQL share (INTEGER/BIGINT, TEXT,
// no AUTOINCREMENT, no backend-only functions in DDL): every backend runs the same steps.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "db/database.hpp"

namespace emsnode::db {

struct Migration {
  int version = 0;                      // 1 for the first step, then 2, 3, ...
  std::string description;              // for logs: what the step changes
  std::vector<std::string> statements;  // run in order, in one transaction
};

enum class SchemaStatus {
  current,  // the database is at the binary's version
  missing,  // the component has no schema in the database yet (version 0)
  older,    // 0 < database < binary: migrations are pending
  newer,    // database > binary: this binary must not use (or become active on) it
};
// "current", "missing", "older", "newer".
std::string_view schema_status_name(SchemaStatus status);

struct SchemaState {
  int db_version = 0;
  int binary_version = 0;
  SchemaStatus status = SchemaStatus::missing;
};

// The component's version in the database compared with `binary_version`. Creates the empty
// `schema_versions` table when it does not exist yet (its shape never changes), which is the
// portable way to read a version that may not be there.
SchemaState inspect(Database& database, std::string_view component, int binary_version);

// Applies the pending steps of `migrations` (numbered 1..n), each in its own transaction, and
// records `node_id` as the one that applied them. Throws DbError naming both versions when the
// database is newer than the last step, and std::invalid_argument when the steps are not
// numbered 1..n. A plugin's steps run under its `confinement` (the core's under none).
void migrate(Database& database, std::string_view component,
             const std::vector<Migration>& migrations, std::string_view node_id,
             const Confinement* confinement = nullptr);

}  // namespace emsnode::db
