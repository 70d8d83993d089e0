// The node registry: every node of the cluster registers itself in the shared database (id,
// address, version, backup dir, role) and refreshes `last_seen_ms` on the database's clock, so
// every node and the status API see the whole cluster.
//
// Registration refuses the two mistakes that break a cluster quietly: two running nodes with the
// same `[node] id` (they would take turns overwriting each other's row and lease), and two nodes
// with the same backup dir (their backups would overwrite each other).
//
// The registry is a coordination table: it is written with plain transactions, not fenced ones,
// since passive nodes must register and be seen.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/database.hpp"

namespace emsnode::db {

// The role recorded by mark_stopped(): a node that stopped cleanly is not "live", whenever it was
// last seen.
inline constexpr std::string_view kStoppedRole = "stopped";

struct NodeRecord {
  std::string id;             // [node] id
  std::string instance;       // unique per process start: tells a restart from a duplicate
  std::string address;        // where endpoints reach it
  std::string admin_address;  // its admin endpoint; empty when it has none
  std::string version;        // emsnode version
  std::string backup_dir;
  std::string role;     // role_name() of its role, or kStoppedRole
  std::string reason;   // why it is not active (or why it changed role); may be empty
  bool paused = false;  // maintenance mode
  std::optional<std::int64_t> started_at_ms;  // database clock; set at registration when absent
  std::int64_t last_seen_ms = 0;              // database clock; set by the registry
};

struct RegisteredNode {
  NodeRecord record;
  std::int64_t seen_ms_ago = 0;  // database clock
};

// A registration refused because of another node; the message names it.
class RegistryError : public DbError {
 public:
  using DbError::DbError;
};

class NodeRegistry {
 public:
  explicit NodeRegistry(Database& database) : database_(database) {}

  // Inserts or updates this node's row, with last_seen_ms (and started_at_ms, when absent) set
  // to the database's clock. Throws RegistryError when
  // - another instance with this id is live (not stopped, seen within `liveness`), unless
  //   `identity_proven`: the caller holds this id's same-host OS lock, so any earlier instance is
  //   dead;
  // - another node id has the same backup dir (compared as normalised paths).
  void register_node(const NodeRecord& record, bool identity_proven,
                     std::chrono::milliseconds liveness);

  // Refreshes last_seen_ms (database clock), role, reason and paused. Returns false, writing
  // nothing, when the row no longer belongs to `instance` (another process took the id).
  bool heartbeat(std::string_view id, std::string_view instance, std::string_view role,
                 std::string_view reason, bool paused);

  // Records that the instance stopped cleanly (role kStoppedRole), so that a restart with a new
  // instance is not mistaken for a duplicate. Returns false when the row is not this instance's.
  bool mark_stopped(std::string_view id, std::string_view instance);

  // Forgets a node for good (an operator retired it or changed its id): its backup dir becomes
  // free for another node. Returns whether a row was removed.
  bool remove(std::string_view id);

  // Every registered node, ordered by id.
  std::vector<RegisteredNode> list();

 private:
  Database& database_;
};

// The form in which backup dirs are compared: lexically normal, without a trailing separator.
std::string normalise_backup_dir(std::string_view path);

}  // namespace emsnode::db
