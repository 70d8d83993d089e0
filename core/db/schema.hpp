// The core's own tables and their migrations (component "core"):
//   lease            the one lease row: holder, epoch (fencing token), expiry on the db clock,
//                    the same-host OS lock flag and a switchover reservation
//   nodes            the node registry (see node_registry.hpp)
//   settings         cluster settings, written only by the active (see settings.hpp)
//   schema_versions  each component's schema version (see migrations.hpp)
//   store_*          the shared file store's catalog, blob chunks and change journal (v2, see
//                    store/file_store.hpp)
#pragma once

#include <string_view>
#include <vector>

#include "db/database.hpp"
#include "db/migrations.hpp"

namespace emsnode::db {

inline constexpr std::string_view kCoreComponent = "core";
// The core schema this binary understands: the last step of core_migrations().
constexpr int kCoreSchemaVersion = 2;

const std::vector<Migration>& core_migrations();

SchemaState inspect_core(Database& database);
void migrate_core(Database& database, std::string_view node_id);

}  // namespace emsnode::db
