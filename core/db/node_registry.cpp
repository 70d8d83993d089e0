#include "db/node_registry.hpp"

#include <filesystem>

namespace emsnode::db {
namespace {

constexpr const char* kColumns =
    "id, instance, address, admin_address, version, backup_dir, role, reason, paused, "
    "started_at_ms, last_seen_ms";

Value text_or_null(const std::string& text) {
  return text.empty() ? Value(nullptr) : Value(text);
}

std::string text_or_empty(const Row& row, std::size_t i) {
  return row.is_null(i) ? std::string() : row.text(i);
}

NodeRecord read_record(const Row& row) {
  NodeRecord record;
  record.id = row.text(0);
  record.instance = row.text(1);
  record.address = row.text(2);
  record.admin_address = text_or_empty(row, 3);
  record.version = row.text(4);
  record.backup_dir = row.text(5);
  record.role = row.text(6);
  record.reason = text_or_empty(row, 7);
  record.paused = row.integer(8) != 0;
  if (!row.is_null(9)) record.started_at_ms = row.integer(9);
  record.last_seen_ms = row.integer(10);
  return record;
}

}  // namespace

std::string normalise_backup_dir(std::string_view path) {
  std::string normal = std::filesystem::path(path).lexically_normal().generic_string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

void NodeRegistry::register_node(const NodeRecord& record, bool identity_proven,
                                 std::chrono::milliseconds liveness) {
  database_.transaction([&](Transaction& tx) {
    const std::int64_t now = database_.now_ms();
    const Rows same_id = tx.query(
        "SELECT instance, address, role, last_seen_ms FROM nodes WHERE id = ?", {record.id});
    if (!same_id.empty() && !identity_proven) {
      const Row& row = same_id.front();
      const std::int64_t seen_ms_ago = now - row.integer(3);
      const bool live = row.text(2) != kStoppedRole && seen_ms_ago < liveness.count();
      if (row.text(0) != record.instance && live) {
        throw RegistryError("node id \"" + record.id + "\" is already used by a running node at " +
                            row.text(1) + " (seen " + std::to_string(seen_ms_ago) +
                            " ms ago): give each node its own [node] id");
      }
    }
    const std::string backup_dir = normalise_backup_dir(record.backup_dir);
    for (const Row& row :
         tx.query("SELECT id, address, backup_dir FROM nodes WHERE id <> ?", {record.id})) {
      if (normalise_backup_dir(row.text(2)) == backup_dir) {
        throw RegistryError("backup dir " + record.backup_dir + " of node \"" + record.id +
                            "\" is already the backup dir of node \"" + row.text(0) + "\" at " +
                            row.text(1) +
                            ": two nodes must never share a backup dir; give each node its own "
                            "(or remove node \"" +
                            row.text(0) + "\" from the registry if it is gone for good)");
      }
    }
    tx.exec(std::string("INSERT INTO nodes (") + kColumns +
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, "
                "address = excluded.address, admin_address = excluded.admin_address, "
                "version = excluded.version, backup_dir = excluded.backup_dir, "
                "role = excluded.role, reason = excluded.reason, paused = excluded.paused, "
                "started_at_ms = excluded.started_at_ms, last_seen_ms = excluded.last_seen_ms",
            {record.id, record.instance, record.address, text_or_null(record.admin_address),
             record.version, record.backup_dir, record.role, text_or_null(record.reason),
             static_cast<std::int64_t>(record.paused ? 1 : 0), record.started_at_ms.value_or(now),
             now});
  });
}

bool NodeRegistry::heartbeat(std::string_view id, std::string_view instance, std::string_view role,
                             std::string_view reason, bool paused) {
  std::int64_t changed = 0;
  database_.transaction([&](Transaction& tx) {
    changed = tx.exec(
        "UPDATE nodes SET last_seen_ms = ?, role = ?, reason = ?, paused = ? "
        "WHERE id = ? AND instance = ?",
        {database_.now_ms(), std::string(role), text_or_null(std::string(reason)),
         static_cast<std::int64_t>(paused ? 1 : 0), std::string(id), std::string(instance)});
  });
  return changed == 1;
}

bool NodeRegistry::mark_stopped(std::string_view id, std::string_view instance) {
  std::int64_t changed = 0;
  database_.transaction([&](Transaction& tx) {
    changed = tx.exec(
        "UPDATE nodes SET role = ?, reason = NULL, last_seen_ms = ? WHERE id = ? AND instance = ?",
        {std::string(kStoppedRole), database_.now_ms(), std::string(id), std::string(instance)});
  });
  return changed == 1;
}

bool NodeRegistry::remove(std::string_view id) {
  std::int64_t changed = 0;
  database_.transaction([&](Transaction& tx) {
    changed = tx.exec("DELETE FROM nodes WHERE id = ?", {std::string(id)});
  });
  return changed == 1;
}

std::vector<RegisteredNode> NodeRegistry::list() {
  std::vector<RegisteredNode> nodes;
  const std::int64_t now = database_.now_ms();
  for (const Row& row : database_.query(std::string("SELECT ") + kColumns +
                                        " FROM nodes ORDER BY id COLLATE \"C\"")) {
    RegisteredNode node{read_record(row), 0};
    node.seen_ms_ago = now - node.record.last_seen_ms;
    nodes.push_back(std::move(node));
  }
  return nodes;
}

}  // namespace emsnode::db
