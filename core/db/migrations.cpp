#include "db/migrations.hpp"

#include <stdexcept>
#include <string>

#include "log/log.hpp"

namespace emsnode::db {
namespace {

constexpr const char* kCreateVersionsTable =
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    "component TEXT PRIMARY KEY, "
    "version INTEGER NOT NULL, "
    "updated_at_ms BIGINT, "
    "updated_by TEXT)";

// PostgreSQL: two nodes migrating at once would both read the old version (READ COMMITTED reads
// what is committed, and no row lock covers a row that does not exist yet) and both run the DDL.
// A transaction-scoped advisory lock, taken before anything is read, makes them take turns; it
// also keeps concurrent CREATE TABLE IF NOT EXISTS apart, which PostgreSQL does not make
// atomic. SQLite's BEGIN IMMEDIATE already serialises the transactions.
constexpr std::int64_t kMigrationLockKey = 0x656d736e6f6465;  // "emsnode"

void serialise_migrations(const Database& database, Transaction& tx) {
  if (database.backend() != "postgresql") return;
  tx.query("SELECT pg_advisory_xact_lock(?)", {kMigrationLockKey});
}

int read_version(Transaction& tx, std::string_view component) {
  const Rows rows =
      tx.query("SELECT version FROM schema_versions WHERE component = ?", {std::string(component)});
  return rows.empty() ? 0 : static_cast<int>(rows.front().integer(0));
}

SchemaStatus status_of(int db_version, int binary_version) {
  if (db_version == binary_version) return SchemaStatus::current;
  if (db_version == 0) return SchemaStatus::missing;
  return db_version < binary_version ? SchemaStatus::older : SchemaStatus::newer;
}

[[noreturn]] void refuse_newer(const Database& database, std::string_view component, int db_version,
                               int binary_version) {
  throw DbError(database.describe() + ": the " + std::string(component) +
                " schema in the database is version " + std::to_string(db_version) +
                ", newer than this binary's version " + std::to_string(binary_version) +
                ": upgrade this node instead (a node never downgrades the schema)");
}

}  // namespace

std::string_view schema_status_name(SchemaStatus status) {
  switch (status) {
    case SchemaStatus::current:
      return "current";
    case SchemaStatus::missing:
      return "missing";
    case SchemaStatus::older:
      return "older";
    case SchemaStatus::newer:
      return "newer";
  }
  return "unknown";
}

SchemaState inspect(Database& database, std::string_view component, int binary_version) {
  SchemaState state;
  state.binary_version = binary_version;
  database.transaction([&](Transaction& tx) {
    serialise_migrations(database, tx);
    tx.exec(kCreateVersionsTable);
    state.db_version = read_version(tx, component);
  });
  state.status = status_of(state.db_version, binary_version);
  return state;
}

void migrate(Database& database, std::string_view component,
             const std::vector<Migration>& migrations, std::string_view node_id,
             const Confinement* confinement) {
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      throw std::invalid_argument("the migrations of " + std::string(component) +
                                  " must be numbered 1, 2, 3, ...: step " + std::to_string(i + 1) +
                                  " has version " + std::to_string(migrations[i].version));
    }
  }
  const int binary_version = static_cast<int>(migrations.size());
  const SchemaState before = inspect(database, component, binary_version);
  if (before.status == SchemaStatus::newer) {
    refuse_newer(database, component, before.db_version, binary_version);
  }
  const log::Logger log{"db"};
  for (int version = before.db_version + 1; version <= binary_version; ++version) {
    const Migration& step = migrations[static_cast<std::size_t>(version) - 1];
    bool applied = false;
    database.transaction([&](Transaction& tx) {
      serialise_migrations(database, tx);
      // Re-read under the write lock: another node may have applied this step (or more) since.
      const int db_version = read_version(tx, component);
      if (db_version > binary_version) {
        refuse_newer(database, component, db_version, binary_version);
      }
      if (db_version >= version) return;
      for (const auto& statement : step.statements) {
        if (confinement) {
          tx.confined_exec(*confinement, statement, {});
        } else {
          tx.exec(statement);
        }
      }
      tx.exec(
          "INSERT INTO schema_versions (component, version, updated_at_ms, updated_by) "
          "VALUES (?, ?, ?, ?) "
          "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
          "updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by",
          {std::string(component), static_cast<std::int64_t>(version), database.now_ms(),
           std::string(node_id)});
      applied = true;
    });
    if (applied) {
      log.info("db.migrated", {{"component", std::string(component)},
                               {"version", std::to_string(version)},
                               {"description", step.description},
                               {"node", std::string(node_id)}});
    }
  }
}

}  // namespace emsnode::db
