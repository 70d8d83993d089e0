// Cluster settings (public FQDN, remote access, ...): key/value pairs in the shared database, set
// once on the active node and read by every node. Node-local settings stay in node.toml.
//
// A write is fenced: it commits only while the writer holds the lease at the epoch it gives, so
// a node that lost the lease (or never had it) cannot change the cluster's settings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/database.hpp"

namespace emsnode::db {

struct Setting {
  std::string key;
  std::string value;
  std::int64_t updated_at_ms = 0;  // database clock
  std::string updated_by;          // node id
  std::uint64_t epoch = 0;         // the writer's lease epoch
};

class Settings {
 public:
  // Keys: a lowercase letter, then up to 127 of [a-z0-9_.-] ("remote_access.enabled").
  static constexpr std::size_t kMaxKeyLength = 128;
  static constexpr std::size_t kMaxValueBytes = std::size_t{64} * 1024;

  explicit Settings(Database& database) : database_(database) {}

  std::optional<std::string> get(std::string_view key);
  // Every setting, ordered by key.
  std::vector<Setting> list();
  // Sets `key` to `value` as a fenced write by `node_id` at `epoch`. Throws std::invalid_argument
  // (stating the rule) for a malformed key or an oversized value, FencedError when `node_id` does
  // not hold the lease at `epoch`.
  void set(std::string_view key, std::string_view value, std::string_view node_id,
           std::uint64_t epoch);

 private:
  Database& database_;
};

// Empty when `key` is a valid setting key, else what is wrong with it and the rule.
std::string check_setting_key(std::string_view key);

}  // namespace emsnode::db
